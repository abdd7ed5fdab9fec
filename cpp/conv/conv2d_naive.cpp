// conv/conv2d_naive.cpp: 2-D convolution as direct loops, forward and backward, with strides,
// padding, dilation and groups: the reference the fast versions are checked against (tests,
// cpp/dev/check_gemm_conv.cpp), and the plainest statement of what they compute. Baseline C++.
// OpenMP: parallel for over images (forward, input gradient) and weight rows (weight gradient).
#include <algorithm>

#include "conv2d_impl.h"

namespace cnnkit {

void conv2d_forward_naive(float* out, const float* inp, const float* weight, const float* bias,
                          const Window2d& g, int OC, bool relu, int groups) {
    // inp is (N,H,W,C), weight is (KH,KW,C/groups,OC), bias is (OC) or null, out is (N,OH,OW,OC)
    const int CG = g.C / groups, OCG = OC / groups;
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < g.N; ++n)
        for (int oh = 0; oh < g.OH; ++oh)
            for (int ow = 0; ow < g.OW; ++ow) {
                float* o = out + ((n * g.OH + oh) * g.OW + ow) * OC;
                for (int oc = 0; oc < OC; ++oc) o[oc] = bias ? bias[oc] : 0.f;
                for (int kh = 0; kh < g.KH; ++kh) {
                    const int ih = oh * g.SH - g.PT + kh * g.DH;
                    if (ih < 0 || ih >= g.H) continue;
                    for (int kw = 0; kw < g.KW; ++kw) {
                        const int iw = ow * g.SW - g.PL + kw * g.DW;
                        if (iw < 0 || iw >= g.W) continue;
                        const float* x = inp + ((n * g.H + ih) * g.W + iw) * g.C;
                        const float* w = weight + ((int64_t)kh * g.KW + kw) * CG * OC;
                        for (int oc = 0; oc < OC; ++oc) {
                            const int c0 = oc / OCG * CG;  // the group's first input channel
                            for (int c = 0; c < CG; ++c) o[oc] += x[c0 + c] * w[c * OC + oc];
                        }
                    }
                }
            }
    if (relu) relu_forward(out, out, (int64_t)g.N * g.OH * g.OW * OC);  // unfused, in place
}

void conv2d_backward_naive(float* dinp, float* dweight, float* dbias, const float* dout,
                           const float* inp, const float* weight, const Window2d& g, int OC,
                           int groups) {
    // dout is (N,OH,OW,OC), inp and dinp (N,H,W,C), weight and dweight (KH,KW,C/groups,OC),
    // dbias (OC)
    const int CG = g.C / groups, OCG = OC / groups;
    const int64_t HWC = (int64_t)g.H * g.W * g.C;
    if (dinp) {
#pragma omp parallel for schedule(static)
        for (int64_t n = 0; n < g.N; ++n) {
            std::fill(dinp + n * HWC, dinp + (n + 1) * HWC, 0.f);
            for (int oh = 0; oh < g.OH; ++oh)
                for (int ow = 0; ow < g.OW; ++ow) {
                    const float* d = dout + ((n * g.OH + oh) * g.OW + ow) * OC;
                    for (int kh = 0; kh < g.KH; ++kh) {
                        const int ih = oh * g.SH - g.PT + kh * g.DH;
                        if (ih < 0 || ih >= g.H) continue;
                        for (int kw = 0; kw < g.KW; ++kw) {
                            const int iw = ow * g.SW - g.PL + kw * g.DW;
                            if (iw < 0 || iw >= g.W) continue;
                            float* x = dinp + ((n * g.H + ih) * g.W + iw) * g.C;
                            const float* w = weight + ((int64_t)kh * g.KW + kw) * CG * OC;
                            for (int c = 0; c < g.C; ++c) {
                                const int j = c / CG, cg = c - j * CG;  // group, channel in it
                                float s = 0.f;
                                for (int oc = j * OCG; oc < (j + 1) * OCG; ++oc)
                                    s += d[oc] * w[cg * OC + oc];
                                x[c] += s;
                            }
                        }
                    }
                }
        }
    }
    if (dweight) {
        // One weight row (kh, kw, c) per iteration: each thread owns the rows it sums into.
        const int64_t K = (int64_t)g.KH * g.KW * CG;
#pragma omp parallel for schedule(static)
        for (int64_t k = 0; k < K; ++k) {
            const int cg = (int)(k % CG), kw = (int)(k / CG % g.KW), kh = (int)(k / CG / g.KW);
            float* dw = dweight + k * OC;
            std::fill(dw, dw + OC, 0.f);
            for (int64_t n = 0; n < g.N; ++n)
                for (int oh = 0; oh < g.OH; ++oh) {
                    const int ih = oh * g.SH - g.PT + kh * g.DH;
                    if (ih < 0 || ih >= g.H) continue;
                    for (int ow = 0; ow < g.OW; ++ow) {
                        const int iw = ow * g.SW - g.PL + kw * g.DW;
                        if (iw < 0 || iw >= g.W) continue;
                        const float* x = inp + ((n * g.H + ih) * g.W + iw) * g.C + cg;
                        const float* d = dout + ((n * g.OH + oh) * g.OW + ow) * OC;
                        for (int oc = 0; oc < OC; ++oc) dw[oc] += x[oc / OCG * CG] * d[oc];
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
