// conv/depthwise.cpp: depthwise convolution (one input channel per group) over NHWC batches,
// forward and backward, with depth multiplier 1 (DM > 1 runs the naive loops).
//
// NHWC puts a pixel's channels side by side, so every loop here runs across channels in blocks
// of L lanes (GCC vectors; 16 on AVX-512, 8 on AVX2, then 8, 4, 2, 1 for the channels left
// over). For a block of channels of one output row, a 3x3 or 5x5 kernel's taps stay in registers
// while the row streams by: one load and one multiply-add per tap and output vector.
//   forward       out row (n, oh) from the KH input rows it reads (a row outside the image reads
//                 a row of zeros); the columns whose taps leave the image are done apart.
//   input grad.   stride 1: the forward pass of dout with the kernel flipped; larger strides:
//                 each dinp row gathers the (tap, output) pairs that read it, from tables.
//   weight grad.  per-thread partial sums over a range of output rows, taps in registers.
// The bodies are compiled for the build's baseline and, where the x86 kernels are compiled
// (cpu_features.h), for AVX2+FMA and AVX-512, picked by cpu::active_isa() once per call.
// OpenMP: parallel for over output rows (forward, weight gradient's ranges) and input rows
// (input gradient); every output element is written by one thread.
#include <algorithm>
#include <vector>

#include "../cpu_features.h"
#include "conv2d_impl.h"

