// batchnorm_fold.cpp: a BatchNormalization folded into the linear layer before it, for inference
// (python/cnnkit/engine/folding.py): the folded kernel and bias in one call.
//
// Compiled with -ffp-contract=off (CMakeLists.txt): every product and sum rounds on its own, in
// the order Keras' batch_normalization and the NumPy reference use, so the folded weights equal
// the NumPy fold's to the bit (an FMA would round once where they round twice).
#include <cmath>

#include "normalization.h"

namespace cnnkit {

void batchnorm_fold(float* kernel_out, float* bias_out, float* scale, const float* kernel,
                    const float* bias, const float* gamma, const float* beta, const float* mean,
                    const float* var, int64_t rows, int C, float eps) {
    for (int c = 0; c < C; ++c) {
        float s = std::sqrt(var[c] + eps);
        s = 1.0f / s;
        if (gamma) s = s * gamma[c];
        scale[c] = s;
        float b = bias ? bias[c] - mean[c] : -mean[c];
        b = b * s;
        if (beta) b = b + beta[c];
        bias_out[c] = b;
    }
    // Small (a few hundred thousand floats at most): one thread; a team would cost more.
    for (int64_t r = 0; r < rows; ++r) {
        const float* k = kernel + r * C;
        float* o = kernel_out + r * C;
        for (int c = 0; c < C; ++c) o[c] = k[c] * scale[c];
    }
}

}  // namespace cnnkit
