// conv/conv2d_transpose.cpp: transposed convolution (Keras' Conv2DTranspose), forward and
// backward, from the convolution's own paths (so the GEMM machinery and its dispatch serve it):
// its forward pass is the input gradient of the convolution Window2d g describes, its input
// gradient that convolution's forward pass, its weight gradient that convolution's weight
// gradient with the roles of input and output gradient exchanged.
// OpenMP: inside the convolution kernels; the bias by output rows.
#include <algorithm>

#include "conv2d_impl.h"

namespace cnnkit {
namespace {

// out (M, C) += bias (C), rows in parallel.
void add_bias(float* out, const float* bias, int64_t M, int C) {
#pragma omp parallel for schedule(static) if (M * C > 65536)
    for (int64_t m = 0; m < M; ++m)
        for (int c = 0; c < C; ++c) out[m * C + c] += bias[c];
}

// dbias (C) = the sum of dout's (M, C) rows, per-chunk partial sums then a reduction.
void bias_grad(float* dbias, const float* dout, int64_t M, int C) {
    const int64_t T = std::max<int64_t>(1, std::min<int64_t>(gemm::max_threads(), M * C / 65536));
    const int64_t per = (M + T - 1) / T;
    float* part = gemm::reserve(conv::tl_partials(), (std::size_t)(T * C));
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; ++t) {
        float* s = part + t * C;
        std::fill(s, s + C, 0.f);
        for (int64_t m = std::min(M, t * per); m < std::min(M, (t + 1) * per); ++m)
            for (int c = 0; c < C; ++c) s[c] += dout[m * C + c];
    }
    for (int c = 0; c < C; ++c) {
        float v = 0.f;
        for (int64_t t = 0; t < T; ++t) v += part[t * C + c];
        dbias[c] = v;
    }
}

}  // namespace

void conv2d_transpose_forward(float* out, const float* inp, const float* weight,
                              const float* bias, const Window2d& g, int OC) {
    // inp is (N,OH,OW,OC), weight is (KH,KW,C,OC), bias is (C) or null, out is (N,H,W,C)
    conv2d_backward(out, nullptr, nullptr, inp, nullptr, weight, g, OC);
    if (bias) add_bias(out, bias, (int64_t)g.N * g.H * g.W, g.C);
}

void conv2d_transpose_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                               const float* inp, const float* weight, const Window2d& g, int OC) {
    // dout is (N,H,W,C), inp and dinp (N,OH,OW,OC), weight and dweight (KH,KW,C,OC), dbias (C)
    if (dinp) conv2d_forward(dinp, dout, weight, nullptr, g, OC);
    if (dweight) conv2d_backward(nullptr, dweight, nullptr, inp, dout, weight, g, OC);
    if (dbias) bias_grad(dbias, dout, (int64_t)g.N * g.H * g.W, g.C);
}

void conv2d_transpose_forward_naive(float* out, const float* inp, const float* weight,
                                    const float* bias, const Window2d& g, int OC) {
    conv2d_backward_naive(out, nullptr, nullptr, inp, nullptr, weight, g, OC);
    if (bias) add_bias(out, bias, (int64_t)g.N * g.H * g.W, g.C);
}

void conv2d_transpose_backward_naive(float* dinp, float* dweight, float* dbias,
                                     const float* dout, const float* inp, const float* weight,
                                     const Window2d& g, int OC) {
    if (dinp) conv2d_forward_naive(dinp, dout, weight, nullptr, g, OC);
    if (dweight) conv2d_backward_naive(nullptr, dweight, nullptr, inp, dout, weight, g, OC);
    if (dbias) bias_grad(dbias, dout, (int64_t)g.N * g.H * g.W, g.C);
}

}  // namespace cnnkit
