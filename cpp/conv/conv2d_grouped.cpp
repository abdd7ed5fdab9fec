// conv/conv2d_grouped.cpp: convolutions with groups > 1 or dilated taps, forward and backward, as
// one GEMM per group on the packed kernels of gemm.h (the micro-kernel cpu::active_isa() names)
// over a general implicit im2col view. The view copies runs of one group's channels, one tap at
// a time, so it is slower to pack than gemm.h's Im2colView (whole kernel rows of consecutive
// floats), which the undilated, ungrouped convolutions keep using.
// OpenMP: inside each GEMM; per-chunk partial sums for the weight gradient; images for dinp.
#include <algorithm>

#include "conv2d_impl.h"

namespace cnnkit {
namespace conv {
namespace {

// The patch matrix of one group: row m is output pixel (n, oh, ow) of the (N,OH,OW) grid, column
// k is tap (kh, kw) and channel c of the group, in (KH, KW, CG) order: input channel c0 + c.
// Taps outside the image read as zero. The interface of gemm.h's views.
struct GroupIm2colView {
    const float* inp;
    Window2d g;
    int c0, CG;

    void copy_pixel(int64_t img, int oh, int ow, int64_t k0, int n, float* dst, int64_t ds) const {
        int tap = (int)(k0 / CG), c = (int)(k0 - (int64_t)tap * CG);
        const int ih0 = oh * g.SH - g.PT, iw0 = ow * g.SW - g.PL;
        const float* base = inp + img * g.H * g.W * g.C + c0;
        while (n > 0) {
            const int len = std::min(CG - c, n);
            const int ih = ih0 + tap / g.KW * g.DH, iw = iw0 + tap % g.KW * g.DW;
            if (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W)
                gemm::copy_strided(base + ((int64_t)ih * g.W + iw) * g.C + c, len, dst, ds);
            else
                gemm::zero_strided(len, dst, ds);
            dst += len * ds;
            n -= len;
            c = 0;
            ++tap;
        }
    }
    void copy_row(int64_t r, int64_t k0, int n, float* dst, int64_t ds) const {
        const int64_t per_img = (int64_t)g.OH * g.OW, img = r / per_img;
        const int p = (int)(r - img * per_img);
        copy_pixel(img, p / g.OW, p % g.OW, k0, n, dst, ds);
    }
    void copy_rows(int64_t r0, int nr, int64_t k0, int n, float* dst, int64_t ld) const {
        for (int r = 0; r < nr; ++r) copy_row(r0 + r, k0, n, dst + r * ld, 1);
    }
    void pack_rows(int64_t r0, int mr, int64_t k0, int n, float* dst, int S) const {
        for (int i = 0; i < mr; ++i) copy_row(r0 + i, k0, n, dst + i, S);
    }
};

// dimg (H,W,C) of one image += the patch rows dp (rows x KH*KW*CG) of its output pixels p0..,
// into the group's channels c0..c0+CG: the transpose of the view's copy.
void col2im_group_add(float* dimg, const float* dp, int64_t p0, int rows, const Window2d& g,
                      int c0, int CG) {
    const int K = g.KH * g.KW * CG;
    for (int r = 0; r < rows; ++r) {
        const int p = (int)(p0 + r), oh = p / g.OW, ow = p - (p / g.OW) * g.OW;
        const float* src = dp + (int64_t)r * K;
        for (int tap = 0; tap < g.KH * g.KW; ++tap, src += CG) {
            const int ih = oh * g.SH - g.PT + tap / g.KW * g.DH;
            const int iw = ow * g.SW - g.PL + tap % g.KW * g.DW;
            if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
            float* d = dimg + ((int64_t)ih * g.W + iw) * g.C + c0;
            for (int c = 0; c < CG; ++c) d[c] += src[c];
        }
    }
}

}  // namespace

void grouped_forward(float* out, const float* inp, const float* weight, const float* bias,
                     const Window2d& g, int OC, bool relu, int groups) {
    // inp is (N,H,W,C), weight is (KH,KW,C/groups,OC), bias is (OC) or null, out is (N,OH,OW,OC)
    const int CG = g.C / groups, OCG = OC / groups;
    const int64_t M = (int64_t)g.N * g.OH * g.OW, K = (int64_t)g.KH * g.KW * CG;
    for (int j = 0; j < groups; ++j)  // group j: its columns of out and weight, row stride OC
        gemm::gemm_parallel(M, OCG, K, GroupIm2colView{inp, g, j * CG, CG}, false,
                            gemm::MatView{weight + j * OCG, OC}, false, out + j * OCG, OC, false,
                            bias ? bias + j * OCG : nullptr, relu);
}

void grouped_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                      const float* inp, const float* weight, const Window2d& g, int OC,
                      int groups) {
    // dout is (N,OH,OW,OC), inp and dinp (N,H,W,C), weight and dweight (KH,KW,C/groups,OC),
    // dbias (OC)
    const int CG = g.C / groups, OCG = OC / groups;
    const int64_t P = (int64_t)g.OH * g.OW, M = g.N * P, K = (int64_t)g.KH * g.KW * CG;
    const int64_t HWC = (int64_t)g.H * g.W * g.C;
    if (dweight || dbias) {
        // dweight's group columns = patches^T * dout's group columns, a reduction over the M
        // output pixels: each chunk of pixels makes a partial sum, then the partials are added.
        const int64_t T = std::max<int64_t>(1, std::min<int64_t>(gemm::max_threads(), M / 512));
        const int64_t per = (M + T - 1) / T, stride = K * OC + OC;
        float* part = gemm::reserve(tl_partials(), (std::size_t)(T * stride));
#pragma omp parallel for schedule(static)
        for (int64_t t = 0; t < T; ++t) {
            const int64_t p0 = std::min(M, t * per), p1 = std::min(M, p0 + per);
            float* dw = part + t * stride;
            float* db = dw + K * OC;
            for (int j = 0; j < groups && dweight; ++j)
                gemm::gemm_serial(K, OCG, p1 - p0,
                                  gemm::RowOffset<GroupIm2colView>{{inp, g, j * CG, CG}, p0}, true,
                                  gemm::MatView{dout + p0 * OC + j * OCG, OC}, false, dw + j * OCG,
                                  OC, false);
            std::fill(db, db + OC, 0.f);
            for (int64_t p = p0; p < p1; ++p)
                for (int oc = 0; oc < OC; ++oc) db[oc] += dout[p * OC + oc];
        }
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
    if (dinp) {
#pragma omp parallel for schedule(static)
        for (int64_t n = 0; n < g.N; ++n) std::fill(dinp + n * HWC, dinp + (n + 1) * HWC, 0.f);
        // Per group: dpatches = dout's group columns * the group's weight^T, scattered back into
        // the group's channels. An image's dinp is touched only by the thread that owns it.
        const gemm::Kernel kr = gemm::active_kernel();
        const int64_t RB = std::max<int64_t>(kr.mr, std::min<int64_t>(P, (64 * 1024) / std::max<int64_t>(K, 1) / kr.mr * kr.mr));
        for (int j = 0; j < groups; ++j) {
            const gemm::PackedB wt = gemm::pack_b_full(kr, gemm::MatView{weight + j * OCG, OC}, true,
                                                       OCG, K, gemm::tl_buf_fullb());
#pragma omp parallel for schedule(dynamic, 1)
            for (int64_t n = 0; n < g.N; ++n) {
                float* dp = gemm::reserve(tl_dpatches(), (std::size_t)(RB * K));
                for (int64_t r0 = 0; r0 < P; r0 += RB) {
                    const int rows = (int)std::min(RB, P - r0);
                    gemm::gemm_rows(kr, n * P + r0, rows, 0, K, gemm::MatView{dout + j * OCG, OC},
                                    false, wt, dp, K, false, nullptr);
                    col2im_group_add(dinp + n * HWC, dp, r0, rows, g, j * CG, CG);
                }
            }
        }
    }
}

}  // namespace conv
}  // namespace cnnkit
