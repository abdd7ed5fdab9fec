// conv/conv2d_few_channels.cpp: convolutions with few input channels (C <= kFewC, a first layer
// on RGB images): the forward pass and the weight gradient (the input gradient takes the GEMM).
// The register-tile bodies are compiled for the build's baseline and, where the x86 kernels are
// compiled (cpu_features.h), for AVX2+FMA, picked by cpu::active_isa().
// OpenMP: parallel for over output rows (forward), per-thread partial sums (weight gradient).
#include <algorithm>
#include <cstring>

#include "../cpu_features.h"
#include "conv2d_impl.h"

namespace cnnkit {
namespace conv {
namespace {

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
// x86 micro-kernels are compiled, for AVX2+FMA, picked like the GEMM's by cpu::active_isa().
void fc_forward_row_base(float* out, const float* x, int64_t rs, const float* wp, const float* biasp,
                         const Window2d& g, int OC, int OCp, bool relu) {
    fc_forward_row_body<kFcBaseLanes>(out, x, rs, wp, biasp, g, OC, OCp, relu);
}
void fc_dweight_row_base(float* dwp, const float* x, int64_t rs, const float* d, int64_t ldd,
                         const Window2d& g, int OCp) {
    fc_dweight_row_body<kFcBaseLanes>(dwp, x, rs, d, ldd, g, OCp);
}
#ifdef CNNKIT_X86_KERNELS
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
    return cpu::active_isa() >= cpu::Isa::kAvx2;  // avx2 or avx512 CPUs
#else
    return false;
#endif
}

gemm::Buffer& tl_strip() { thread_local gemm::Buffer b; return b; }
gemm::Buffer& tl_fcw() { thread_local gemm::Buffer b; return b; }
gemm::Buffer& tl_drow() { thread_local gemm::Buffer b; return b; }

}  // namespace

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
}  // namespace conv
}  // namespace cnnkit
