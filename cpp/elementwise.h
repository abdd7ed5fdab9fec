// elementwise.h: the kernels of Rescaling, Normalization, SpatialDropout2D and GaussianNoise (elementwise.cpp).
// Same conventions as cnnkit.h: outputs first, NHWC float32, kernels trust their arguments.
#pragma once
#include <cstdint>

namespace cnnkit {

}  // namespace cnnkit
