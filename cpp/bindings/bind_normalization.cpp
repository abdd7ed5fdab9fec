// bind_normalization.cpp: the Python bindings of BatchNormalization and LayerNormalization (cpp/normalization.cpp).
#include "check.h"

namespace cnnkit_bind {

void bind_normalization(py::module_& m) {
    (void)m;
}

}  // namespace cnnkit_bind
