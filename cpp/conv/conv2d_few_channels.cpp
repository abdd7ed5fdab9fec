// conv/conv2d_few_channels.cpp: convolutions of few input channels (up to 64 with AVX2, 1x1 up
// to 128; the rules: few_channel_*_applies in conv2d_impl.h) without packing: the forward pass
// and the weight gradient (a stride-1 input gradient runs as this forward pass,
// conv2d_input_grad.cpp).
// The register-tile bodies are compiled for the build's baseline and, where the x86 kernels are
// compiled (cpu_features.h), for AVX2+FMA, picked by cpu::active_isa().
// OpenMP: parallel for over blocks of output rows (forward), per-thread partial sums (weight
// gradient).
#include <algorithm>
#include <cstring>

#include "../cpu_features.h"
#include "conv2d_impl.h"

namespace cnnkit {
namespace conv {
namespace {

// With few input channels (the first layer: RGB, C = 3) a patch row is only K = KH*KW*C floats
// (27), and the GEMM's implicit im2col packing copies them in C-float runs: it costs as much as
// the multiply; with few outputs too (16-64), each packed row feeds only a few micro-tiles, and
// the packing still costs a third to a half of the time. These versions pack nothing per pixel.
// A block of output rows of image n (the whole image, when it fits in L2) reads the input rows
// it needs in place when no padding is involved, else from a zero-padded copy made once per
// block, where tap k = (dy, q) of pixel (r, ow) sits at (r*SH + dy)*rs + ow*SW*C + q; a 6-pixel
// x 16-channel tile of outputs (forward) or a 6-tap x 16-channel tile of dweight (backward)
// stays in 12 vector registers across the whole block while the other operand streams from L1:
// the GEMM micro-kernel's shape, with the input broadcast in place.
constexpr int kFcP = 6;    // pixels (forward) or taps (weight gradient) per register tile
constexpr int kFcOC = 16;  // output channels are padded to a multiple of this
// A register tile is kFcP x 2 vectors of L floats: L = 8 (16 channels) with AVX, L = 4 (8
// channels) on a baseline SSE2 build, whose 16 registers would not hold 12 8-float accumulators
// (split in two, they spilled: 30x slower).
template <int L>
struct FcVec {
    typedef float V __attribute__((vector_size(L * sizeof(float))));
    typedef float VU __attribute__((vector_size(L * sizeof(float)), aligned(alignof(float))));
};
#ifdef __AVX__
constexpr int kFcBaseLanes = 8;
#else
constexpr int kFcBaseLanes = 4;
#endif

// Floats of input a block may hold: with the weights, it stays in L2.
constexpr int64_t kFcBlockFloats = 32768;

// Output rows per block: as many as keep the block within kFcBlockFloats (at least one).
int fc_block_rows(const Window2d& g) {
    const int64_t wpc = (int64_t)((g.OW - 1) * g.SW + g.KW) * g.C;  // floats of a block row
    return (int)std::max<int64_t>(1, std::min<int64_t>(g.OH, (kFcBlockFloats / wpc - g.KH) / g.SH + 1));
}
// Floats of a zero-padded block of `rows` output rows.
std::size_t fc_block_floats(const Window2d& g, int rows) {
    return (std::size_t)((rows - 1) * g.SH + g.KH) * ((g.OW - 1) * g.SW + g.KW) * g.C;
}

// out rows (rows x OW, OC) = bias + conv of the block x (row stride rs) with wp (K, OCp), then
// max(0, .) if relu. wp and biasp are padded with zero columns to OCp, a multiple of kFcOC.
// Tiles take kFcP consecutive pixels of the block, across output rows: a 32-pixel row cut into
// 6-pixel tiles wasted a tenth of the work on its last tile, and a 16- or 8-pixel row more.
// always_inline: instantiated below for the baseline and for AVX2+FMA.
template <int L>
__attribute__((always_inline)) inline void fc_forward_block_body(
        float* out, const float* x, int64_t rs, int rows, const float* wp, const float* biasp,
        const Window2d& g, int OC, int OCp, bool relu, const float* res) {
    typedef typename FcVec<L>::V VecF;
    typedef typename FcVec<L>::VU VecFU;
    constexpr int kLanes = L, kFcNV = 2, kTile = kFcNV * L;
    const int rowlen = g.KW * g.C;
    const int64_t ps = (int64_t)g.SW * g.C, rstep = (int64_t)g.SH * rs;  // pixel, row steps
    const int64_t P = (int64_t)rows * g.OW;
    for (int64_t p0 = 0; p0 < P; p0 += kFcP) {
        const int np = (int)std::min<int64_t>(kFcP, P - p0);
        // The tile's pixels from the first one's row and column (one division per tile, not
        // one per pixel); past the end, the last pixel again.
        const float* xp[kFcP];
        int64_t r = p0 / g.OW, c = p0 - r * g.OW;
        for (int i = 0; i < kFcP; ++i) {
            if (i < np) {
                xp[i] = x + r * rstep + c * ps;
                if (++c == g.OW) c = 0, ++r;
            } else {
                xp[i] = xp[np - 1];
            }
        }
        for (int oc0 = 0; oc0 < OCp; oc0 += kTile) {
            VecF acc[kFcP][kFcNV];
            for (int v = 0; v < kFcNV; ++v) {
                const VecF b = *reinterpret_cast<const VecFU*>(biasp + oc0 + v * kLanes);
                for (int i = 0; i < kFcP; ++i) acc[i][v] = b;
            }
            const float* w = wp + oc0;
            for (int dy = 0; dy < g.KH; ++dy) {
                const int64_t xo = dy * rs;
#pragma GCC unroll 4
                for (int q = 0; q < rowlen; ++q, w += OCp) {
                    VecF wv[kFcNV];
                    for (int v = 0; v < kFcNV; ++v) wv[v] = *reinterpret_cast<const VecFU*>(w + v * kLanes);
                    for (int i = 0; i < kFcP; ++i) {
                        const float xi = xp[i][xo + q];
                        for (int v = 0; v < kFcNV; ++v) acc[i][v] += xi * wv[v];
                    }
                }
            }
            const bool whole = np == kFcP && oc0 + kTile <= OC;
            if (res && whole)  // the residual block's sum, before its ReLU
                for (int i = 0; i < kFcP; ++i)
                    for (int v = 0; v < kFcNV; ++v)
                        acc[i][v] += *reinterpret_cast<const VecFU*>(res + (p0 + i) * OC + oc0 + v * kLanes);
            if (relu && (whole || !res))  // NaN passes (NaN < 0 is false), as relu_forward
                for (int i = 0; i < kFcP; ++i)
                    for (int v = 0; v < kFcNV; ++v) acc[i][v] = acc[i][v] < 0.f ? VecF{} : acc[i][v];
            float* o = out + p0 * OC + oc0;
            if (whole) {
                for (int i = 0; i < kFcP; ++i)
                    for (int v = 0; v < kFcNV; ++v)
                        *reinterpret_cast<VecFU*>(o + i * OC + v * kLanes) = acc[i][v];
            } else {  // edge tile: stored aside, the part inside the output kept
                float t[kFcP * kTile];
                for (int i = 0; i < kFcP; ++i)
                    for (int v = 0; v < kFcNV; ++v)
                        *reinterpret_cast<VecFU*>(t + i * kTile + v * kLanes) = acc[i][v];
                const int nc = std::min(kTile, OC - oc0);
                if (res && !whole) {  // the sum, then the ReLU, on the part inside
                    const float* r = res + p0 * OC + oc0;
                    for (int i = 0; i < np; ++i)
                        for (int j = 0; j < nc; ++j) {
                            const float v = t[i * kTile + j] + r[i * OC + j];
                            o[i * OC + j] = relu && v < 0.f ? 0.f : v;
                        }
                } else {
                    for (int i = 0; i < np; ++i)
                        for (int j = 0; j < nc; ++j) o[i * OC + j] = t[i * kTile + j];
                }
            }
        }
    }
}

// dwp rows k0 .. k0+TP-1 (row stride OCp) += sum over the block's pixels of their taps times
// dout, for the TP taps whose block positions are xt (at pixel (0, 0)); dout d holds the
// block's rows x OW pixels, OCp readable floats each, one after the other. The tile stays in
// registers across the block's rows: loaded and stored once per block, not once per row.
template <int L, int TP>
__attribute__((always_inline)) inline void fc_dweight_taps(
        float* dwp, const float* const* xt, int64_t ps, int64_t rstep, int rows, const float* d,
        int OW, int OCp) {
    typedef typename FcVec<L>::V VecF;
    typedef typename FcVec<L>::VU VecFU;
    constexpr int kLanes = L, kFcNV = 2, kTile = kFcNV * L;
    for (int oc0 = 0; oc0 < OCp; oc0 += kTile) {
        VecF acc[TP][kFcNV];
        float* a = dwp + oc0;
        for (int t = 0; t < TP; ++t)
            for (int v = 0; v < kFcNV; ++v)
                acc[t][v] = *reinterpret_cast<const VecF*>(a + t * OCp + v * kLanes);
        const float* dp = d + oc0;
        for (int r = 0; r < rows; ++r) {
            const int64_t xr = r * rstep;
#pragma GCC unroll 2
            for (int ow = 0; ow < OW; ++ow, dp += OCp) {
                VecF dv[kFcNV];
                for (int v = 0; v < kFcNV; ++v) dv[v] = *reinterpret_cast<const VecFU*>(dp + v * kLanes);
                const int64_t xo = xr + ow * ps;
                for (int t = 0; t < TP; ++t) {
                    const float xi = xt[t][xo];
                    for (int v = 0; v < kFcNV; ++v) acc[t][v] += xi * dv[v];
                }
            }
        }
        for (int t = 0; t < TP; ++t)
            for (int v = 0; v < kFcNV; ++v)
                *reinterpret_cast<VecF*>(a + t * OCp + v * kLanes) = acc[t][v];
    }
}

// dwp (K, OCp) += sum over the block's pixels of patch^T * dout (d as above), block x of row
// stride rs. Taps go kFcP at a time, the K % kFcP left over in a narrower tile (not padded:
// K = 27 would waste a tenth of the work).
template <int L>
__attribute__((always_inline)) inline void fc_dweight_block_body(
        float* dwp, const float* x, int64_t rs, int rows, const float* d, const Window2d& g,
        int OCp) {
    const int rowlen = g.KW * g.C, K = g.KH * rowlen;
    const int64_t ps = (int64_t)g.SW * g.C, rstep = (int64_t)g.SH * rs;
    for (int k0 = 0; k0 < K; k0 += kFcP) {
        const int tp = std::min(kFcP, K - k0);
        const float* xt[kFcP];
        for (int t = 0; t < tp; ++t) xt[t] = x + (int64_t)((k0 + t) / rowlen) * rs + (k0 + t) % rowlen;
        float* a = dwp + (int64_t)k0 * OCp;
        switch (tp) {
            case 1: fc_dweight_taps<L, 1>(a, xt, ps, rstep, rows, d, g.OW, OCp); break;
            case 2: fc_dweight_taps<L, 2>(a, xt, ps, rstep, rows, d, g.OW, OCp); break;
            case 3: fc_dweight_taps<L, 3>(a, xt, ps, rstep, rows, d, g.OW, OCp); break;
            case 4: fc_dweight_taps<L, 4>(a, xt, ps, rstep, rows, d, g.OW, OCp); break;
            case 5: fc_dweight_taps<L, 5>(a, xt, ps, rstep, rows, d, g.OW, OCp); break;
            default: fc_dweight_taps<L, kFcP>(a, xt, ps, rstep, rows, d, g.OW, OCp); break;
        }
    }
}

// The bodies for the build's own instruction set (baseline on a portable build) and, where the
// x86 micro-kernels are compiled, for AVX2+FMA, picked like the GEMM's by cpu::active_isa().
void fc_forward_block_base(float* out, const float* x, int64_t rs, int rows, const float* wp,
                           const float* biasp, const Window2d& g, int OC, int OCp, bool relu,
                           const float* res) {
    fc_forward_block_body<kFcBaseLanes>(out, x, rs, rows, wp, biasp, g, OC, OCp, relu, res);
}
void fc_dweight_block_base(float* dwp, const float* x, int64_t rs, int rows, const float* d,
                           const Window2d& g, int OCp) {
    fc_dweight_block_body<kFcBaseLanes>(dwp, x, rs, rows, d, g, OCp);
}
#ifdef CNNKIT_X86_KERNELS
#define CNNKIT_FC_AVX2 1
__attribute__((target("avx2,fma"))) void fc_forward_block_avx2(
        float* out, const float* x, int64_t rs, int rows, const float* wp, const float* biasp,
        const Window2d& g, int OC, int OCp, bool relu, const float* res) {
    fc_forward_block_body<8>(out, x, rs, rows, wp, biasp, g, OC, OCp, relu, res);
}
__attribute__((target("avx2,fma"))) void fc_dweight_block_avx2(
        float* dwp, const float* x, int64_t rs, int rows, const float* d, const Window2d& g,
        int OCp) {
    fc_dweight_block_body<8>(dwp, x, rs, rows, d, g, OCp);
}
#endif

bool fc_use_avx2() {
#ifdef CNNKIT_FC_AVX2
    return cpu::active_isa() >= cpu::Isa::kAvx2;  // avx2 or avx512 CPUs
#else
    return false;
#endif
}

gemm::Buffer& tl_strip() { thread_local gemm::Buffer b; return b; }
gemm::Buffer& tl_fcw() { thread_local gemm::Buffer b; return b; }
gemm::Buffer& tl_drow() { thread_local gemm::Buffer b; return b; }

}  // namespace

const float* input_block(const float* inp, const Window2d& g, int64_t n, int oh0, int oh1,
                         float* buf, int64_t* rs) {
    const int ih0 = oh0 * g.SH - g.PT, nin = (oh1 - 1 - oh0) * g.SH + g.KH;
    const int wp = (g.OW - 1) * g.SW + g.KW;  // columns the rows read
    if (ih0 >= 0 && ih0 + nin <= g.H && g.PL == 0 && wp <= g.W) {
        *rs = (int64_t)g.W * g.C;
        return inp + ((n * g.H + ih0) * g.W) * g.C;
    }
    *rs = (int64_t)wp * g.C;
    const int lo = std::min(wp, std::max(0, g.PL)), hi = std::max(lo, std::min(wp, g.W + g.PL));
    for (int r = 0; r < nin; ++r) {
        float* d = buf + r * *rs;
        const int ih = ih0 + r;
        if (ih < 0 || ih >= g.H) {
            std::fill(d, d + *rs, 0.f);
            continue;
        }
        std::fill(d, d + (int64_t)lo * g.C, 0.f);  // columns left of the image
        std::memcpy(d + (int64_t)lo * g.C, inp + ((n * g.H + ih) * g.W + lo - g.PL) * g.C,
                    sizeof(float) * (hi - lo) * g.C);
        std::fill(d + (int64_t)hi * g.C, d + *rs, 0.f);  // right of it
    }
    return buf;
}

void few_channel_forward(float* out, const float* inp, const float* weight, const float* bias,
                         const Window2d& g, int OC, bool relu, const float* residual) {
    // inp is (N,H,W,C), weight is (KH,KW,C,OC), bias is (OC) or null, out is (N,OH,OW,OC)
    const int K = g.KH * g.KW * g.C, OCp = (int)gemm::round_up(OC, kFcOC);
    // Weights and bias padded with zero columns to whole register tiles (read by every thread).
    float* wp = gemm::reserve(tl_fcw(), (std::size_t)(K + 1) * OCp);
    float* biasp = wp + (int64_t)K * OCp;
    for (int k = 0; k < K; ++k)
        for (int o = 0; o < OCp; ++o) wp[(int64_t)k * OCp + o] = o < OC ? weight[(int64_t)k * OC + o] : 0.f;
    for (int o = 0; o < OCp; ++o) biasp[o] = bias && o < OC ? bias[o] : 0.f;
    const bool avx2 = fc_use_avx2();
    // Tasks of `rows` output rows of one image: the whole image when its input fits
    // kFcBlockFloats and there are images enough for every thread, else fewer rows.
    int rows = fc_block_rows(g);
    const int64_t want = 2 * (int64_t)gemm::max_threads();
    if (g.N * ((g.OH + rows - 1) / rows) < want) {
        const int64_t chunks = std::min<int64_t>(g.OH, (want + g.N - 1) / g.N);
        rows = (int)std::min<int64_t>(rows, (g.OH + chunks - 1) / chunks);
    }
    const int64_t per_img = (g.OH + rows - 1) / rows;
    const std::size_t block_len = fc_block_floats(g, rows);
    // Each output pixel is written by the one thread that owns its task.
#pragma omp parallel for schedule(static)
    for (int64_t task = 0; task < g.N * per_img; ++task) {
        const int64_t n = task / per_img;
        const int oh0 = (int)(task - n * per_img) * rows, oh1 = std::min(g.OH, oh0 + rows);
        int64_t rs;
        float* buf = gemm::reserve(tl_strip(), block_len);
        const float* x = input_block(inp, g, n, oh0, oh1, buf, &rs);
        const int64_t first = ((n * g.OH + oh0) * g.OW) * OC;  // of the block's outputs
        float* o = out + first;
        const float* res = residual ? residual + first : nullptr;
#ifdef CNNKIT_FC_AVX2
        if (avx2) {
            fc_forward_block_avx2(o, x, rs, oh1 - oh0, wp, biasp, g, OC, OCp, relu, res);
            continue;
        }
#endif
        (void)avx2;
        fc_forward_block_base(o, x, rs, oh1 - oh0, wp, biasp, g, OC, OCp, relu, res);
    }
}

void few_channel_weight_grad(float* dweight, float* dbias, const float* dout, const float* inp,
                             const Window2d& g, int OC) {
    // dout is (N,OH,OW,OC), inp (N,H,W,C), dweight (KH,KW,C,OC) and dbias (OC), either may be null
    const int K = g.KH * g.KW * g.C, OCp = (int)gemm::round_up(OC, kFcOC);
    const int64_t rows = (int64_t)g.N * g.OH;
    // Per-thread partial sums of dweight (K, OCp) and dbias (OCp) over a contiguous range of
    // output rows, then one reduction: no two threads write the same float.
    const int64_t T = std::max<int64_t>(1, std::min<int64_t>(gemm::max_threads(), rows * g.OW / 512));
    const int64_t per = (rows + T - 1) / T, stride = (int64_t)(K + 1) * OCp;
    float* part = gemm::reserve(tl_partials(), (std::size_t)(T * stride));
    const bool avx2 = fc_use_avx2();
    const int brows = fc_block_rows(g);
    const std::size_t block_len = fc_block_floats(g, brows);
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; ++t) {
        float* dwp = part + t * stride;
        float* db = dwp + (int64_t)K * OCp;
        std::fill(dwp, dwp + stride, 0.f);
        float* buf = gemm::reserve(tl_strip(), block_len);
        // dout rows whose OC is not a whole number of tiles are copied, zero-padded, so that a
        // tile never reads past the array.
        float* dpad = OC == OCp ? nullptr : gemm::reserve(tl_drow(), (std::size_t)brows * g.OW * OCp);
        const int64_t end = std::min(rows, (t + 1) * per);
        for (int64_t row = std::min(rows, t * per); row < end;) {
            // A block: up to brows rows of one image, inside this thread's range.
            const int64_t n = row / g.OH;
            const int oh0 = (int)(row - n * g.OH);
            const int oh1 = (int)std::min<int64_t>({(int64_t)g.OH, oh0 + (int64_t)brows, end - n * g.OH});
            const int nb = oh1 - oh0;
            const int64_t npix = (int64_t)nb * g.OW;
            const float* d = dout + row * g.OW * OC;
            for (int64_t p = 0; p < npix; ++p)
                for (int o = 0; o < OC; ++o) db[o] += d[p * OC + o];
            row += nb;
            if (!dweight) continue;
            if (dpad) {
                for (int64_t p = 0; p < npix; ++p)
                    for (int o = 0; o < OCp; ++o) dpad[p * OCp + o] = o < OC ? d[p * OC + o] : 0.f;
                d = dpad;
            }
            int64_t rs;
            const float* x = input_block(inp, g, n, oh0, oh1, buf, &rs);
#ifdef CNNKIT_FC_AVX2
            if (avx2) {
                fc_dweight_block_avx2(dwp, x, rs, nb, d, g, OCp);
                continue;
            }
#endif
            (void)avx2;
            fc_dweight_block_base(dwp, x, rs, nb, d, g, OCp);
        }
    }
    if (dweight)
        for (int k = 0; k < K; ++k)
            for (int o = 0; o < OC; ++o) {
                float s = 0.f;
                for (int64_t t = 0; t < T; ++t) s += part[t * stride + (int64_t)k * OCp + o];
                dweight[(int64_t)k * OC + o] = s;
            }
    if (dbias)
        for (int o = 0; o < OC; ++o) {
            float s = 0.f;
            for (int64_t t = 0; t < T; ++t) s += part[t * stride + (int64_t)K * OCp + o];
            dbias[o] = s;
        }
}
}  // namespace conv
}  // namespace cnnkit
