// elementwise.cpp: the kernels of Rescaling, Normalization, SpatialDropout2D and GaussianNoise.
#include "cnnkit.h"

namespace cnnkit {

}  // namespace cnnkit
