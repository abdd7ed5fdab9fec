// conv/conv2d_gemm.cpp: convolution as a GEMM on the packed kernels of gemm.h, over an implicit
// im2col view of the NHWC input (no patch matrix is materialised), forward and backward. It uses
// whichever micro-kernel cpu::active_isa() names; the rest is baseline C++.
// OpenMP: parallel for over outer loops only, each output element written by one thread.
#include <algorithm>

#include "conv2d_impl.h"

namespace cnnkit {
namespace conv {
namespace {

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

}  // namespace

void gemm_forward(float* out, const float* inp, const float* weight, const float* bias,
                  const Window2d& g, int OC, bool relu) {
    // inp is (N,H,W,C), weight is (KH,KW,C,OC), bias is (OC) or null, out is (N,OH,OW,OC)
    const int64_t M = (int64_t)g.N * g.OH * g.OW, K = (int64_t)g.KH * g.KW * g.C;
    gemm::gemm_parallel(M, OC, K, im2col_view(inp, g), false, gemm::MatView{weight, OC}, false,
                        out, OC, false, bias, relu);
}


void gemm_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                   const float* inp, const float* weight, const Window2d& g, int OC) {
    // dout is (N,OH,OW,OC), inp and dinp (N,H,W,C), weight and dweight (KH,KW,C,OC), dbias (OC)
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

    if (dinp && g.KH == 1 && g.KW == 1 && g.SH == 1 && g.SW == 1 && g.OH == g.H && g.OW == g.W) {
        // A pointwise (1x1, stride 1, unpadded) convolution's patches are its input pixels:
        // dinp (M, C) = dout * weight^T directly, a GEMM without the col2im pass.
        gemm::gemm_parallel(M, g.C, OC, gemm::MatView{dout, OC}, false, gemm::MatView{weight, OC},
                            true, dinp, g.C, false, nullptr);
    } else if (dinp) {
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

}  // namespace conv
}  // namespace cnnkit
