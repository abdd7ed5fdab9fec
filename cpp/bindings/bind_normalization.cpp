// bind_normalization.cpp: the Python bindings of BatchNormalization and LayerNormalization (cpp/normalization.cpp).
#include "check.h"

namespace cnnkit_bind {
namespace {

// The (outer, C, inner) view of x around `axis` (already non-negative, checked here).
struct ChannelLayout {
    int64_t outer, inner;
    int C;
};

ChannelLayout channel_layout(const farray& x, int axis) {
    require(x.ndim() >= 1, "x must have at least one axis");
    require(axis >= 0 && axis < x.ndim(),
            "axis " + std::to_string(axis) + " is out of range for x of shape " + shape_str(x));
    require(x.size() > 0, "x is empty");
    ChannelLayout l{1, 1, as_int(x.shape(axis), "size of the normalised axis")};
    for (int i = 0; i < axis; ++i) l.outer *= x.shape(i);
    for (py::ssize_t i = axis + 1; i < x.ndim(); ++i) l.inner *= x.shape(i);
    return l;
}

// An optional (C,) input: null for None.
const float* optional_vector(const std::optional<farray>& a, py::ssize_t C, const char* name) {
    if (!a) return nullptr;
    require_shape(*a, {C}, name);
    return aligned(*a, name);
}

// An optional (C,) array updated in place (the moving statistics).
float* inplace_vector(const std::optional<farray>& a, py::ssize_t C, const char* name) {
    if (!a) return nullptr;
    require_shape(*a, {C}, name);
    auto copy = *a;
    require_writeable(copy, name);
    return aligned_mutable(copy, name);
}

// The fold's outputs (kernel_out, bias_out), with scale_out (C,) as its scratch (none: new arrays).
py::tuple batchnorm_fold(const farray& kernel, const std::optional<farray>& bias,
                         const std::optional<farray>& gamma, const std::optional<farray>& beta,
                         const farray& mean, const farray& variance, float epsilon,
                         const py::object& kernel_out_, const py::object& bias_out_,
                         const py::object& scale_out_) {
    require_ndim(mean, 1, "mean");
    const py::ssize_t C = mean.shape(0);
    require(C > 0, "mean must not be empty");
    require_shape(variance, {C}, "variance");
    // Output channels: the last axis (Conv2D, Dense), or the last two (a depthwise kernel).
    const py::ssize_t nd = kernel.ndim();
    require(nd >= 1 && (kernel.shape(nd - 1) == C ||
                        (nd >= 2 && kernel.shape(nd - 2) * kernel.shape(nd - 1) == C)),
            "kernel of shape " + shape_str(kernel) + " does not end in " + std::to_string(C) +
                " output channels");
    require(std::isfinite(epsilon) && epsilon >= 0.0f, "epsilon must be finite and >= 0");
    const float *b = optional_vector(bias, C, "bias"), *ga = optional_vector(gamma, C, "gamma");
    const float* be = optional_vector(beta, C, "beta");
    const farray empty(std::vector<py::ssize_t>{0});  // stands in for a missing input below
    farray k_out = output(kernel_out_, shape_of(kernel), "kernel_out",
                          {{"kernel", kernel}, {"mean", mean}, {"variance", variance},
                           {"bias", bias ? *bias : empty}, {"gamma", gamma ? *gamma : empty},
                           {"beta", beta ? *beta : empty}});
    farray b_out = output(bias_out_, {C}, "bias_out",
                          {{"kernel", kernel}, {"kernel_out", k_out}, {"mean", mean},
                           {"variance", variance}, {"bias", bias ? *bias : empty},
                           {"gamma", gamma ? *gamma : empty}, {"beta", beta ? *beta : empty}});
    farray s_out = output(scale_out_, {C}, "scale_out",
                          {{"kernel_out", k_out}, {"bias_out", b_out}, {"mean", mean},
                           {"variance", variance}, {"gamma", gamma ? *gamma : empty}});
    float *ko = k_out.mutable_data(), *bo = b_out.mutable_data(), *so = s_out.mutable_data();
    const float *k = aligned(kernel, "kernel"), *m = aligned(mean, "mean");
    const float* v = aligned(variance, "variance");
    const int64_t rows = kernel.size() / C;
    const int channels = as_int(C, "channels");
    without_gil([&] { cnnkit::batchnorm_fold(ko, bo, so, k, b, ga, be, m, v, rows, channels, epsilon); });
    return py::make_tuple(k_out, b_out);
}

py::tuple batchnorm_forward_train(const farray& x, const std::optional<farray>& gamma,
                                  const std::optional<farray>& beta,
                                  const std::optional<farray>& moving_mean,
                                  const std::optional<farray>& moving_variance, int axis,
                                  float epsilon, float momentum, bool relu,
                                  const py::object& out_, const py::object& mean_out,
                                  const py::object& var_out, const py::object& invstd_out) {
    const auto l = channel_layout(x, axis);
    require(epsilon > 0.0f, "epsilon must be positive");
    require(momentum >= 0.0f && momentum <= 1.0f, "momentum must be in [0, 1]");
    const float* g = optional_vector(gamma, l.C, "gamma");
    const float* b = optional_vector(beta, l.C, "beta");
    float* mm = inplace_vector(moving_mean, l.C, "moving_mean");
    float* mv = inplace_vector(moving_variance, l.C, "moving_variance");
    require(!(moving_mean && moving_variance && overlap(*moving_mean, *moving_variance)),
            "moving_mean and moving_variance must not share memory");
    for (const auto* m : {&moving_mean, &moving_variance})
        if (*m) require(!overlap(**m, x), "the moving statistics must not share memory with x");
    farray y = output(out_, shape_of(x), "out", {{"x", x}});
    farray mean = output(mean_out, {l.C}, "mean_out", {{"x", x}, {"out", y}});
    farray var = output(var_out, {l.C}, "var_out", {{"x", x}, {"out", y}, {"mean_out", mean}});
    farray inv = output(invstd_out, {l.C}, "invstd_out",
                        {{"x", x}, {"out", y}, {"mean_out", mean}, {"var_out", var}});
    float *py_ = y.mutable_data(), *pm = mean.mutable_data(), *pv = var.mutable_data(),
          *pi = inv.mutable_data();
    const float* px = aligned(x, "x");
    without_gil([&] {
        cnnkit::batchnorm_forward_train(py_, pm, pv, pi, mm, mv, px, g, b, l.outer, l.C, l.inner,
                                        epsilon, momentum, relu);
    });
    return py::make_tuple(y, mean, var, inv);
}

py::tuple batchnorm_forward_infer(const farray& x, const std::optional<farray>& gamma,
                                  const std::optional<farray>& beta, const farray& mean,
                                  const farray& variance, int axis, float epsilon, bool relu,
                                  const py::object& out_, const py::object& invstd_out) {
    const auto l = channel_layout(x, axis);
    require(epsilon > 0.0f, "epsilon must be positive");
    const float* g = optional_vector(gamma, l.C, "gamma");
    const float* b = optional_vector(beta, l.C, "beta");
    require_shape(mean, {l.C}, "mean");
    require_shape(variance, {l.C}, "variance");
    farray y = output(out_, shape_of(x), "out", {{"x", x}});
    farray inv = output(invstd_out, {l.C}, "invstd_out", {{"x", x}, {"out", y}});
    float *py_ = y.mutable_data(), *pi = inv.mutable_data();
    const float *px = aligned(x, "x"), *pm = aligned(mean, "mean"),
                *pv = aligned(variance, "variance");
    without_gil([&] {
        cnnkit::batchnorm_forward_infer(py_, pi, px, g, b, pm, pv, l.outer, l.C, l.inner, epsilon,
                                        relu);
    });
    return py::make_tuple(y, inv);
}

py::tuple batchnorm_backward(const farray& dy, const farray& x, const farray& mean,
                             const farray& invstd, const std::optional<farray>& gamma, int axis,
                             bool batch_stats, const std::optional<farray>& y, bool need_dx,
                             const py::object& dx_out, const py::object& dgamma_out,
                             const py::object& dbeta_out) {
    const auto l = channel_layout(x, axis);
    require_shape(dy, shape_of(x), "dy");
    // y: the forward output of a fused ReLU (dy is then the gradient after the ReLU).
    if (y) require_shape(*y, shape_of(x), "y");
    require_shape(mean, {l.C}, "mean");
    require_shape(invstd, {l.C}, "invstd");
    const float* g = optional_vector(gamma, l.C, "gamma");
    farray dx = y ? optional_dx(need_dx, dx_out, shape_of(x), {{"dy", dy}, {"x", x}, {"y", *y}})
                  : optional_dx(need_dx, dx_out, shape_of(x), {{"dy", dy}, {"x", x}});
    farray dg = output(dgamma_out, {l.C}, "dgamma_out", {{"dy", dy}, {"x", x}, {"dx_out", dx}});
    farray db = output(dbeta_out, {l.C}, "dbeta_out",
                       {{"dy", dy}, {"x", x}, {"dx_out", dx}, {"dgamma_out", dg}});
    float* pdx = need_dx ? dx.mutable_data() : nullptr;
    float *pdg = dg.mutable_data(), *pdb = db.mutable_data();
    const float *pdy = aligned(dy, "dy"), *px = aligned(x, "x"), *pm = aligned(mean, "mean"),
                *pi = aligned(invstd, "invstd");
    const float* pyo = y ? aligned(*y, "y") : nullptr;
    without_gil([&] {
        cnnkit::batchnorm_backward(pdx, pdg, pdb, pdy, px, pm, pi, g, pyo, l.outer, l.C, l.inner,
                                   batch_stats);
    });
    return py::make_tuple(need_dx ? py::object(dx) : py::none(), dg, db);
}

// Layer normalization runs over the last `norm_ndim` axes of x: rows x D.
std::pair<int64_t, int64_t> rows_of(const farray& x, int norm_ndim) {
    require(norm_ndim >= 1 && norm_ndim <= x.ndim(), "norm_ndim must be in [1, x.ndim]");
    require(x.size() > 0, "x is empty");
    int64_t D = 1;
    for (py::ssize_t i = x.ndim() - norm_ndim; i < x.ndim(); ++i) D *= x.shape(i);
    return {x.size() / D, D};
}

py::tuple layernorm_forward(const farray& x, const std::optional<farray>& gamma,
                            const std::optional<farray>& beta, int norm_ndim, float epsilon,
                            bool center, const py::object& out_, const py::object& mean_out,
                            const py::object& invstd_out) {
    const auto [rows, D] = rows_of(x, norm_ndim);
    require(epsilon > 0.0f, "epsilon must be positive");
    const float* g = optional_vector(gamma, D, "gamma");
    const float* b = optional_vector(beta, D, "beta");
    farray y = output(out_, shape_of(x), "out", {{"x", x}});
    farray mean = output(mean_out, {rows}, "mean_out", {{"x", x}, {"out", y}});
    farray inv =
        output(invstd_out, {rows}, "invstd_out", {{"x", x}, {"out", y}, {"mean_out", mean}});
    float *py_ = y.mutable_data(), *pm = mean.mutable_data(), *pi = inv.mutable_data();
    const float* px = aligned(x, "x");
    without_gil(
        [&] { cnnkit::layernorm_forward(py_, pm, pi, px, g, b, rows, D, epsilon, center); });
    return py::make_tuple(y, mean, inv);
}

py::tuple layernorm_backward(const farray& dy, const farray& x, const farray& mean,
                             const farray& invstd, const std::optional<farray>& gamma,
                             int norm_ndim, bool center, bool need_dx, const py::object& dx_out,
                             const py::object& dgamma_out, const py::object& dbeta_out) {
    const auto [rows, D] = rows_of(x, norm_ndim);
    require_shape(dy, shape_of(x), "dy");
    require_shape(mean, {rows}, "mean");
    require_shape(invstd, {rows}, "invstd");
    const float* g = optional_vector(gamma, D, "gamma");
    farray dx = optional_dx(need_dx, dx_out, shape_of(x), {{"dy", dy}, {"x", x}});
    farray dg = output(dgamma_out, {D}, "dgamma_out", {{"dy", dy}, {"x", x}, {"dx_out", dx}});
    farray db = output(dbeta_out, {D}, "dbeta_out",
                       {{"dy", dy}, {"x", x}, {"dx_out", dx}, {"dgamma_out", dg}});
    float* pdx = need_dx ? dx.mutable_data() : nullptr;
    float *pdg = dg.mutable_data(), *pdb = db.mutable_data();
    const float *pdy = aligned(dy, "dy"), *px = aligned(x, "x"), *pm = aligned(mean, "mean"),
                *pi = aligned(invstd, "invstd");
    without_gil([&] {
        cnnkit::layernorm_backward(pdx, pdg, pdb, pdy, px, pm, pi, g, rows, D, center);
    });
    return py::make_tuple(need_dx ? py::object(dx) : py::none(), dg, db);
}

}  // namespace

void bind_normalization(py::module_& m) {
    m.def("batchnorm_fold", &batchnorm_fold, nc("kernel"), opt("bias"), opt("gamma"), opt("beta"),
          nc("mean"), nc("variance"), "epsilon"_a, out("kernel_out"), out("bias_out"),
          out("scale_out"));
    m.def("batchnorm_forward_train", &batchnorm_forward_train, nc("x"), opt("gamma"), opt("beta"),
          opt("moving_mean") = py::none(), opt("moving_variance") = py::none(), "axis"_a,
          "epsilon"_a, "momentum"_a = 0.99f, "relu"_a = false, out("out"), out("mean_out"),
          out("var_out"), out("invstd_out"));
    m.def("batchnorm_forward_infer", &batchnorm_forward_infer, nc("x"), opt("gamma"), opt("beta"),
          nc("mean"), nc("variance"), "axis"_a, "epsilon"_a, "relu"_a = false, out("out"),
          out("invstd_out"));
    m.def("batchnorm_backward", &batchnorm_backward, nc("dy"), nc("x"), nc("mean"), nc("invstd"),
          opt("gamma"), "axis"_a, "batch_stats"_a, opt("y") = py::none(), "need_dx"_a = true,
          out("dx_out"),
          out("dgamma_out"), out("dbeta_out"));
    m.def("layernorm_forward", &layernorm_forward, nc("x"), opt("gamma"), opt("beta"),
          "norm_ndim"_a, "epsilon"_a, "center"_a = true, out("out"), out("mean_out"),
          out("invstd_out"));
    m.def("layernorm_backward", &layernorm_backward, nc("dy"), nc("x"), nc("mean"), nc("invstd"),
          opt("gamma"), "norm_ndim"_a, "center"_a = true, "need_dx"_a = true, out("dx_out"),
          out("dgamma_out"), out("dbeta_out"));
}

}  // namespace cnnkit_bind
