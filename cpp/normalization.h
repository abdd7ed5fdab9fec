// normalization.h: the kernels of BatchNormalization and LayerNormalization (normalization.cpp).
// Same conventions as cnnkit.h: outputs first, NHWC float32, kernels trust their arguments.
#pragma once
#include <cstdint>

namespace cnnkit {

}  // namespace cnnkit
