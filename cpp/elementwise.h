// elementwise.h: the kernels of Rescaling, Normalization, SpatialDropout2D, GaussianNoise and
// Add (elementwise.cpp).
// Same conventions as cnnkit.h: outputs first, NHWC float32, kernels trust their arguments.
#pragma once
#include <cstdint>

namespace cnnkit {

// out = (inp - shift[k]) * scale[k] + offset[k] over inp viewed as (outer, channels, inner): the
// fixed affine map of Rescaling (no shift) and Normalization ((x - mean) * (1 / s), as Keras
// subtracts the mean before dividing, so a channel whose values equal its mean gives exact
// zeros however small s is). The "channels" block is whatever run of axes the values vary over
// (the last axis for per-channel values, H*W*C for per-pixel ones), so inner == 1 is the common,
// contiguous case. shift and offset may be null (none: the backward pass is dinp = dout * scale).
void affine_forward(float* out, const float* inp, const float* shift, const float* scale,
                    const float* offset, int64_t outer, int64_t channels, int64_t inner);

// out[n, s, c] = inp[n, s, c] * mask[n, c] over inp (n, spatial, channels): SpatialDropout2D's
// forward pass, and with dout for inp its backward pass (the mask holds 0 or 1 / (1 - rate)).
void channel_mask(float* out, const float* inp, const float* mask, int64_t n, int64_t spatial,
                  int64_t channels);

// out = inp + stddev * noise, elementwise over n values (GaussianNoise; noise is standard normal,
// drawn by the layer's own generator).
void add_scaled_noise(float* out, const float* inp, const float* noise, float stddev, int64_t n);

// out = a + b elementwise over n values, then max(out, 0) when relu (a NaN passes, as
// relu_forward): Add of two same-shape inputs, with a ResNet block's ReLU fused in one pass
// (numpy's add is one thread, and a separate ReLU pass reads and writes the output again).
// out may be a (each element is read before it is written).
void add_forward(float* out, const float* a, const float* b, int64_t n, bool relu);

}  // namespace cnnkit
