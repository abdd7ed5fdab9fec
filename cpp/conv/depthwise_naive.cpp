// conv/depthwise_naive.cpp: depthwise convolution as direct loops, forward and backward, any depth
// multiplier: the reference the fast version (depthwise.cpp) is checked against, and its
// fallback for DM > 1. Baseline C++.
// OpenMP: parallel for over images (forward, input gradient) and input channels (weight gradient).
#include <algorithm>

#include "conv2d_impl.h"

namespace cnnkit {

void depthwise_conv2d_forward_naive(float* out, const float* inp, const float* weight,
                                    const float* bias, const Window2d& g, int DM, bool relu) {
    // inp is (N,H,W,C), weight is (KH,KW,C,DM), bias is (C*DM) or null, out is (N,OH,OW,C*DM)
    const int OC = g.C * DM;
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < g.N; ++n)
        for (int oh = 0; oh < g.OH; ++oh)
            for (int ow = 0; ow < g.OW; ++ow) {
                float* o = out + ((n * g.OH + oh) * g.OW + ow) * OC;
                for (int j = 0; j < OC; ++j) o[j] = bias ? bias[j] : 0.f;
                for (int kh = 0; kh < g.KH; ++kh) {
                    const int ih = oh * g.SH - g.PT + kh * g.DH;
                    if (ih < 0 || ih >= g.H) continue;
                    for (int kw = 0; kw < g.KW; ++kw) {
                        const int iw = ow * g.SW - g.PL + kw * g.DW;
                        if (iw < 0 || iw >= g.W) continue;
                        const float* x = inp + ((n * g.H + ih) * g.W + iw) * g.C;
                        const float* w = weight + ((int64_t)kh * g.KW + kw) * OC;
                        for (int j = 0; j < OC; ++j) o[j] += x[j / DM] * w[j];
                    }
                }
                if (relu)
                    for (int j = 0; j < OC; ++j) o[j] = o[j] < 0.f ? 0.f : o[j];  // NaN passes
            }
}

void depthwise_conv2d_backward_naive(float* dinp, float* dweight, float* dbias,
                                     const float* dout, const float* inp, const float* weight,
                                     const Window2d& g, int DM) {
    // dout is (N,OH,OW,C*DM), inp and dinp (N,H,W,C), weight and dweight (KH,KW,C,DM),
    // dbias (C*DM)
    const int OC = g.C * DM;
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
                            const float* w = weight + ((int64_t)kh * g.KW + kw) * OC;
                            for (int j = 0; j < OC; ++j) x[j / DM] += d[j] * w[j];
                        }
                    }
                }
        }
    }
    if (dweight) {
        // One input channel per iteration: its DM weights of every tap have one writer.
        const int64_t taps = (int64_t)g.KH * g.KW;
#pragma omp parallel for schedule(static)
        for (int c = 0; c < g.C; ++c) {
            for (int64_t t = 0; t < taps; ++t)
                std::fill(dweight + t * OC + (int64_t)c * DM, dweight + t * OC + (int64_t)(c + 1) * DM, 0.f);
            for (int64_t n = 0; n < g.N; ++n)
                for (int oh = 0; oh < g.OH; ++oh)
                    for (int ow = 0; ow < g.OW; ++ow) {
                        const float* d = dout + ((n * g.OH + oh) * g.OW + ow) * OC + (int64_t)c * DM;
                        for (int kh = 0; kh < g.KH; ++kh) {
                            const int ih = oh * g.SH - g.PT + kh * g.DH;
                            if (ih < 0 || ih >= g.H) continue;
                            for (int kw = 0; kw < g.KW; ++kw) {
                                const int iw = ow * g.SW - g.PL + kw * g.DW;
                                if (iw < 0 || iw >= g.W) continue;
                                const float x = inp[((n * g.H + ih) * g.W + iw) * g.C + c];
                                float* dw = dweight + ((int64_t)kh * g.KW + kw) * OC + (int64_t)c * DM;
                                for (int m = 0; m < DM; ++m) dw[m] += x * d[m];
                            }
                        }
                    }
        }
    }
    if (dbias) {
        const int64_t M = (int64_t)g.N * g.OH * g.OW;
        std::fill(dbias, dbias + OC, 0.f);
        for (int64_t p = 0; p < M; ++p)
            for (int j = 0; j < OC; ++j) dbias[j] += dout[p * OC + j];
    }
}

}  // namespace cnnkit
