// conv2d.cpp: 2-D convolution over NHWC batches with (KH,KW,C,OC) weights, forward and backward.
//
// The fast versions are GEMMs on the packed kernels of gemm.h over an implicit im2col view (no
// patch matrix is materialised), so they use whichever micro-kernel simd_isa() names; the rest is
// baseline C++. Few output channels (OC <= 4) and few input channels (C <= 16) take direct loops
// on GCC vectors instead, the latter also compiled for AVX2+FMA and picked by simd_isa(). The
// naive versions are the direct loops, kept as the reference and fallback.
// OpenMP: parallel for over outer loops only, each output element written by one thread.
#include <algorithm>
#include <cstring>

#include "cnnkit.h"
#include "gemm.h"

namespace cnnkit {
namespace {

gemm::Im2colView im2col_view(const float* inp, const Window2d& g) {
    return gemm::Im2colView{inp, g.H, g.W, g.C, g.KH, g.KW, g.SH, g.SW, g.PT, g.PL, g.OH, g.OW};
}

// dimg (H,W,C) of one image += the patch rows dp (rows x KH*KW*C) of its output pixels p0.. ,
// the transpose of the im2col copy.
void col2im_add(float* dimg, const float* dp, int64_t p0, int rows, const Window2d& g) {
    const int K = g.KH * g.KW * g.C, rowlen = g.KW * g.C;
    for (int r = 0; r < rows; ++r) {
        const int p = (int)(p0 + r), oh = p / g.OW, ow = p - (p / g.OW) * g.OW;
        const int ih0 = oh * g.SH - g.PT, iw0 = ow * g.SW - g.PL;
        const int qa = std::max(0, -iw0) * g.C, qb = std::max(0, std::min(g.KW, g.W - iw0)) * g.C;
        const float* src = dp + (int64_t)r * K;
        for (int dy = 0; dy < g.KH; ++dy) {
            const int ih = ih0 + dy;
            if (ih < 0 || ih >= g.H) continue;
            const int64_t off = ((int64_t)ih * g.W + iw0) * g.C;  // of column q = 0, maybe < 0
            const float* s = src + dy * rowlen;
            for (int q = qa; q < qb; ++q) dimg[off + q] += s[q];
        }
    }
}

gemm::Buffer& tl_partials() { thread_local gemm::Buffer b; return b; }
gemm::Buffer& tl_dpatches() { thread_local gemm::Buffer b; return b; }
gemm::Buffer& tl_wt() { thread_local gemm::Buffer b; return b; }
gemm::Buffer& tl_patch() { thread_local gemm::Buffer b; return b; }

// ---------------------------------------------------------------- few output channels
// With OC <= kSmallOC (an RGB output layer) the GEMM is the wrong tool: OC fills 3 of the 16
// columns of its register tile, and packing a patch (K floats per pixel) costs about as much as
// the OC*K multiply-adds it feeds. These versions read the input in place instead, with the
// weights transposed to wt (OC,K) so that a kernel row dy is KW*C consecutive floats of both.
constexpr int kSmallOC = 4;
constexpr int kLanes = 8;  // one AVX2 register; a baseline build splits it in two SSE ones

// out (np,OC) = bias + patches (np,K) * wt^T, then max(0, out) if relu, for up to P pixels:
// pixel i's kernel row dy is the rowlen floats at x[i] + dy*rs[i]. P*OC vector accumulators stay in registers and every weight
// vector loaded serves P pixels, so the loop is bound by multiply-adds, not loads. GCC's vector
// extension, because plain arrays of accumulators were left in memory (3x slower); a baseline
// build lowers each 8-float vector to two SSE registers.
// Loads go through VecFU, the same vector aligned to a float only (an unaligned load); a helper
// function returning VecF would change the ABI on a baseline build, which GCC warns about.
typedef float VecF __attribute__((vector_size(kLanes * sizeof(float))));
typedef float VecFU __attribute__((vector_size(kLanes * sizeof(float)), aligned(alignof(float))));

template <int OC, int P>
void small_oc_dots(float* out, int np, const float* const* x, const int64_t* rs, const float* wt,
                   int KH, int rowlen, const float* bias, bool relu) {
    const int K = KH * rowlen, qv = rowlen / kLanes * kLanes;
    VecF acc[P][OC];
    float tail[P][OC] = {};
    for (int i = 0; i < P; ++i)
        for (int o = 0; o < OC; ++o) acc[i][o] = VecF{};
    for (int dy = 0; dy < KH; ++dy) {
        const float* w = wt + dy * rowlen;
        const float* xr[P];
        for (int i = 0; i < P; ++i) xr[i] = x[i] + dy * rs[i];
        for (int q = 0; q < qv; q += kLanes) {
            VecF wv[OC];
            for (int o = 0; o < OC; ++o) wv[o] = *reinterpret_cast<const VecFU*>(w + o * K + q);
            for (int i = 0; i < P; ++i) {
                const VecF xv = *reinterpret_cast<const VecFU*>(xr[i] + q);
                for (int o = 0; o < OC; ++o) acc[i][o] += xv * wv[o];
            }
        }
        for (int q = qv; q < rowlen; ++q)
            for (int i = 0; i < P; ++i)
                for (int o = 0; o < OC; ++o) tail[i][o] += xr[i][q] * w[o * K + q];
    }
    for (int i = 0; i < np; ++i)
        for (int o = 0; o < OC; ++o) {
            float s = (bias ? bias[o] : 0.f) + tail[i][o];
            for (int l = 0; l < kLanes; ++l) s += acc[i][o][l];
            out[i * OC + o] = relu && s < 0.f ? 0.f : s;
        }
}

// wt (OC,K) = weight (K,OC) transposed.
void transpose_weight(float* wt, const float* weight, int64_t K, int OC) {
    for (int64_t k = 0; k < K; ++k)
        for (int o = 0; o < OC; ++o) wt[o * K + k] = weight[k * OC + o];
}

template <int OC>
void small_oc_forward(float* out, const float* inp, const float* weight, const float* bias,
                      const Window2d& g, bool relu) {
    // inp is (N,H,W,C), weight is (KH,KW,C,OC), bias is (OC) or null, out is (N,OH,OW,OC)
    constexpr int P = OC <= 3 ? 4 : 3;  // 12 accumulator registers of the 16
    const int rowlen = g.KW * g.C, K = g.KH * rowlen;
    float* wt = gemm::reserve(tl_wt(), (std::size_t)K * OC);
    transpose_weight(wt, weight, K, OC);
    const gemm::Im2colView view = im2col_view(inp, g);
    // One output row (n, oh) per iteration; each output pixel is written by one thread.
#pragma omp parallel for schedule(static)
    for (int64_t row = 0; row < (int64_t)g.N * g.OH; ++row) {
        const int64_t n = row / g.OH;
        const int oh = (int)(row - n * g.OH), ih0 = oh * g.SH - g.PT;
        const bool rows_inside = ih0 >= 0 && ih0 + g.KH <= g.H;
        // A pixel whose window leaves the image is copied, zero-padded, to patch.
        float* patch = gemm::reserve(tl_patch(), (std::size_t)P * K);
        for (int ow0 = 0; ow0 < g.OW; ow0 += P) {
            const int np = std::min(P, g.OW - ow0);
            const float* x[P];
            int64_t rs[P];
            for (int i = 0; i < P; ++i) {
                const int ow = ow0 + std::min(i, np - 1), iw0 = ow * g.SW - g.PL;  // pad: repeat
                if (rows_inside && iw0 >= 0 && iw0 + g.KW <= g.W) {
                    x[i] = inp + ((n * g.H + ih0) * g.W + iw0) * g.C;
                    rs[i] = (int64_t)g.W * g.C;
                } else {
                    view.copy_pixel(n, oh, ow, 0, K, patch + i * K, 1);
                    x[i] = patch + i * K;
                    rs[i] = rowlen;
                }
            }
            small_oc_dots<OC, P>(out + (row * g.OW + ow0) * OC, np, x, rs, wt, g.KH, rowlen, bias, relu);
        }
    }
}

template <int OC>
void small_oc_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                       const float* inp, const float* weight, const Window2d& g) {
    // dout is (N,OH,OW,OC), inp and dinp (N,H,W,C), weight and dweight (KH,KW,C,OC), dbias (OC)
    const int rowlen = g.KW * g.C, K = g.KH * rowlen;
    const int64_t P = (int64_t)g.OH * g.OW, M = g.N * P, HWC = (int64_t)g.H * g.W * g.C;
    if (dweight || dbias) {
        // Per-chunk partial sums of dweight^T (OC,K) and dbias, then one reduction: for each
        // output pixel and kernel row, dwt[o][row] += dout[o] * input row, a loop over
        // contiguous floats of both.
        const int64_t T = std::max<int64_t>(1, std::min<int64_t>(gemm::max_threads(), M / 512));
        const int64_t per = (M + T - 1) / T, stride = (int64_t)K * OC + OC;
        float* part = gemm::reserve(tl_partials(), (std::size_t)(T * stride));
#pragma omp parallel for schedule(static)
        for (int64_t t = 0; t < T; ++t) {
            float* dwt = part + t * stride;
            float* db = dwt + (int64_t)K * OC;
            std::fill(dwt, dwt + stride, 0.f);
            for (int64_t m = std::min(M, t * per); m < std::min(M, (t + 1) * per); ++m) {
                const int64_t n = m / P;
                const int p = (int)(m - n * P), oh = p / g.OW, ow = p - oh * g.OW;
                const int ih0 = oh * g.SH - g.PT, iw0 = ow * g.SW - g.PL;
                const int qa = std::max(0, -iw0) * g.C, qb = std::max(0, std::min(g.KW, g.W - iw0)) * g.C;
                float d[OC];
                for (int o = 0; o < OC; ++o) db[o] += d[o] = dout[m * OC + o];
                for (int dy = 0; dy < g.KH; ++dy) {
                    const int ih = ih0 + dy;
                    if (ih < 0 || ih >= g.H) continue;
                    const float* xs = inp + ((n * g.H + ih) * g.W + iw0) * g.C;  // of column 0
                    float* w = dwt + dy * rowlen;
                    for (int q = qa; q < qb; ++q)
                        for (int o = 0; o < OC; ++o) w[o * K + q] += d[o] * xs[q];
                }
            }
        }
        if (dweight)
            for (int64_t k = 0; k < K; ++k)
                for (int o = 0; o < OC; ++o) {
                    float s = 0.f;
                    for (int64_t t = 0; t < T; ++t) s += part[t * stride + o * K + k];
                    dweight[k * OC + o] = s;
                }
        if (dbias)
            for (int o = 0; o < OC; ++o) {
                float s = 0.f;
                for (int64_t t = 0; t < T; ++t) s += part[t * stride + (int64_t)K * OC + o];
                dbias[o] = s;
            }
    }
    if (dinp) {
        // dinp row += sum over o of dout[o] * wt[o] row, for every output pixel and kernel row;
        // an image's dinp is written only by the thread that owns the image.
        float* wt = gemm::reserve(tl_wt(), (std::size_t)K * OC);
        transpose_weight(wt, weight, K, OC);
#pragma omp parallel for schedule(static)
        for (int64_t n = 0; n < g.N; ++n) {
            float* dimg = dinp + n * HWC;
            std::fill(dimg, dimg + HWC, 0.f);
            for (int64_t p = 0; p < P; ++p) {
                const int oh = (int)(p / g.OW), ow = (int)(p - (p / g.OW) * g.OW);
                const int ih0 = oh * g.SH - g.PT, iw0 = ow * g.SW - g.PL;
                const int qa = std::max(0, -iw0) * g.C, qb = std::max(0, std::min(g.KW, g.W - iw0)) * g.C;
                float d[OC];
                for (int o = 0; o < OC; ++o) d[o] = dout[(n * P + p) * OC + o];
                for (int dy = 0; dy < g.KH; ++dy) {
                    const int ih = ih0 + dy;
                    if (ih < 0 || ih >= g.H) continue;
                    float* xs = dimg + ((int64_t)ih * g.W + iw0) * g.C;  // of column 0
                    const float* w = wt + dy * rowlen;
                    for (int q = qa; q < qb; ++q) {
                        float s = 0.f;
                        for (int o = 0; o < OC; ++o) s += d[o] * w[o * K + q];
                        xs[q] += s;
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- few input channels
// With few input channels (the first layer: RGB, C = 3) a patch row is only K = KH*KW*C floats
// (27), and the GEMM's implicit im2col packing copies them in C-float runs: it costs as much as
// the multiply. These versions pack nothing per pixel. Each output row (n, oh) reads the KH input
// rows it needs from a strip (in place when no padding is involved, else a zero-padded copy of
// a few hundred floats), where tap k = (dy, q) of pixel ow sits at dy*rs + ow*SW*C + q; a 6-pixel
// x 16-channel tile of outputs (forward) or a 6-tap x 16-channel tile of dweight (backward)
// stays in 12 vector registers while the other operand streams from L1: the GEMM micro-kernel's
// shape, with the input broadcast in place.
// Up to 16 channels this path beat the GEMM by 1.5-2.5x (forward and weight gradient, 3x3
// kernels, 32x32 images, 32-64 output channels, AVX2); at 32 channels it was no better on the
// CIFAR-10 CNN's second layer (15x15 images), and worse on a weight gradient at 128.
constexpr int kFewC = 16;
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

// The KH input rows of output row (n, oh), columns ow*SW - PL .. for ow < OW: either in place,
// or zero-padded into buf. Returns the strip; *rs is its row stride.
const float* fc_strip(const float* inp, const Window2d& g, int64_t n, int oh, float* buf, int64_t* rs) {
    const int ih0 = oh * g.SH - g.PT, wp = (g.OW - 1) * g.SW + g.KW;  // columns the row reads
    if (ih0 >= 0 && ih0 + g.KH <= g.H && g.PL == 0 && wp <= g.W) {
        *rs = (int64_t)g.W * g.C;
        return inp + ((n * g.H + ih0) * g.W) * g.C;
    }
    *rs = (int64_t)wp * g.C;
    for (int dy = 0; dy < g.KH; ++dy) {
        float* d = buf + dy * *rs;
        const int ih = ih0 + dy;
        if (ih < 0 || ih >= g.H) {
            std::fill(d, d + *rs, 0.f);
            continue;
        }
        const int lo = std::min(wp, std::max(0, g.PL)), hi = std::max(lo, std::min(wp, g.W + g.PL));
        std::fill(d, d + (int64_t)lo * g.C, 0.f);  // columns left of the image
        std::memcpy(d + (int64_t)lo * g.C, inp + ((n * g.H + ih) * g.W + lo - g.PL) * g.C,
                    sizeof(float) * (hi - lo) * g.C);
        std::fill(d + (int64_t)hi * g.C, d + *rs, 0.f);  // right of it
    }
    return buf;
}

// out row (OW,OC) = bias + conv of the strip x (row stride rs) with wp (K, OCp), then max(0, .)
// if relu. wp and biasp are padded with zero columns to OCp, a multiple of kFcOC.
// always_inline: instantiated below for the baseline and for AVX2+FMA.
template <int L>
__attribute__((always_inline)) inline void fc_forward_row_body(
        float* out, const float* x, int64_t rs, const float* wp, const float* biasp,
        const Window2d& g, int OC, int OCp, bool relu) {
    typedef typename FcVec<L>::V VecF;
    typedef typename FcVec<L>::VU VecFU;
    constexpr int kLanes = L, kFcNV = 2, kTile = kFcNV * L;
    const int rowlen = g.KW * g.C;
    const int64_t ps = (int64_t)g.SW * g.C;  // pixel step in the strip
    for (int ow0 = 0; ow0 < g.OW; ow0 += kFcP) {
        const int np = std::min(kFcP, g.OW - ow0);
        const float* xp[kFcP];
        for (int i = 0; i < kFcP; ++i) xp[i] = x + std::min(ow0 + i, g.OW - 1) * ps;  // pad: repeat
        for (int oc0 = 0; oc0 < OCp; oc0 += kTile) {
            VecF acc[kFcP][kFcNV];
            for (int v = 0; v < kFcNV; ++v) {
                const VecF b = *reinterpret_cast<const VecFU*>(biasp + oc0 + v * kLanes);
                for (int i = 0; i < kFcP; ++i) acc[i][v] = b;
            }
            const float* w = wp + oc0;
            for (int dy = 0; dy < g.KH; ++dy) {
                const int64_t xo = dy * rs;
                for (int q = 0; q < rowlen; ++q, w += OCp) {
                    VecF wv[kFcNV];
                    for (int v = 0; v < kFcNV; ++v) wv[v] = *reinterpret_cast<const VecFU*>(w + v * kLanes);
                    for (int i = 0; i < kFcP; ++i) {
                        const float xi = xp[i][xo + q];
                        for (int v = 0; v < kFcNV; ++v) acc[i][v] += xi * wv[v];
                    }
                }
            }
            if (relu)  // NaN passes (NaN < 0 is false), as relu_forward
                for (int i = 0; i < kFcP; ++i)
                    for (int v = 0; v < kFcNV; ++v) acc[i][v] = acc[i][v] < 0.f ? VecF{} : acc[i][v];
            float* o = out + (int64_t)ow0 * OC + oc0;
            if (np == kFcP && oc0 + kTile <= OC) {
                for (int i = 0; i < kFcP; ++i)
                    for (int v = 0; v < kFcNV; ++v)
                        *reinterpret_cast<VecFU*>(o + i * OC + v * kLanes) = acc[i][v];
            } else {  // edge tile: stored aside, the part inside the output kept
                float t[kFcP * kTile];
                for (int i = 0; i < kFcP; ++i)
                    for (int v = 0; v < kFcNV; ++v)
                        *reinterpret_cast<VecFU*>(t + i * kTile + v * kLanes) = acc[i][v];
                const int nc = std::min(kTile, OC - oc0);
                for (int i = 0; i < np; ++i)
                    for (int j = 0; j < nc; ++j) o[i * OC + j] = t[i * kTile + j];
            }
        }
    }
}

// dwp rows k0 .. k0+TP-1 (row stride OCp) += sum over the row's pixels of their taps times
// dout, for the TP taps whose strip positions are xt (at pixel 0); dout row d as below.
template <int L, int TP>
__attribute__((always_inline)) inline void fc_dweight_taps(
        float* dwp, const float* const* xt, int64_t ps, const float* d, int64_t ldd, int OW, int OCp) {
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
        for (int ow = 0; ow < OW; ++ow, dp += ldd) {
            VecF dv[kFcNV];
            for (int v = 0; v < kFcNV; ++v) dv[v] = *reinterpret_cast<const VecFU*>(dp + v * kLanes);
            const int64_t xo = ow * ps;
            for (int t = 0; t < TP; ++t) {
                const float xi = xt[t][xo];
                for (int v = 0; v < kFcNV; ++v) acc[t][v] += xi * dv[v];
            }
        }
        for (int t = 0; t < TP; ++t)
            for (int v = 0; v < kFcNV; ++v)
                *reinterpret_cast<VecF*>(a + t * OCp + v * kLanes) = acc[t][v];
    }
}

// dwp (K, OCp) += sum over the row's pixels of patch^T * dout, dout row d (OW, ldd >= OCp
// readable columns per pixel), strip x as above. Taps go kFcP at a time, the K % kFcP left
// over in a narrower tile (not padded: K = 27 would waste a tenth of the work).
template <int L>
__attribute__((always_inline)) inline void fc_dweight_row_body(
        float* dwp, const float* x, int64_t rs, const float* d, int64_t ldd, const Window2d& g,
        int OCp) {
    const int rowlen = g.KW * g.C, K = g.KH * rowlen;
    const int64_t ps = (int64_t)g.SW * g.C;
    for (int k0 = 0; k0 < K; k0 += kFcP) {
        const int tp = std::min(kFcP, K - k0);
        const float* xt[kFcP];
        for (int t = 0; t < tp; ++t) xt[t] = x + (int64_t)((k0 + t) / rowlen) * rs + (k0 + t) % rowlen;
        float* a = dwp + (int64_t)k0 * OCp;
        switch (tp) {
            case 1: fc_dweight_taps<L, 1>(a, xt, ps, d, ldd, g.OW, OCp); break;
            case 2: fc_dweight_taps<L, 2>(a, xt, ps, d, ldd, g.OW, OCp); break;
            case 3: fc_dweight_taps<L, 3>(a, xt, ps, d, ldd, g.OW, OCp); break;
            case 4: fc_dweight_taps<L, 4>(a, xt, ps, d, ldd, g.OW, OCp); break;
            case 5: fc_dweight_taps<L, 5>(a, xt, ps, d, ldd, g.OW, OCp); break;
            default: fc_dweight_taps<L, kFcP>(a, xt, ps, d, ldd, g.OW, OCp); break;
        }
    }
}

// The bodies for the build's own instruction set (baseline on a portable build) and, where the
// x86 micro-kernels are compiled, for AVX2+FMA, picked like the GEMM's by simd_isa().
void fc_forward_row_base(float* out, const float* x, int64_t rs, const float* wp, const float* biasp,
                         const Window2d& g, int OC, int OCp, bool relu) {
    fc_forward_row_body<kFcBaseLanes>(out, x, rs, wp, biasp, g, OC, OCp, relu);
}
void fc_dweight_row_base(float* dwp, const float* x, int64_t rs, const float* d, int64_t ldd,
                         const Window2d& g, int OCp) {
    fc_dweight_row_body<kFcBaseLanes>(dwp, x, rs, d, ldd, g, OCp);
}
#if !defined(CNNKIT_NO_DISPATCH) && defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define CNNKIT_FC_AVX2 1
__attribute__((target("avx2,fma"))) void fc_forward_row_avx2(
        float* out, const float* x, int64_t rs, const float* wp, const float* biasp,
        const Window2d& g, int OC, int OCp, bool relu) {
    fc_forward_row_body<8>(out, x, rs, wp, biasp, g, OC, OCp, relu);
}
__attribute__((target("avx2,fma"))) void fc_dweight_row_avx2(
        float* dwp, const float* x, int64_t rs, const float* d, int64_t ldd, const Window2d& g, int OCp) {
    fc_dweight_row_body<8>(dwp, x, rs, d, ldd, g, OCp);
}
#endif

bool fc_use_avx2() {
#ifdef CNNKIT_FC_AVX2
    return std::strcmp(gemm::active_kernel().name, "generic") != 0;  // avx2 or avx512 CPUs
#else
    return false;
#endif
}

gemm::Buffer& tl_strip() { thread_local gemm::Buffer b; return b; }
gemm::Buffer& tl_fcw() { thread_local gemm::Buffer b; return b; }
gemm::Buffer& tl_drow() { thread_local gemm::Buffer b; return b; }

void few_channel_forward(float* out, const float* inp, const float* weight, const float* bias,
                         const Window2d& g, int OC, bool relu) {
    // inp is (N,H,W,C), weight is (KH,KW,C,OC), bias is (OC) or null, out is (N,OH,OW,OC)
    const int K = g.KH * g.KW * g.C, OCp = (int)gemm::round_up(OC, kFcOC);
    // Weights and bias padded with zero columns to whole register tiles (read by every thread).
    float* wp = gemm::reserve(tl_fcw(), (std::size_t)(K + 1) * OCp);
    float* biasp = wp + (int64_t)K * OCp;
    for (int k = 0; k < K; ++k)
        for (int o = 0; o < OCp; ++o) wp[(int64_t)k * OCp + o] = o < OC ? weight[(int64_t)k * OC + o] : 0.f;
    for (int o = 0; o < OCp; ++o) biasp[o] = bias && o < OC ? bias[o] : 0.f;
    const bool avx2 = fc_use_avx2();
    const std::size_t strip_len = (std::size_t)g.KH * ((g.OW - 1) * g.SW + g.KW) * g.C;
    // One output row per iteration: each output pixel is written by one thread.
#pragma omp parallel for schedule(static)
    for (int64_t row = 0; row < (int64_t)g.N * g.OH; ++row) {
        const int64_t n = row / g.OH;
        int64_t rs;
        float* strip = gemm::reserve(tl_strip(), strip_len);
        const float* x = fc_strip(inp, g, n, (int)(row - n * g.OH), strip, &rs);
        float* o = out + row * g.OW * OC;
#ifdef CNNKIT_FC_AVX2
        if (avx2) {
            fc_forward_row_avx2(o, x, rs, wp, biasp, g, OC, OCp, relu);
            continue;
        }
#endif
        (void)avx2;
        fc_forward_row_base(o, x, rs, wp, biasp, g, OC, OCp, relu);
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
    const std::size_t strip_len = (std::size_t)g.KH * ((g.OW - 1) * g.SW + g.KW) * g.C;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; ++t) {
        float* dwp = part + t * stride;
        float* db = dwp + (int64_t)K * OCp;
        std::fill(dwp, dwp + stride, 0.f);
        float* strip = gemm::reserve(tl_strip(), strip_len);
        // A dout row whose OC is not a whole number of tiles is copied, zero-padded, so that
        // a tile never reads past the array.
        float* dpad = OC == OCp ? nullptr : gemm::reserve(tl_drow(), (std::size_t)g.OW * OCp);
        for (int64_t row = std::min(rows, t * per); row < std::min(rows, (t + 1) * per); ++row) {
            const int64_t n = row / g.OH;
            const float* d = dout + row * g.OW * OC;
            for (int ow = 0; ow < g.OW; ++ow)
                for (int o = 0; o < OC; ++o) db[o] += d[(int64_t)ow * OC + o];
            if (!dweight) continue;
            if (dpad) {
                for (int ow = 0; ow < g.OW; ++ow)
                    for (int o = 0; o < OCp; ++o)
                        dpad[(int64_t)ow * OCp + o] = o < OC ? d[(int64_t)ow * OC + o] : 0.f;
                d = dpad;
            }
            int64_t rs;
            const float* x = fc_strip(inp, g, n, (int)(row - n * g.OH), strip, &rs);
#ifdef CNNKIT_FC_AVX2
            if (avx2) {
                fc_dweight_row_avx2(dwp, x, rs, d, OCp, g, OCp);
                continue;
            }
#endif
            (void)avx2;
            fc_dweight_row_base(dwp, x, rs, d, OCp, g, OCp);
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

}  // namespace

void conv2d_forward(float* out, const float* inp, const float* weight, const float* bias,
                    const Window2d& g, int OC, bool relu) {
    // inp is (N,H,W,C), weight is (KH,KW,C,OC), bias is (OC) or null, out is (N,OH,OW,OC)
    if (OC <= kSmallOC) switch (OC) {  // few output channels: a path of their own
        case 1: return small_oc_forward<1>(out, inp, weight, bias, g, relu);
        case 2: return small_oc_forward<2>(out, inp, weight, bias, g, relu);
        case 3: return small_oc_forward<3>(out, inp, weight, bias, g, relu);
        case 4: return small_oc_forward<4>(out, inp, weight, bias, g, relu);
        default: break;
    }
    if (g.C <= kFewC) return few_channel_forward(out, inp, weight, bias, g, OC, relu);
    const int64_t M = (int64_t)g.N * g.OH * g.OW, K = (int64_t)g.KH * g.KW * g.C;
    gemm::gemm_parallel(M, OC, K, im2col_view(inp, g), false, gemm::MatView{weight, OC}, false,
                        out, OC, false, bias, relu);
}

void conv2d_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                     const float* inp, const float* weight, const Window2d& g, int OC) {
    // dout is (N,OH,OW,OC), inp and dinp (N,H,W,C), weight and dweight (KH,KW,C,OC), dbias (OC)
    if (OC <= kSmallOC) switch (OC) {
        case 1: return small_oc_backward<1>(dinp, dweight, dbias, dout, inp, weight, g);
        case 2: return small_oc_backward<2>(dinp, dweight, dbias, dout, inp, weight, g);
        case 3: return small_oc_backward<3>(dinp, dweight, dbias, dout, inp, weight, g);
        case 4: return small_oc_backward<4>(dinp, dweight, dbias, dout, inp, weight, g);
        default: break;
    }
    if (g.C <= kFewC && (dweight || dbias)) {
        // The weight gradient reads the input in place; dinp, if asked for, takes the GEMM below.
        few_channel_weight_grad(dweight, dbias, dout, inp, g, OC);
        dweight = dbias = nullptr;
    }
    const int64_t P = (int64_t)g.OH * g.OW, M = g.N * P, K = (int64_t)g.KH * g.KW * g.C;
    const int64_t HWC = (int64_t)g.H * g.W * g.C;

    if (dweight || dbias) {
        // dweight = patches^T * dout, a reduction over all M output pixels: each chunk of pixels
        // makes a partial sum (in place when there is one chunk), then the partials are added.
        const int64_t T = std::max<int64_t>(1, std::min<int64_t>(gemm::max_threads(), M / 512));
        const int64_t per = (M + T - 1) / T;
        const int64_t stride = K * OC + OC;  // one chunk's dweight and dbias
        float* part = T > 1 ? gemm::reserve(tl_partials(), (std::size_t)(T * stride)) : nullptr;
        const gemm::Im2colView patches = im2col_view(inp, g);
#pragma omp parallel for schedule(static)
        for (int64_t t = 0; t < T; ++t) {
            const int64_t p0 = std::min(M, t * per), p1 = std::min(M, p0 + per);
            float* dw = T > 1 ? part + t * stride : dweight;
            float* db = T > 1 ? part + t * stride + K * OC : dbias;
            if (dweight)
                gemm::gemm_serial(K, OC, p1 - p0, gemm::RowOffset<gemm::Im2colView>{patches, p0},
                                  true, gemm::MatView{dout + p0 * OC, OC}, false, dw, OC, false);
            if (dbias) {
                std::fill(db, db + OC, 0.f);
                for (int64_t p = p0; p < p1; ++p) {
                    const float* d = dout + p * OC;
                    for (int oc = 0; oc < OC; ++oc) db[oc] += d[oc];
                }
            }
        }
        if (T > 1) {
            const int64_t nw = dweight ? K * OC : 0;
#pragma omp parallel for schedule(static) if (nw > 16384)
            for (int64_t e = 0; e < nw; ++e) {
                float s = 0.f;
                for (int64_t t = 0; t < T; ++t) s += part[t * stride + e];
                dweight[e] = s;
            }
            if (dbias)
                for (int oc = 0; oc < OC; ++oc) {
                    float s = 0.f;
                    for (int64_t t = 0; t < T; ++t) s += part[t * stride + K * OC + oc];
                    dbias[oc] = s;
                }
        }
    }

    if (dinp) {
        // dpatches = dout * weight^T, then scattered back (col2im). An image's dinp is touched
        // only by the thread that owns the image, so overlapping windows cannot race.
        const gemm::Kernel kr = gemm::active_kernel();
        const gemm::PackedB wt =
            gemm::pack_b_full(kr, gemm::MatView{weight, OC}, true, OC, K, gemm::tl_buf_fullb());
        // Rows per block: enough to amortise the packing, few enough for dpatches to stay in L2.
        const int64_t RB = std::max<int64_t>(kr.mr, std::min<int64_t>(P, (64 * 1024) / std::max<int64_t>(K, 1) / kr.mr * kr.mr));
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t n = 0; n < g.N; ++n) {
            float* dimg = dinp + n * HWC;
            std::fill(dimg, dimg + HWC, 0.f);
            float* dp = gemm::reserve(tl_dpatches(), (std::size_t)(RB * K));
            for (int64_t r0 = 0; r0 < P; r0 += RB) {
                const int rows = (int)std::min(RB, P - r0);
                const int64_t m0 = n * P + r0;
                gemm::gemm_rows(kr, m0, rows, 0, K, gemm::MatView{dout, OC}, false, wt, dp, K,
                                false, nullptr);
                col2im_add(dimg, dp, r0, rows, g);
            }
        }
    }
}

void conv2d_forward_naive(float* out, const float* inp, const float* weight, const float* bias,
                          const Window2d& g, int OC, bool relu) {
    // inp is (N,H,W,C), weight is (KH,KW,C,OC), bias is (OC) or null, out is (N,OH,OW,OC)
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < g.N; ++n)
        for (int oh = 0; oh < g.OH; ++oh)
            for (int ow = 0; ow < g.OW; ++ow) {
                float* o = out + ((n * g.OH + oh) * g.OW + ow) * OC;
                for (int oc = 0; oc < OC; ++oc) o[oc] = bias ? bias[oc] : 0.f;
                for (int kh = 0; kh < g.KH; ++kh) {
                    const int ih = oh * g.SH - g.PT + kh;
                    if (ih < 0 || ih >= g.H) continue;
                    for (int kw = 0; kw < g.KW; ++kw) {
                        const int iw = ow * g.SW - g.PL + kw;
                        if (iw < 0 || iw >= g.W) continue;
                        const float* x = inp + ((n * g.H + ih) * g.W + iw) * g.C;
                        const float* w = weight + ((int64_t)kh * g.KW + kw) * g.C * OC;
                        for (int c = 0; c < g.C; ++c)
                            for (int oc = 0; oc < OC; ++oc) o[oc] += x[c] * w[c * OC + oc];
                    }
                }
            }
    if (relu) relu_forward(out, out, (int64_t)g.N * g.OH * g.OW * OC);  // unfused, in place
}

void conv2d_backward_naive(float* dinp, float* dweight, float* dbias, const float* dout,
                           const float* inp, const float* weight, const Window2d& g, int OC) {
    // dout is (N,OH,OW,OC), inp and dinp (N,H,W,C), weight and dweight (KH,KW,C,OC), dbias (OC)
    const int64_t HWC = (int64_t)g.H * g.W * g.C;
    if (dinp) {
#pragma omp parallel for schedule(static)
        for (int64_t n = 0; n < g.N; ++n) {
            std::fill(dinp + n * HWC, dinp + (n + 1) * HWC, 0.f);
            for (int oh = 0; oh < g.OH; ++oh)
                for (int ow = 0; ow < g.OW; ++ow) {
                    const float* d = dout + ((n * g.OH + oh) * g.OW + ow) * OC;
                    for (int kh = 0; kh < g.KH; ++kh) {
                        const int ih = oh * g.SH - g.PT + kh;
                        if (ih < 0 || ih >= g.H) continue;
                        for (int kw = 0; kw < g.KW; ++kw) {
                            const int iw = ow * g.SW - g.PL + kw;
                            if (iw < 0 || iw >= g.W) continue;
                            float* x = dinp + ((n * g.H + ih) * g.W + iw) * g.C;
                            const float* w = weight + ((int64_t)kh * g.KW + kw) * g.C * OC;
                            for (int c = 0; c < g.C; ++c) {
                                float s = 0.f;
                                for (int oc = 0; oc < OC; ++oc) s += d[oc] * w[c * OC + oc];
                                x[c] += s;
                            }
                        }
                    }
                }
        }
    }
    if (dweight) {
        // One weight row (kh, kw, c) per iteration: each thread owns the rows it sums into.
        const int64_t K = (int64_t)g.KH * g.KW * g.C;
#pragma omp parallel for schedule(static)
        for (int64_t k = 0; k < K; ++k) {
            const int c = (int)(k % g.C), kw = (int)(k / g.C % g.KW), kh = (int)(k / g.C / g.KW);
            float* dw = dweight + k * OC;
            std::fill(dw, dw + OC, 0.f);
            for (int64_t n = 0; n < g.N; ++n)
                for (int oh = 0; oh < g.OH; ++oh) {
                    const int ih = oh * g.SH - g.PT + kh;
                    if (ih < 0 || ih >= g.H) continue;
                    for (int ow = 0; ow < g.OW; ++ow) {
                        const int iw = ow * g.SW - g.PL + kw;
                        if (iw < 0 || iw >= g.W) continue;
                        const float x = inp[((n * g.H + ih) * g.W + iw) * g.C + c];
                        const float* d = dout + ((n * g.OH + oh) * g.OW + ow) * OC;
                        for (int oc = 0; oc < OC; ++oc) dw[oc] += x * d[oc];
                    }
                }
        }
    }
    if (dbias) {
        const int64_t M = (int64_t)g.N * g.OH * g.OW;
        std::fill(dbias, dbias + OC, 0.f);
        for (int64_t p = 0; p < M; ++p)
            for (int oc = 0; oc < OC; ++oc) dbias[oc] += dout[p * OC + oc];
    }
}

}  // namespace cnnkit
