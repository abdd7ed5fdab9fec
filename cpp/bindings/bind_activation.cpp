// bind_activation.cpp: the Python bindings of activations: relu, sigmoid, softmax (cpp/activation.cpp).
#include "check.h"

namespace cnnkit_bind {
namespace {


template <void (*Kernel)(float*, const float*, int64_t)>
farray elementwise(const farray& x, const py::object& out_) {
    farray y = output(out_, shape_of(x), "out", {{"x", x}});
    float* out = y.mutable_data();
    const float* inp = aligned(x, "x");
    const int64_t n = x.size();
    without_gil([&] { Kernel(out, inp, n); });
    return y;
}

template <void (*Kernel)(float*, const float*, const float*, int64_t)>
farray elementwise_backward(const farray& dy, const farray& y, const py::object& out_) {
    require_shape(dy, shape_of(y), "dy");
    farray dx = output(out_, shape_of(y), "out", {{"dy", dy}, {"y", y}});
    float* pdx = dx.mutable_data();
    const float *pdy = aligned(dy, "dy"), *out = aligned(y, "y");
    const int64_t n = y.size();
    without_gil([&] { Kernel(pdx, pdy, out, n); });
    return dx;
}

// Softmax runs over the last axis; the leading axes are rows.
std::pair<int64_t, int> rows_cols(const farray& a) {
    require(a.ndim() >= 1, "softmax needs at least one axis");
    const int cols = as_int(a.shape(a.ndim() - 1), "size of the last axis");
    return {a.size() / cols, cols};
}

farray softmax_forward(const farray& x, const py::object& out_) {
    const auto [rows, cols] = rows_cols(x);
    farray y = output(out_, shape_of(x), "out", {{"x", x}});
    float* out = y.mutable_data();
    const float* inp = aligned(x, "x");
    without_gil([&] { cnnkit::softmax_forward(out, inp, rows, cols); });
    return y;
}

farray softmax_backward(const farray& dy, const farray& y, const py::object& out_) {
    require_shape(dy, shape_of(y), "dy");
    const auto [rows, cols] = rows_cols(y);
    farray dx = output(out_, shape_of(y), "out", {{"dy", dy}, {"y", y}});
    float* pdx = dx.mutable_data();
    const float *pdy = aligned(dy, "dy"), *out = aligned(y, "y");
    without_gil([&] { cnnkit::softmax_backward(pdx, pdy, out, rows, cols); });
    return dx;
}

}  // namespace

void bind_activation(py::module_& m) {
    m.def("relu_forward", &elementwise<cnnkit::relu_forward>, nc("x"), out("out"));
    m.def("relu_backward", &elementwise_backward<cnnkit::relu_backward>, nc("dy"), nc("y"), out("out"));
    m.def("sigmoid_forward", &elementwise<cnnkit::sigmoid_forward>, nc("x"), out("out"));
    m.def("sigmoid_backward", &elementwise_backward<cnnkit::sigmoid_backward>, nc("dy"), nc("y"),
          out("out"));
    m.def("softmax_forward", &softmax_forward, nc("x"), out("out"));
    m.def("softmax_backward", &softmax_backward, nc("dy"), nc("y"), out("out"));
}

}  // namespace cnnkit_bind