namespace cnnkit {
namespace conv {
namespace {

// Vectors of L floats (L = 1: a plain float), and their unaligned form for loads and stores.
template <int L>
struct Lanes {
    typedef float V __attribute__((vector_size(L * sizeof(float))));
    typedef float VU __attribute__((vector_size(L * sizeof(float)), aligned(alignof(float))));
};
template <>
struct Lanes<1> {
    typedef float V;
    typedef float VU;
};
#define CNNKIT_LD(p) (*reinterpret_cast<const VU*>(p))
#define CNNKIT_ST(p) (*reinterpret_cast<VU*>(p))

#if defined(__AVX512F__)
constexpr int kBaseLanes = 16;
#elif defined(__AVX__)
constexpr int kBaseLanes = 8;
#else
constexpr int kBaseLanes = 4;
#endif

constexpr int kMaxTaps = 32;  // kernel rows of the fast path (the naive loops take taller ones)

// What a row of work needs besides its pointers.
struct Span {
    const Window2d* g;
    int lo, hi;  // output columns [lo, hi) whose taps all lie inside the image
};

// Output columns whose KW taps (dilated) all lie inside the image.
Span inside_columns(const Window2d& g) {
    const int lo = std::min(g.OW, (g.PL + g.SW - 1) / g.SW);
    const int last = g.W - 1 - (g.KW - 1) * g.DW + g.PL;  // largest ow*SW allowed
    const int hi = last < 0 ? lo : std::max(lo, std::min(g.OW, last / g.SW + 1));
    return Span{&g, lo, hi};
}

// ---------------------------------------------------------------- forward
// orow[ow*C + c ..] for one block of L channels at c: bias + sum over taps of x * w, x from the
// KH row pointers xr (each at column 0 of its input row, or a zero row). FKH x FKW: a kernel
// size known at compile time, whose weights stay in registers; 0 x 0: any size.
template <int L, int FKH, int FKW>
__attribute__((always_inline)) inline void fwd_block(float* orow, const float* const* xr,
                                                     const float* w, const float* bias, Span s,
                                                     int c, bool relu, bool edges_only = false) {
    typedef typename Lanes<L>::V V;
    typedef typename Lanes<L>::VU VU;
    const Window2d& g = *s.g;
    const int KH = FKH ? FKH : g.KH, KW = FKW ? FKW : g.KW;
    const int64_t C = g.C, ts = (int64_t)g.DW * C;
    const V b = bias ? CNNKIT_LD(bias + c) : V{};
    [[maybe_unused]] V wv[FKH * FKW > 0 ? FKH * FKW : 1];
    if constexpr (FKH * FKW > 0)
        for (int t = 0; t < FKH * FKW; ++t) wv[t] = CNNKIT_LD(w + t * C + c);
    for (int ow = 0; ow < g.OW; ++ow) {
        if (ow == s.lo && s.hi > s.lo && edges_only) {  // the inside: done by the caller
            ow = s.hi;
            if (ow == g.OW) break;
        }
        if (ow == s.lo && s.hi > s.lo) {  // the inside columns: no checks
            for (; ow < s.hi; ++ow) {
                const int64_t xo = (int64_t)(ow * g.SW - g.PL) * C + c;
                V acc = b;
                for (int kh = 0; kh < KH; ++kh) {
                    const float* x = xr[kh] + xo;
                    for (int kw = 0; kw < KW; ++kw) {
                        V wk;
                        if constexpr (FKH * FKW > 0) wk = wv[kh * FKW + kw];
                        else wk = CNNKIT_LD(w + (kh * KW + kw) * C + c);
                        acc += CNNKIT_LD(x + kw * ts) * wk;
                    }
                }
                if (relu) acc = acc < 0.f ? V{} : acc;  // NaN passes, as relu_forward
                CNNKIT_ST(orow + ow * C + c) = acc;
            }
            if (ow == g.OW) break;
        }
        const int iw0 = ow * g.SW - g.PL;
        V acc = b;
        for (int kh = 0; kh < KH; ++kh)
            for (int kw = 0; kw < KW; ++kw) {
                const int iw = iw0 + kw * g.DW;
                if (iw < 0 || iw >= g.W) continue;
                V wk;
                if constexpr (FKH * FKW > 0) wk = wv[kh * FKW + kw];
                else wk = CNNKIT_LD(w + (kh * KW + kw) * C + c);
                acc += CNNKIT_LD(xr[kh] + iw * C + c) * wk;
            }
        if (relu) acc = acc < 0.f ? V{} : acc;
        CNNKIT_ST(orow + ow * C + c) = acc;
    }
}

// Channels c0.. in blocks of L, the rest in narrower blocks.
template <int L, int FKH, int FKW>
__attribute__((always_inline)) inline void fwd_channels(float* orow, const float* const* xr,
                                                        const float* w, const float* bias, Span s,
                                                        int c, bool relu) {
    for (; c + L <= s.g->C; c += L) fwd_block<L, FKH, FKW>(orow, xr, w, bias, s, c, relu);
    if constexpr (L > 1) fwd_channels<L / 2, FKH, FKW>(orow, xr, w, bias, s, c, relu);
}

// The inside columns of a 3x3 kernel, pixel by pixel and all channels of a pixel in turn (C a
// multiple of L): the row is read front to back, once. Channel block by channel block instead,
// each block walks the whole row at a stride of C floats, a cache line or more per load; with
// 64-256 channels that ran at a third of the copy bandwidth (MobileNet's layers, AVX2). The
// weights come from L1 (9 x C floats), not registers; the sums keep the same order.
template <int L>
__attribute__((always_inline)) inline void fwd_inside_3x3(float* orow, const float* const* xr,
                                                          const float* w, const float* bias,
                                                          Span s, bool relu) {
    typedef typename Lanes<L>::V V;
    typedef typename Lanes<L>::VU VU;
    const Window2d& g = *s.g;
    const int64_t C = g.C, ts = (int64_t)g.DW * C;
    for (int ow = s.lo; ow < s.hi; ++ow) {
        const int64_t xo = (int64_t)(ow * g.SW - g.PL) * C;
        const float *x0 = xr[0] + xo, *x1 = xr[1] + xo, *x2 = xr[2] + xo;
        float* o = orow + ow * C;
        for (int64_t c = 0; c < C; c += L) {
            V acc = bias ? CNNKIT_LD(bias + c) : V{};
            acc += CNNKIT_LD(x0 + c) * CNNKIT_LD(w + c);
            acc += CNNKIT_LD(x0 + ts + c) * CNNKIT_LD(w + C + c);
            acc += CNNKIT_LD(x0 + 2 * ts + c) * CNNKIT_LD(w + 2 * C + c);
            acc += CNNKIT_LD(x1 + c) * CNNKIT_LD(w + 3 * C + c);
            acc += CNNKIT_LD(x1 + ts + c) * CNNKIT_LD(w + 4 * C + c);
            acc += CNNKIT_LD(x1 + 2 * ts + c) * CNNKIT_LD(w + 5 * C + c);
            acc += CNNKIT_LD(x2 + c) * CNNKIT_LD(w + 6 * C + c);
            acc += CNNKIT_LD(x2 + ts + c) * CNNKIT_LD(w + 7 * C + c);
            acc += CNNKIT_LD(x2 + 2 * ts + c) * CNNKIT_LD(w + 8 * C + c);
            if (relu) acc = acc < 0.f ? V{} : acc;  // NaN passes, as relu_forward
            CNNKIT_ST(o + c) = acc;
        }
    }
}

template <int L>
__attribute__((always_inline)) inline void fwd_row_body(float* orow, const float* const* xr,
                                                        const float* w, const float* bias, Span s,
                                                        bool relu) {
    const int KH = s.g->KH, KW = s.g->KW;
    if (KH == 3 && KW == 3 && s.g->C % L == 0 && L > 1) {
        fwd_inside_3x3<L>(orow, xr, w, bias, s, relu);
        for (int c = 0; c < s.g->C; c += L)  // the edge columns, block by block
            fwd_block<L, 3, 3>(orow, xr, w, bias, s, c, relu, true);
        return;
    }
    if (KH == 3 && KW == 3) return fwd_channels<L, 3, 3>(orow, xr, w, bias, s, 0, relu);
    if (KH == 5 && KW == 5) return fwd_channels<L, 5, 5>(orow, xr, w, bias, s, 0, relu);
    fwd_channels<L, 0, 0>(orow, xr, w, bias, s, 0, relu);
}

// ---------------------------------------------------------------- input gradient, strides > 1
// dxrow[iw*C + c ..] = sum over the pairs (kh, oh) of this input row (drow[r]: dout row oh,
// khs[r]: kh) and the pairs (kw, ow) of column iw (cols + iw*(1 + 2*KW): count, then pairs) of
// dout * w.
template <int L>
__attribute__((always_inline)) inline void dx_block(float* dxrow, const float* const* drow,
                                                    const int* khs, int nk, const int* cols,
                                                    const float* w, const Window2d& g, int c) {
    typedef typename Lanes<L>::V V;
    typedef typename Lanes<L>::VU VU;
    const int64_t C = g.C;
    const int ce = 1 + 2 * g.KW;
    for (int iw = 0; iw < g.W; ++iw) {
        const int* e = cols + iw * ce;
        V acc = V{};
        for (int r = 0; r < nk; ++r) {
            const float* wr = w + (int64_t)khs[r] * g.KW * C + c;
            for (int q = 0; q < e[0]; ++q)
                acc += CNNKIT_LD(drow[r] + e[2 + 2 * q] * C + c) * CNNKIT_LD(wr + e[1 + 2 * q] * C);
        }
        CNNKIT_ST(dxrow + iw * C + c) = acc;
    }
}

template <int L>
__attribute__((always_inline)) inline void dx_channels(float* dxrow, const float* const* drow,
                                                       const int* khs, int nk, const int* cols,
                                                       const float* w, const Window2d& g, int c) {
    for (; c + L <= g.C; c += L) dx_block<L>(dxrow, drow, khs, nk, cols, w, g, c);
    if constexpr (L > 1) dx_channels<L / 2>(dxrow, drow, khs, nk, cols, w, g, c);
}

// ---------------------------------------------------------------- weight gradient
// dwp (KH*KW, C) and dbp (C) += the taps of one output row: dout row d times the input rows xr.
template <int L, int FKH, int FKW>
__attribute__((always_inline)) inline void dw_block(float* dwp, float* dbp, const float* const* xr,
                                                    const float* d, Span s, int c) {
    typedef typename Lanes<L>::V V;
    typedef typename Lanes<L>::VU VU;
    const Window2d& g = *s.g;
    const int KH = FKH ? FKH : g.KH, KW = FKW ? FKW : g.KW;
    const int64_t C = g.C, ts = (int64_t)g.DW * C;
    [[maybe_unused]] V acc[FKH * FKW > 0 ? FKH * FKW : 1];
    if constexpr (FKH * FKW > 0)
        for (int t = 0; t < FKH * FKW; ++t) acc[t] = CNNKIT_LD(dwp + t * C + c);
    V accb = CNNKIT_LD(dbp + c);
    for (int ow = 0; ow < g.OW; ++ow) {
        const V dv = CNNKIT_LD(d + ow * C + c);
        accb += dv;
        const int iw0 = ow * g.SW - g.PL;
        const bool inside = ow >= s.lo && ow < s.hi;
        for (int kh = 0; kh < KH; ++kh)
            for (int kw = 0; kw < KW; ++kw) {
                const int iw = iw0 + kw * g.DW;
                if (!inside && (iw < 0 || iw >= g.W)) continue;
                const V p = dv * CNNKIT_LD(xr[kh] + (int64_t)iw0 * C + kw * ts + c);
                if constexpr (FKH * FKW > 0) acc[kh * FKW + kw] += p;
                else CNNKIT_ST(dwp + (kh * KW + kw) * C + c) = CNNKIT_LD(dwp + (kh * KW + kw) * C + c) + p;
            }
    }
    if constexpr (FKH * FKW > 0)
        for (int t = 0; t < FKH * FKW; ++t) CNNKIT_ST(dwp + t * C + c) = acc[t];
    CNNKIT_ST(dbp + c) = accb;
}

template <int L, int FKH, int FKW>
__attribute__((always_inline)) inline void dw_channels(float* dwp, float* dbp, const float* const* xr,
                                                       const float* d, Span s, int c) {
    for (; c + L <= s.g->C; c += L) dw_block<L, FKH, FKW>(dwp, dbp, xr, d, s, c);
    if constexpr (L > 1) dw_channels<L / 2, FKH, FKW>(dwp, dbp, xr, d, s, c);
}

template <int L>
__attribute__((always_inline)) inline void dw_row_body(float* dwp, float* dbp, const float* const* xr,
                                                       const float* d, Span s) {
    const int KH = s.g->KH, KW = s.g->KW;
    if (KH == 3 && KW == 3) return dw_channels<L, 3, 3>(dwp, dbp, xr, d, s, 0);
    if (KH == 5 && KW == 5) return dw_channels<L, 5, 5>(dwp, dbp, xr, d, s, 0);
    dw_channels<L, 0, 0>(dwp, dbp, xr, d, s, 0);
}

// ---------------------------------------------------------------- one function per ISA
// The row functions every variant defines; kernels call them through this table.
struct RowFns {
    void (*fwd)(float*, const float* const*, const float*, const float*, Span, bool);
    void (*dx)(float*, const float* const*, const int*, int, const int*, const float*, const Window2d&);
    void (*dw)(float*, float*, const float* const*, const float*, Span);
};

#define CNNKIT_DW_VARIANT(NAME, ATTR, L)                                                         \
    ATTR void NAME##_fwd(float* orow, const float* const* xr, const float* w, const float* bias, \
                         Span s, bool relu) {                                                   \
        fwd_row_body<L>(orow, xr, w, bias, s, relu);                                             \
    }                                                                                            \
    ATTR void NAME##_dx(float* dxrow, const float* const* drow, const int* khs, int nk,          \
                        const int* cols, const float* w, const Window2d& g) {                    \
        dx_channels<L>(dxrow, drow, khs, nk, cols, w, g, 0);                                     \
    }                                                                                            \
    ATTR void NAME##_dw(float* dwp, float* dbp, const float* const* xr, const float* d, Span s) { \
        dw_row_body<L>(dwp, dbp, xr, d, s);                                                      \
    }                                                                                            \
    const RowFns NAME{NAME##_fwd, NAME##_dx, NAME##_dw};

CNNKIT_DW_VARIANT(kBase, , kBaseLanes)
#ifdef CNNKIT_X86_KERNELS
CNNKIT_DW_VARIANT(kAvx2, __attribute__((target("avx2,fma"))), 8)
CNNKIT_DW_VARIANT(kAvx512, __attribute__((target("avx512f"))), 16)
#endif
#undef CNNKIT_DW_VARIANT

const RowFns& row_fns() {
#ifdef CNNKIT_X86_KERNELS
    switch (cpu::active_isa()) {
        case cpu::Isa::kAvx512: return kAvx512;
        case cpu::Isa::kAvx2: return kAvx2;
        default: break;
    }
#endif
    return kBase;
}

gemm::Buffer& tl_zeros() { thread_local gemm::Buffer b; return b; }  // only ever grown: zeros
std::vector<int>& tl_cols() { thread_local std::vector<int> v; return v; }

// A row of W*C zeros, read in place of the input rows outside the image.
const float* zero_row(const Window2d& g) {
    return gemm::reserve(tl_zeros(), (std::size_t)g.W * g.C);
}

// Forward of DM = 1 over the whole batch with the row functions f.
void forward_dm1(const RowFns& f, float* out, const float* inp, const float* weight,
                 const float* bias, const Window2d& g, bool relu) {
    const Span s = inside_columns(g);
    const float* zeros = zero_row(g);
    const int64_t rowlen = (int64_t)g.W * g.C;
#pragma omp parallel for schedule(static)
    for (int64_t row = 0; row < (int64_t)g.N * g.OH; ++row) {
        const int64_t n = row / g.OH;
        const int oh = (int)(row - n * g.OH);
        const float* xr[kMaxTaps];
        for (int kh = 0; kh < g.KH; ++kh) {
            const int ih = oh * g.SH - g.PT + kh * g.DH;
            xr[kh] = ih >= 0 && ih < g.H ? inp + (n * g.H + ih) * rowlen : zeros;
        }
        f.fwd(out + row * g.OW * g.C, xr, weight, bias, s, relu);
    }
}

}  // namespace
}  // namespace conv

