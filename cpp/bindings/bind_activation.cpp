// bind_activation.cpp: the Python bindings of the activations (cpp/activation.cpp).
//
// Elementwise ones: <name>_forward(x, [parameters], out=None) and
// <name>_backward(dy, x or y, [parameters], out=None), the second argument named after what the
// kernel takes (cnnkit.h). Axis-wise ones (softmax, log_softmax) take axis=-1; prelu takes alpha.
#include "check.h"

#include <limits>

namespace cnnkit_bind {
namespace {

// Runs an elementwise forward kernel, kernel(out, inp, n), into out_ (or a new array).
template <class Kernel>
farray forward(const farray& x, const py::object& out_, Kernel kernel) {
    farray y = output(out_, shape_of(x), "out", {{"x", x}});
    float* out = y.mutable_data();
    const float* inp = aligned(x, "x");
    const int64_t n = x.size();
    without_gil([&] { kernel(out, inp, n); });
    return y;
}

// Runs an elementwise backward kernel, kernel(dinp, dout, saved, n); `saved` is x or y.
template <class Kernel>
farray backward(const farray& dy, const farray& saved, const char* saved_name,
                const py::object& out_, Kernel kernel) {
    require_shape(dy, shape_of(saved), "dy");
    farray dx = output(out_, shape_of(saved), "out", {{"dy", dy}, {saved_name, saved}});
    float* pdx = dx.mutable_data();
    const float *pdy = aligned(dy, "dy"), *ps = aligned(saved, saved_name);
    const int64_t n = saved.size();
    without_gil([&] { kernel(pdx, pdy, ps, n); });
    return dx;
}

// An activation without parameters: forward(x, out=None) and backward(dy, saved, out=None).
template <void (*Forward)(float*, const float*, int64_t),
          void (*Backward)(float*, const float*, const float*, int64_t)>
void plain(py::module_& m, const char* name, const char* saved_name) {
    const std::string base(name);
    m.def((base + "_forward").c_str(),
          [](const farray& x, const py::object& out_) { return forward(x, out_, Forward); },
          nc("x"), out("out"));
    const std::string saved(saved_name);
    m.def((base + "_backward").c_str(),
          [saved](const farray& dy, const farray& s, const py::object& out_) {
              return backward(dy, s, saved.c_str(), out_, Backward);
          },
          nc("dy"), nc(saved_name), out("out"));
}

float finite(double value, const char* name) {
    require(std::isfinite(value), std::string(name) + " must be finite");
    return static_cast<float>(value);
}

// max_value: None (no clip) or a number >= 0; NaN is refused.
float max_or_inf(const py::object& max_value) {
    if (max_value.is_none()) return std::numeric_limits<float>::infinity();
    const double v = max_value.cast<double>();
    require(!std::isnan(v), "max_value must be a number or None");
    return static_cast<float>(v);
}

// (outer, axis size, inner) of an array for an axis in [-ndim, ndim).
struct AxisSplit {
    int64_t outer, inner;
    int size;
};

AxisSplit split_axis(const farray& a, int axis) {
    const int nd = static_cast<int>(a.ndim());
    require(nd >= 1, "softmax needs at least one axis");
    require(axis >= -nd && axis < nd, "axis " + std::to_string(axis) + " is out of range for an array of rank " +
                                          std::to_string(nd));
    if (axis < 0) axis += nd;
    AxisSplit s{1, 1, as_int(a.shape(axis), "size of the softmax axis")};
    for (int d = 0; d < axis; ++d) s.outer *= a.shape(d);
    for (int d = axis + 1; d < nd; ++d) s.inner *= a.shape(d);
    return s;
}

template <void (*Kernel)(float*, const float*, int64_t, int, int64_t)>
farray axis_forward(const farray& x, int axis, const py::object& out_) {
    const AxisSplit s = split_axis(x, axis);
    return forward(x, out_, [s](float* o, const float* i, int64_t) { Kernel(o, i, s.outer, s.size, s.inner); });
}

template <void (*Kernel)(float*, const float*, const float*, int64_t, int, int64_t)>
farray axis_backward(const farray& dy, const farray& y, int axis, const py::object& out_) {
    require_shape(dy, shape_of(y), "dy");
    const AxisSplit s = split_axis(y, axis);
    return backward(dy, y, "y", out_, [s](float* dx, const float* d, const float* yy, int64_t) {
        Kernel(dx, d, yy, s.outer, s.size, s.inner);
    });
}

// PReLU's geometry: alpha has x's shape without the batch axis, with size 1 along shared axes.
cnnkit::PReluGeometry prelu_geometry(const farray& x, const farray& alpha) {
    require(x.ndim() >= 2, "prelu: x needs a batch axis and at least one more, got shape " + shape_str(x));
    require(alpha.ndim() == x.ndim() - 1,
            "prelu: alpha must have x's shape without the batch axis (size 1 along shared axes), "
            "got alpha " + shape_str(alpha) + " for x " + shape_str(x));
    cnnkit::PReluGeometry g{};
    g.N = x.shape(0);
    g.alpha_size = alpha.size();
    // Merge adjacent axes that are all shared or all unshared; axes of size 1 are neither.
    int last = -1;  // sharedness of the last merged dim: 0 no, 1 yes
    for (py::ssize_t d = 1; d < x.ndim(); ++d) {
        const py::ssize_t size = x.shape(d), a = alpha.shape(d - 1);
        require(a == size || a == 1, "prelu: alpha " + shape_str(alpha) + " does not broadcast to x " +
                                         shape_str(x) + " without its batch axis");
        if (size == 1) continue;
        const int shared = a == 1 ? 1 : 0;
        if (shared == last) {
            g.dims[g.ndim - 1] *= size;
        } else {
            require(g.ndim < 8, "prelu: too many alternations of shared and unshared axes");
            g.dims[g.ndim] = size;
            g.alpha_strides[g.ndim] = shared ? 0 : 1;
            ++g.ndim;
            last = shared;
        }
    }
    if (g.ndim == 0) g.dims[0] = 1, g.alpha_strides[0] = 1, g.ndim = 1;
    // An unshared dim's stride in alpha is the product of the unshared dims after it.
    int64_t stride = 1;
    for (int d = g.ndim - 1; d >= 0; --d) {
        if (g.alpha_strides[d] == 0) continue;
        g.alpha_strides[d] = stride;
        stride *= g.dims[d];
    }
    return g;
}

farray prelu_forward(const farray& x, const farray& alpha, const py::object& out_) {
    const auto g = prelu_geometry(x, alpha);
    farray y = output(out_, shape_of(x), "out", {{"x", x}, {"alpha", alpha}});
    float* out = y.mutable_data();
    const float *inp = aligned(x, "x"), *a = aligned(alpha, "alpha");
    without_gil([&] { cnnkit::prelu_forward(out, inp, a, g); });
    return y;
}

py::tuple prelu_backward(const farray& dy, const farray& x, const farray& alpha, bool need_dx,
                         const py::object& dx_out, const py::object& dalpha_out) {
    const auto g = prelu_geometry(x, alpha);
    require_shape(dy, shape_of(x), "dy");
    farray dx = optional_dx(need_dx, dx_out, shape_of(x), {{"dy", dy}, {"x", x}, {"alpha", alpha}});
    farray da = output(dalpha_out, shape_of(alpha), "dalpha_out",
                       {{"dy", dy}, {"x", x}, {"alpha", alpha}, {"dx_out", dx}});
    float* pdx = need_dx ? dx.mutable_data() : nullptr;
    float* pda = da.mutable_data();
    const float *pdy = aligned(dy, "dy"), *inp = aligned(x, "x"), *a = aligned(alpha, "alpha");
    without_gil([&] { cnnkit::prelu_backward(pdx, pda, pdy, inp, a, g); });
    return py::make_tuple(need_dx ? py::object(dx) : py::none(), da);
}

}  // namespace

void bind_activation(py::module_& m) {
    plain<cnnkit::relu_forward, cnnkit::relu_backward>(m, "relu", "y");
    plain<cnnkit::sigmoid_forward, cnnkit::sigmoid_backward>(m, "sigmoid", "y");
    plain<cnnkit::tanh_forward, cnnkit::tanh_backward>(m, "tanh", "y");
    plain<cnnkit::exponential_forward, cnnkit::exponential_backward>(m, "exponential", "y");
    plain<cnnkit::silu_forward, cnnkit::silu_backward>(m, "silu", "x");
    plain<cnnkit::selu_forward, cnnkit::selu_backward>(m, "selu", "x");
    plain<cnnkit::softplus_forward, cnnkit::softplus_backward>(m, "softplus", "x");
    plain<cnnkit::softsign_forward, cnnkit::softsign_backward>(m, "softsign", "x");
    plain<cnnkit::hard_sigmoid_forward, cnnkit::hard_sigmoid_backward>(m, "hard_sigmoid", "x");
    plain<cnnkit::hard_silu_forward, cnnkit::hard_silu_backward>(m, "hard_silu", "x");
    plain<cnnkit::mish_forward, cnnkit::mish_backward>(m, "mish", "x");

    m.def("relu_general_forward",
          [](const farray& x, double negative_slope, const py::object& max_value, double threshold,
             const py::object& out_) {
              const float s = finite(negative_slope, "negative_slope"), t = finite(threshold, "threshold");
              const float mx = max_or_inf(max_value);
              return forward(x, out_, [=](float* o, const float* i, int64_t n) {
                  cnnkit::relu_general_forward(o, i, n, s, mx, t);
              });
          },
          nc("x"), py::arg("negative_slope") = 0.0, py::arg("max_value") = py::none(),
          py::arg("threshold") = 0.0, out("out"));
    m.def("relu_general_backward",
          [](const farray& dy, const farray& x, double negative_slope, const py::object& max_value,
             double threshold, const py::object& out_) {
              const float s = finite(negative_slope, "negative_slope"), t = finite(threshold, "threshold");
              const float mx = max_or_inf(max_value);
              return backward(dy, x, "x", out_, [=](float* d, const float* g, const float* i, int64_t n) {
                  cnnkit::relu_general_backward(d, g, i, n, s, mx, t);
              });
          },
          nc("dy"), nc("x"), py::arg("negative_slope") = 0.0, py::arg("max_value") = py::none(),
          py::arg("threshold") = 0.0, out("out"));
    m.def("gelu_forward",
          [](const farray& x, bool approximate, const py::object& out_) {
              return forward(x, out_, [=](float* o, const float* i, int64_t n) {
                  cnnkit::gelu_forward(o, i, n, approximate);
              });
          },
          nc("x"), py::arg("approximate") = false, out("out"));
    m.def("gelu_backward",
          [](const farray& dy, const farray& x, bool approximate, const py::object& out_) {
              return backward(dy, x, "x", out_, [=](float* d, const float* g, const float* i, int64_t n) {
                  cnnkit::gelu_backward(d, g, i, n, approximate);
              });
          },
          nc("dy"), nc("x"), py::arg("approximate") = false, out("out"));
    m.def("elu_forward",
          [](const farray& x, double alpha, const py::object& out_) {
              const float a = finite(alpha, "alpha");
              return forward(x, out_, [=](float* o, const float* i, int64_t n) {
                  cnnkit::elu_forward(o, i, n, a, 1.0f);
              });
          },
          nc("x"), py::arg("alpha") = 1.0, out("out"));
    m.def("elu_backward",
          [](const farray& dy, const farray& x, double alpha, const py::object& out_) {
              const float a = finite(alpha, "alpha");
              return backward(dy, x, "x", out_, [=](float* d, const float* g, const float* i, int64_t n) {
                  cnnkit::elu_backward(d, g, i, n, a, 1.0f);
              });
          },
          nc("dy"), nc("x"), py::arg("alpha") = 1.0, out("out"));

    m.def("softmax_forward", &axis_forward<cnnkit::softmax_axis_forward>, nc("x"),
          py::arg("axis") = -1, out("out"));
    m.def("softmax_backward", &axis_backward<cnnkit::softmax_axis_backward>, nc("dy"), nc("y"),
          py::arg("axis") = -1, out("out"));
    m.def("log_softmax_forward", &axis_forward<cnnkit::log_softmax_forward>, nc("x"),
          py::arg("axis") = -1, out("out"));
    m.def("log_softmax_backward", &axis_backward<cnnkit::log_softmax_backward>, nc("dy"), nc("y"),
          py::arg("axis") = -1, out("out"));

    m.def("prelu_forward", &prelu_forward, nc("x"), nc("alpha"), out("out"));
    m.def("prelu_backward", &prelu_backward, nc("dy"), nc("x"), nc("alpha"),
          py::arg("need_dx") = true, out("dx_out"), out("dalpha_out"));
}

}  // namespace cnnkit_bind
