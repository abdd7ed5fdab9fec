// normalization.cpp: the kernels of BatchNormalization and LayerNormalization.
#include "cnnkit.h"

namespace cnnkit {

}  // namespace cnnkit
