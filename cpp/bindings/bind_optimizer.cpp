// bind_optimizer.cpp: the Python bindings of optimizer updates, in place, and the finiteness check (cpp/optimizer.cpp).
#include "check.h"

namespace cnnkit_bind {
namespace {

void adam_update(farray param, const farray& grad, farray m, farray v, int64_t step, float lr,
                 float beta1, float beta2, float eps) {
    const auto shape = shape_of(param);
    require_shape(grad, shape, "grad");
    require_shape(m, shape, "m");
    require_shape(v, shape, "v");
    require_writeable(param, "param");
    require_writeable(m, "m");
    require_writeable(v, "v");
    require(step >= 1, "step must be >= 1 (the 1-based number of this update)");
    float *pp = aligned_mutable(param, "param"), *pm = aligned_mutable(m, "m"), *pv = aligned_mutable(v, "v");
    const float* pg = aligned(grad, "grad");
    const int64_t n = param.size();
    without_gil([&] { cnnkit::adam_update(pp, pm, pv, pg, n, lr, beta1, beta2, eps, step); });
}

void sgd_update(farray param, const farray& grad, std::optional<farray> velocity, float lr,
                float momentum, bool nesterov) {
    const auto shape = shape_of(param);
    require_shape(grad, shape, "grad");
    require_writeable(param, "param");
    if (velocity) {
        require_shape(*velocity, shape, "velocity");
        require_writeable(*velocity, "velocity");
    }
    float *pp = aligned_mutable(param, "param"), *pv = velocity ? aligned_mutable(*velocity, "velocity") : nullptr;
    const float* pg = aligned(grad, "grad");
    const int64_t n = param.size();
    without_gil([&] { cnnkit::sgd_update(pp, pv, pg, n, lr, momentum, nesterov); });
}

bool all_finite(const std::vector<farray>& arrays) {
    bool ok = true;
    without_gil([&] {
        for (const auto& a : arrays) ok = ok && cnnkit::all_finite(a.data(), a.size());
    });
    return ok;
}

}  // namespace

void bind_optimizer(py::module_& m) {
    m.def("adam_update", &adam_update, nc("param"), nc("grad"), nc("m"), nc("v"), "step"_a,
          "learning_rate"_a, "beta_1"_a, "beta_2"_a, "epsilon"_a);
    m.def("sgd_update", &sgd_update, nc("param"), nc("grad"), opt("velocity"), "learning_rate"_a,
          "momentum"_a, "nesterov"_a);
    m.def("all_finite", &all_finite, "arrays"_a,
          "Whether every value of these float32 arrays is finite (no NaN, no infinity).");
}

}  // namespace cnnkit_bind
