// bind_optimizer.cpp: the Python bindings of the fused optimizer updates (in place), the sum of
// squares behind clipnorm / global_clipnorm, and the finiteness check (cpp/optimizer.cpp).
//
// Every update takes the parameter, its gradient and its slots, then the step's scalars, then
// the options every optimizer shares (clipvalue, grad_scale, weight_decay, ema, ema_momentum:
// see cpp/optimizer.h). All arrays must have the parameter's shape.
#include "check.h"

namespace cnnkit_bind {
namespace {

using shape_t = std::vector<py::ssize_t>;

float* slot(farray& a, const shape_t& shape, const char* name) {
    require_shape(a, shape, name);
    require_writeable(a, name);
    return aligned_mutable(a, name);
}

float* slot(std::optional<farray>& a, const shape_t& shape, const char* name) {
    return a ? slot(*a, shape, name) : nullptr;
}

// The checked parameter and gradient, and the shared options.
struct Update {
    float* param;
    const float* grad;
    int64_t n;
    shape_t shape;
    cnnkit::UpdateCommon common;
};

Update prepare(farray& param, const farray& grad, float lr, float clipvalue, float grad_scale,
               float weight_decay, std::optional<farray>& ema, float ema_momentum) {
    Update u{};
    u.shape = shape_of(param);
    require_shape(grad, u.shape, "grad");
    u.param = slot(param, u.shape, "param");
    u.grad = aligned(grad, "grad");
    u.n = param.size();
    require(std::isfinite(lr) && lr >= 0, "learning_rate must be finite and >= 0");
    require(std::isfinite(clipvalue) && clipvalue >= 0, "clipvalue must be finite and >= 0 (0: none)");
    require(!(grad_scale < 0), "grad_scale must be >= 0");
    require(ema_momentum >= 0 && ema_momentum <= 1, "ema_momentum must be in [0, 1]");
    u.common.lr = lr;
    u.common.clipvalue = clipvalue;
    u.common.grad_scale = grad_scale;
    u.common.weight_decay = weight_decay;
    u.common.ema = slot(ema, u.shape, "ema");
    u.common.ema_momentum = ema_momentum;
    return u;
}

#define CNNKIT_COMMON_PARAMS                                                                \
    float lr, float clipvalue, float grad_scale, float weight_decay, std::optional<farray> ema, \
        float ema_momentum
#define CNNKIT_COMMON_VALUES lr, clipvalue, grad_scale, weight_decay, ema, ema_momentum
#define CNNKIT_COMMON_ARGS                                                                 \
    "learning_rate"_a, "clipvalue"_a = 0.0f, "grad_scale"_a = 1.0f, "weight_decay"_a = 0.0f, \
        py::arg("ema").noconvert().none(true) = py::none(), "ema_momentum"_a = 0.0f

void sgd_update(farray param, const farray& grad, std::optional<farray> momentum_buf,
                float momentum, bool nesterov, CNNKIT_COMMON_PARAMS) {
    auto u = prepare(param, grad, CNNKIT_COMMON_VALUES);
    float* mb = slot(momentum_buf, u.shape, "momentum_buf");
    without_gil([&] { cnnkit::sgd_update(u.param, mb, u.grad, u.n, u.common, momentum, nesterov); });
}

void rmsprop_update(farray param, const farray& grad, farray velocity,
                    std::optional<farray> momentum_buf, std::optional<farray> average_grad,
                    float rho, float momentum, float epsilon, CNNKIT_COMMON_PARAMS) {
    auto u = prepare(param, grad, CNNKIT_COMMON_VALUES);
    float* v = slot(velocity, u.shape, "velocity");
    float* mb = slot(momentum_buf, u.shape, "momentum_buf");
    float* a = slot(average_grad, u.shape, "average_grad");
    without_gil([&] {
        cnnkit::rmsprop_update(u.param, v, mb, a, u.grad, u.n, u.common, rho, momentum, epsilon);
    });
}

void adam_update(farray param, const farray& grad, farray m, farray v,
                 std::optional<farray> velocity_hat, int64_t step, float beta1, float beta2,
                 float epsilon, CNNKIT_COMMON_PARAMS) {
    auto u = prepare(param, grad, CNNKIT_COMMON_VALUES);
    require(step >= 1, "step must be >= 1 (the 1-based number of this update)");
    float *pm = slot(m, u.shape, "m"), *pv = slot(v, u.shape, "v");
    float* ph = slot(velocity_hat, u.shape, "velocity_hat");
    without_gil([&] {
        cnnkit::adam_update(u.param, pm, pv, ph, u.grad, u.n, u.common, beta1, beta2, epsilon, step);
    });
}

void adagrad_update(farray param, const farray& grad, farray accumulator, float epsilon,
                    CNNKIT_COMMON_PARAMS) {
    auto u = prepare(param, grad, CNNKIT_COMMON_VALUES);
    float* acc = slot(accumulator, u.shape, "accumulator");
    without_gil([&] { cnnkit::adagrad_update(u.param, acc, u.grad, u.n, u.common, epsilon); });
}

void nadam_update(farray param, const farray& grad, farray m, farray v, float beta1, float beta2,
                  float epsilon, float m_coef, float g_coef, float v_divisor, CNNKIT_COMMON_PARAMS) {
    auto u = prepare(param, grad, CNNKIT_COMMON_VALUES);
    float *pm = slot(m, u.shape, "m"), *pv = slot(v, u.shape, "v");
    without_gil([&] {
        cnnkit::nadam_update(u.param, pm, pv, u.grad, u.n, u.common, beta1, beta2, epsilon, m_coef,
                             g_coef, v_divisor);
    });
}

void adamax_update(farray param, const farray& grad, farray m, farray norm, int64_t step,
                   float beta1, float beta2, float epsilon, CNNKIT_COMMON_PARAMS) {
    auto u = prepare(param, grad, CNNKIT_COMMON_VALUES);
    require(step >= 1, "step must be >= 1 (the 1-based number of this update)");
    float *pm = slot(m, u.shape, "m"), *pu = slot(norm, u.shape, "norm");
    without_gil([&] {
        cnnkit::adamax_update(u.param, pm, pu, u.grad, u.n, u.common, beta1, beta2, epsilon, step);
    });
}

double sum_squares(const std::vector<farray>& arrays) {
    // Per array in a fixed order, so the total is the same for any thread count.
    std::vector<std::pair<const float*, int64_t>> views;
    for (const auto& a : arrays) views.emplace_back(aligned(a, "array"), static_cast<int64_t>(a.size()));
    double total = 0;
    without_gil([&] {
        for (const auto& [p, n] : views) total += cnnkit::sum_squares(p, n);
    });
    return total;
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
    m.def("sgd_update", &sgd_update, nc("param"), nc("grad"), opt("momentum_buf"), "momentum"_a,
          "nesterov"_a, CNNKIT_COMMON_ARGS);
    m.def("rmsprop_update", &rmsprop_update, nc("param"), nc("grad"), nc("velocity"),
          opt("momentum_buf"), opt("average_grad"), "rho"_a, "momentum"_a, "epsilon"_a,
          CNNKIT_COMMON_ARGS);
    m.def("adam_update", &adam_update, nc("param"), nc("grad"), nc("m"), nc("v"),
          opt("velocity_hat"), "step"_a, "beta_1"_a, "beta_2"_a, "epsilon"_a, CNNKIT_COMMON_ARGS);
    m.def("adagrad_update", &adagrad_update, nc("param"), nc("grad"), nc("accumulator"),
          "epsilon"_a, CNNKIT_COMMON_ARGS);
    m.def("nadam_update", &nadam_update, nc("param"), nc("grad"), nc("m"), nc("v"), "beta_1"_a,
          "beta_2"_a, "epsilon"_a, "m_coef"_a, "g_coef"_a, "v_divisor"_a, CNNKIT_COMMON_ARGS);
    m.def("adamax_update", &adamax_update, nc("param"), nc("grad"), nc("m"), nc("norm"), "step"_a,
          "beta_1"_a, "beta_2"_a, "epsilon"_a, CNNKIT_COMMON_ARGS);
    m.def("sum_squares", &sum_squares, "arrays"_a,
          "Sum of the squares of every value of these float32 arrays, in double (the norm behind "
          "clipnorm and global_clipnorm); the same for any number of threads.");
    m.def("all_finite", &all_finite, "arrays"_a,
          "Whether every value of these float32 arrays is finite (no NaN, no infinity).");
}

}  // namespace cnnkit_bind
