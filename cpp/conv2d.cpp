// conv2d.cpp: 2-D convolution over NHWC batches with (KH,KW,C,OC) weights, forward and backward.
//
// The fast versions are GEMMs on the packed kernels of gemm.h over an implicit im2col view (no
// patch matrix is materialised), so they use whichever micro-kernel simd_isa() names; the rest is
// baseline C++. The naive versions are the direct loops, kept as the reference and fallback.
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
