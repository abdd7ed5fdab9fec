// normalization.h: the kernels of BatchNormalization and LayerNormalization (normalization.cpp).
// Same conventions as cnnkit.h: outputs first, float32, kernels trust their arguments.
//
// Batch normalization sees its input as (outer, C, inner): C channels (the normalised axis),
// outer the axes before it, inner the axes after it. NHWC conv outputs and Dense outputs with
// axis=-1 have inner = 1, the fast case. Statistics are per channel over outer * inner values.
// Layer normalization sees its input as (rows, D): each row is normalised over its D values.
// gamma and beta may be null (scale=False, center=False: 1 and 0).
#pragma once
#include <cstdint>

namespace cnnkit {

// Training: mean, var (biased, as Keras' moments) and invstd = 1/sqrt(var + eps) of each channel
// over the batch, then out = (inp - mean) * invstd * gamma + beta. mean, var, invstd are (C) and
// kept for the backward pass. moving_mean and moving_var (C), when not null, are updated in
// place as Keras does: moving = moving * momentum + batch_stat * (1 - momentum).
// relu: a ReLU fused after the normalization, out = max(out, 0) as it is stored (a NaN passes,
// as in relu_forward), so that BatchNormalization -> ReLU is one pass over the output.
void batchnorm_forward_train(float* out, float* mean, float* var, float* invstd,
                             float* moving_mean, float* moving_var, const float* inp,
                             const float* gamma, const float* beta, int64_t outer, int C,
                             int64_t inner, float eps, float momentum, bool relu);
// Inference: out = (inp - mean) * invstd * gamma + beta with the given statistics (the moving
// ones); invstd (C), when not null, receives 1/sqrt(var + eps) for a later backward pass.
// relu: as in batchnorm_forward_train.
void batchnorm_forward_infer(float* out, float* invstd, const float* inp, const float* gamma,
                             const float* beta, const float* mean, const float* var,
                             int64_t outer, int C, int64_t inner, float eps, bool relu);
// dgamma (C) = sum dout * (inp - mean) * invstd, dbeta (C) = sum dout (either may be null), and
// dinp (may be null). batch_stats: mean and invstd are the batch's own (training), so the
// gradient flows through them too; else they are constants (inference): dinp = dout*gamma*invstd.
// relu_out (outer,C,inner), when not null, is the output of a forward pass with a fused ReLU:
// dout is the gradient after that ReLU and is read as 0 where relu_out <= 0 (in the same passes,
// as relu_backward would mask it).
// The inference fold of a BatchNormalization into the linear layer before it (batchnorm_fold.cpp):
// scale (C) = gamma / sqrt(var + eps), computed as Keras does (1 / sqrt first, then * gamma);
// kernel_out (rows, C) = kernel * scale along its last axis C, the layer's output channels (a
// Conv2D's or Dense's last kernel axis, a depthwise kernel's last two); bias_out (C) =
// (bias - mean) * scale + beta. bias, gamma and beta may be null (none, 1, 0).
void batchnorm_fold(float* kernel_out, float* bias_out, float* scale, const float* kernel,
                    const float* bias, const float* gamma, const float* beta, const float* mean,
                    const float* var, int64_t rows, int C, float eps);

void batchnorm_backward(float* dinp, float* dgamma, float* dbeta, const float* dout,
                        const float* inp, const float* mean, const float* invstd,
                        const float* gamma, const float* relu_out, int64_t outer, int C,
                        int64_t inner, bool batch_stats);

// Each row: mean and invstd = 1/sqrt(var + eps) over its D values (kept, (rows) each), then
// out = (inp - mean) * invstd * gamma + beta. center=false is Keras' rms_scaling: the mean is
// not subtracted, out = inp * invstd * gamma (beta is then null), invstd still from the variance.
void layernorm_forward(float* out, float* mean, float* invstd, const float* inp,
                       const float* gamma, const float* beta, int64_t rows, int64_t D, float eps,
                       bool center);
// dinp (rows,D), dgamma (D), dbeta (D) from dout; any output may be null.
void layernorm_backward(float* dinp, float* dgamma, float* dbeta, const float* dout,
                        const float* inp, const float* mean, const float* invstd,
                        const float* gamma, int64_t rows, int64_t D, bool center);

}  // namespace cnnkit