void depthwise_conv2d_forward(float* out, const float* inp, const float* weight,
                              const float* bias, const Window2d& g, int DM, bool relu) {
    // inp is (N,H,W,C), weight is (KH,KW,C,DM), bias is (C*DM) or null, out is (N,OH,OW,C*DM)
    if (DM != 1 || g.KH > conv::kMaxTaps)
        return depthwise_conv2d_forward_naive(out, inp, weight, bias, g, DM, relu);
    conv::forward_dm1(conv::row_fns(), out, inp, weight, bias, g, relu);
}

void depthwise_conv2d_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                               const float* inp, const float* weight, const Window2d& g, int DM) {
    // dout is (N,OH,OW,C), inp and dinp (N,H,W,C), weight and dweight (KH,KW,C,1), dbias (C)
    using namespace conv;
    if (DM != 1 || g.KH > kMaxTaps)
        return depthwise_conv2d_backward_naive(dinp, dweight, dbias, dout, inp, weight, g, DM);
    const RowFns& f = row_fns();
    const int64_t C = g.C, taps = (int64_t)g.KH * g.KW;
    if (dinp && g.SH == 1 && g.SW == 1) {
        // dinp = dout convolved with the flipped kernel: input row ih reads output rows
        // ih + PT - kh*DH, i.e. padding (KH-1)*DH - PT before, over an OH x OW input.
        float* wf = gemm::reserve(tl_wt(), (std::size_t)(taps * C));
        for (int64_t t = 0; t < taps; ++t)
            std::copy(weight + t * C, weight + (t + 1) * C, wf + (taps - 1 - t) * C);
        Window2d t = g;
        t.H = g.OH, t.W = g.OW, t.OH = g.H, t.OW = g.W;
        t.PT = (g.KH - 1) * g.DH - g.PT, t.PL = (g.KW - 1) * g.DW - g.PL;
        forward_dm1(f, dinp, dout, wf, nullptr, t, false);
    } else if (dinp) {
        // Column tables: for each input column iw, the (kw, ow) pairs with ow*SW - PL + kw*DW = iw.
        const int ce = 1 + 2 * g.KW;
        std::vector<int>& cols = tl_cols();
        cols.assign((std::size_t)g.W * ce, 0);
        for (int iw = 0; iw < g.W; ++iw) {
            int* e = cols.data() + (std::size_t)iw * ce;
            for (int kw = 0; kw < g.KW; ++kw) {
                const int t = iw + g.PL - kw * g.DW;
                if (t < 0 || t % g.SW != 0 || t / g.SW >= g.OW) continue;
                e[1 + 2 * e[0]] = kw;
                e[2 + 2 * e[0]] = t / g.SW;
                ++e[0];
            }
        }
        const int* ctab = cols.data();
#pragma omp parallel for schedule(static)
        for (int64_t row = 0; row < (int64_t)g.N * g.H; ++row) {
            const int64_t n = row / g.H;
            const int ih = (int)(row - n * g.H);
            const float* drow[kMaxTaps];
            int khs[kMaxTaps], nk = 0;
            for (int kh = 0; kh < g.KH; ++kh) {
                const int t = ih + g.PT - kh * g.DH;
                if (t < 0 || t % g.SH != 0 || t / g.SH >= g.OH) continue;
                drow[nk] = dout + ((n * g.OH + t / g.SH) * g.OW) * C;
                khs[nk++] = kh;
            }
            f.dx(dinp + row * g.W * C, drow, khs, nk, ctab, weight, g);
        }
    }
    if (dweight || dbias) {
        // Per-thread partial sums of dweight (KH*KW, C) and dbias (C) over contiguous ranges
        // of output rows, then one reduction.
        const int64_t rows = (int64_t)g.N * g.OH;
        const int64_t T = std::max<int64_t>(1, std::min<int64_t>(gemm::max_threads(), rows * g.OW / 256));
        const int64_t per = (rows + T - 1) / T, stride = (taps + 1) * C;
        float* part = gemm::reserve(tl_partials(), (std::size_t)(T * stride));
        const Span s = inside_columns(g);
        const float* zeros = zero_row(g);
        const int64_t rowlen = (int64_t)g.W * C;
#pragma omp parallel for schedule(static)
        for (int64_t t = 0; t < T; ++t) {
            float* dwp = part + t * stride;
            std::fill(dwp, dwp + stride, 0.f);
            for (int64_t row = std::min(rows, t * per); row < std::min(rows, (t + 1) * per); ++row) {
                const int64_t n = row / g.OH;
                const int oh = (int)(row - n * g.OH);
                const float* xr[kMaxTaps];
                for (int kh = 0; kh < g.KH; ++kh) {
                    const int ih = oh * g.SH - g.PT + kh * g.DH;
                    xr[kh] = ih >= 0 && ih < g.H ? inp + (n * g.H + ih) * rowlen : zeros;
                }
                f.dw(dwp, dwp + taps * C, xr, dout + row * g.OW * C, s);
            }
        }
        const int64_t nout = stride;
#pragma omp parallel for schedule(static) if (nout > 16384)
        for (int64_t e = 0; e < nout; ++e) {
            float v = 0.f;
            for (int64_t t = 0; t < T; ++t) v += part[t * stride + e];
            if (e < taps * C) {
                if (dweight) dweight[e] = v;
            } else if (dbias) {
                dbias[e - taps * C] = v;
            }
        }
    }
}

}  // namespace cnnkit
