// conv/conv2d_small_oc.cpp: convolutions with few output channels (OC <= kSmallOC, an RGB output
// layer), forward and backward, as direct dot products on GCC vectors (baseline C++).
// OpenMP: parallel for over output rows (forward), per-chunk partial sums (weight gradient) and
// images (input gradient); each output element is written by one thread.
#include <algorithm>

#include "conv2d_impl.h"

namespace cnnkit {
namespace conv {
namespace {

gemm::Buffer& tl_patch() { thread_local gemm::Buffer b; return b; }

// With OC <= kSmallOC (an RGB output layer) the GEMM is the wrong tool: OC fills 3 of the 16
// columns of its register tile, and packing a patch (K floats per pixel) costs about as much as
// the OC*K multiply-adds it feeds. These versions read the input in place instead, with the
// weights transposed to wt (OC,K) so that a kernel row dy is KW*C consecutive floats of both.
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

// r[j] = the sum of the 8 lanes of v[j], for j < 8: pairs, then quads, then halves of lanes are
// added across vectors (14 shuffles and 7 additions instead of 56 lane extractions and adds).
typedef int VecI __attribute__((vector_size(kLanes * sizeof(int))));
inline void reduce8(const VecF* v, float* r) {
    const VecI even{0, 8, 2, 10, 4, 12, 6, 14}, odd{1, 9, 3, 11, 5, 13, 7, 15};
    const VecI lo2{0, 1, 8, 9, 4, 5, 12, 13}, hi2{2, 3, 10, 11, 6, 7, 14, 15};
    const VecI lo4{0, 1, 2, 3, 8, 9, 10, 11}, hi4{4, 5, 6, 7, 12, 13, 14, 15};
    VecF p[4], q[2];
    for (int k = 0; k < 4; ++k)  // lanes: v2k and v2k+1's sums of lane pairs, interleaved
        p[k] = __builtin_shuffle(v[2 * k], v[2 * k + 1], even) + __builtin_shuffle(v[2 * k], v[2 * k + 1], odd);
    for (int k = 0; k < 2; ++k)  // v4k .. v4k+3's sums of lane quads (each half of the lanes)
        q[k] = __builtin_shuffle(p[2 * k], p[2 * k + 1], lo2) + __builtin_shuffle(p[2 * k], p[2 * k + 1], hi2);
    const VecF all = __builtin_shuffle(q[0], q[1], lo4) + __builtin_shuffle(q[0], q[1], hi4);
    for (int j = 0; j < kLanes; ++j) r[j] = all[j];
}

// acc[i*OC + o] = the vector part of pixel i's dot product with wt row o (lanes still to be
// added): its own function, not inlined, so that the P*OC accumulators stay in registers (inlined
// into small_oc_dots, with the tail and the epilogue around it, GCC kept one in memory, loaded
// and stored on every step: 33 GFLOP/s at an autoencoder's 32->3 layer, AVX2).
template <int OC, int P>
__attribute__((noinline)) void small_oc_accumulate(VecF* acc_out, const float* const* x,
                                                   const int64_t* rs, const float* wt, int KH,
                                                   int rowlen) {
    const int K = KH * rowlen, qv = rowlen / kLanes * kLanes;
    VecF acc[P][OC];
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
    }
    for (int i = 0; i < P; ++i)
        for (int o = 0; o < OC; ++o) acc_out[i * OC + o] = acc[i][o];
}

template <int OC, int P>
void small_oc_dots(float* out, int np, const float* const* x, const int64_t* rs, const float* wt,
                   int KH, int rowlen, const float* bias, bool relu) {
    const int K = KH * rowlen, qv = rowlen / kLanes * kLanes;
    // The P*OC horizontal sums, eight accumulators at a time by a shuffle tree (lane by lane
    // they cost about half as much as the multiply-adds of a tile).
    constexpr int J = P * OC, JP = (J + kLanes - 1) / kLanes * kLanes;
    VecF flat[JP];
    small_oc_accumulate<OC, P>(flat, x, rs, wt, KH, rowlen);
    for (int j = J; j < JP; ++j) flat[j] = VecF{};
    float sums[JP];
    for (int j = 0; j < JP; j += kLanes) reduce8(flat + j, sums + j);
    for (int dy = 0; dy < KH; ++dy)  // the columns past the last whole vector of each row
        for (int q = qv; q < rowlen; ++q)
            for (int i = 0; i < P; ++i)
                for (int o = 0; o < OC; ++o)
                    sums[i * OC + o] += x[i][dy * rs[i] + q] * wt[o * K + dy * rowlen + q];
    for (int i = 0; i < np; ++i)
        for (int o = 0; o < OC; ++o) {
            const float s = (bias ? bias[o] : 0.f) + sums[i * OC + o];
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
    // P*OC accumulators + OC weight vectors + P input vectors within the 16 registers.
    constexpr int P = OC == 1 ? 8 : OC == 2 ? 4 : OC == 3 ? 3 : 2;
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

// dwt[o][q0 .. q0+NV*kLanes) (row stride K) += sum over the OW pixels of one output row of
// dout[pixel][o] * x[pixel*ps + q] (x: the strip position of this kernel row's column q0 at
// pixel 0): OC x NV vector accumulators stay in registers across the row, each input vector
// loaded serves OC multiply-adds and each dout value, broadcast, NV. (Adding each pixel's
// products into dwt in memory, as before, made the weight gradient load and store a vector
// for every 1-4 multiply-adds: 23 GFLOP/s at an autoencoder's 32->3 layer, AVX2.)
template <int OC, int NV>
inline void small_oc_dweight_tile(float* dwt, int64_t K, const float* x, int64_t ps,
                                  const float* d, int OW) {
    VecF acc[OC][NV];
    for (int o = 0; o < OC; ++o)
        for (int v = 0; v < NV; ++v) acc[o][v] = *reinterpret_cast<const VecFU*>(dwt + o * K + v * kLanes);
    for (int ow = 0; ow < OW; ++ow, x += ps, d += OC) {
        VecF xv[NV];
        for (int v = 0; v < NV; ++v) xv[v] = *reinterpret_cast<const VecFU*>(x + v * kLanes);
        for (int o = 0; o < OC; ++o) {
            const float dv = d[o];
            for (int v = 0; v < NV; ++v) acc[o][v] += dv * xv[v];
        }
    }
    for (int o = 0; o < OC; ++o)
        for (int v = 0; v < NV; ++v) *reinterpret_cast<VecFU*>(dwt + o * K + v * kLanes) = acc[o][v];
}

// dwt (OC, K) += the weight gradient of one output row: strip x (KH rows of row stride rs,
// zero-padded where the window leaves the image), dout row d (OW, OC).
template <int OC>
void small_oc_dweight_row(float* dwt, const float* x, int64_t rs, const float* d,
                          const Window2d& g) {
    constexpr int NV = OC <= 2 ? 4 : OC == 3 ? 3 : 2;  // OC*NV accumulators + NV inputs <= 16
    const int rowlen = g.KW * g.C, K = g.KH * rowlen;
    const int64_t ps = (int64_t)g.SW * g.C;
    for (int dy = 0; dy < g.KH; ++dy) {
        const float* xr = x + dy * rs;
        float* w = dwt + dy * rowlen;
        int q = 0;
        for (; q + NV * kLanes <= rowlen; q += NV * kLanes)
            small_oc_dweight_tile<OC, NV>(w + q, K, xr + q, ps, d, g.OW);
        for (; q + kLanes <= rowlen; q += kLanes)
            small_oc_dweight_tile<OC, 1>(w + q, K, xr + q, ps, d, g.OW);
        for (; q < rowlen; ++q)
            for (int ow = 0; ow < g.OW; ++ow)
                for (int o = 0; o < OC; ++o) w[o * K + q] += d[ow * OC + o] * xr[ow * ps + q];
    }
}

template <int OC>
void small_oc_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                       const float* inp, const float* weight, const Window2d& g) {
    // dout is (N,OH,OW,OC), inp and dinp (N,H,W,C), weight and dweight (KH,KW,C,OC), dbias (OC)
    const int rowlen = g.KW * g.C, K = g.KH * rowlen;
    const int64_t P = (int64_t)g.OH * g.OW, M = g.N * P, HWC = (int64_t)g.H * g.W * g.C;
    if (dweight || dbias) {
        // Per-chunk partial sums of dweight^T (OC,K) and dbias over ranges of output rows, then
        // one reduction.
        const int64_t rows = (int64_t)g.N * g.OH;
        const int64_t T = std::max<int64_t>(1, std::min<int64_t>(gemm::max_threads(), M / 512));
        const int64_t per = (rows + T - 1) / T, stride = (int64_t)K * OC + OC;
        float* part = gemm::reserve(tl_partials(), (std::size_t)(T * stride));
        const std::size_t strip_len = (std::size_t)g.KH * ((g.OW - 1) * g.SW + g.KW) * g.C;
#pragma omp parallel for schedule(static)
        for (int64_t t = 0; t < T; ++t) {
            float* dwt = part + t * stride;
            float* db = dwt + (int64_t)K * OC;
            std::fill(dwt, dwt + stride, 0.f);
            float* buf = gemm::reserve(tl_patch(), strip_len);
            for (int64_t row = std::min(rows, t * per); row < std::min(rows, (t + 1) * per); ++row) {
                const int64_t n = row / g.OH;
                const float* d = dout + row * g.OW * OC;
                for (int ow = 0; ow < g.OW; ++ow)
                    for (int o = 0; o < OC; ++o) db[o] += d[ow * OC + o];
                if (!dweight) continue;
                int64_t rs;
                const int oh = (int)(row - n * g.OH);
                const float* x = input_block(inp, g, n, oh, oh + 1, buf, &rs);
                small_oc_dweight_row<OC>(dwt, x, rs, d, g);
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

}  // namespace

void small_oc_forward(float* out, const float* inp, const float* weight, const float* bias,
                      const Window2d& g, int OC, bool relu) {
    switch (OC) {
        case 1: return small_oc_forward<1>(out, inp, weight, bias, g, relu);
        case 2: return small_oc_forward<2>(out, inp, weight, bias, g, relu);
        case 3: return small_oc_forward<3>(out, inp, weight, bias, g, relu);
        default: return small_oc_forward<4>(out, inp, weight, bias, g, relu);
    }
}

void small_oc_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                       const float* inp, const float* weight, const Window2d& g, int OC) {
    switch (OC) {
        case 1: return small_oc_backward<1>(dinp, dweight, dbias, dout, inp, weight, g);
        case 2: return small_oc_backward<2>(dinp, dweight, dbias, dout, inp, weight, g);
        case 3: return small_oc_backward<3>(dinp, dweight, dbias, dout, inp, weight, g);
        default: return small_oc_backward<4>(dinp, dweight, dbias, dout, inp, weight, g);
    }
}

}  // namespace conv
}  // namespace cnnkit
