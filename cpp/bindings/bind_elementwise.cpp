// bind_elementwise.cpp: the Python bindings of Rescaling, Normalization, SpatialDropout2D,
// GaussianNoise and Add (cpp/elementwise.cpp).
#include "check.h"

namespace cnnkit_bind {
namespace {

// x (outer, channels, inner) as the caller splits it; scale and offset are (channels,).
int64_t affine_channels(const farray& x, const farray& scale, int64_t outer, int64_t inner) {
    require_ndim(scale, 1, "scale");
    require(outer > 0 && inner > 0, "outer and inner must be positive");
    const int64_t channels = scale.shape(0);
    require(channels > 0, "scale must not be empty");
    require(x.size() / channels / inner == outer && outer * channels * inner == x.size(),
            "x has " + std::to_string(x.size()) + " values, not outer * channels * inner = " +
                std::to_string(outer) + " * " + std::to_string(channels) + " * " +
                std::to_string(inner));
    return channels;
}

// An optional (channels,) array of values as a pointer, null when not given.
const float* optional_values(const std::optional<farray>& a, const farray& scale, const char* name) {
    if (!a) return nullptr;
    require_shape(*a, shape_of(scale), name);
    return aligned(*a, name);
}

farray affine_forward(const farray& x, const farray& scale, const std::optional<farray>& offset,
                      int64_t outer, int64_t inner, const std::optional<farray>& shift,
                      const py::object& out_) {
    const int64_t channels = affine_channels(x, scale, outer, inner);
    const float* b = optional_values(offset, scale, "offset");
    const float* c = optional_values(shift, scale, "shift");
    const farray empty(std::vector<py::ssize_t>{0});  // stands in for a missing one below
    farray y = output(out_, shape_of(x), "out",
                      {{"x", x}, {"scale", scale}, {"offset", offset ? *offset : empty},
                       {"shift", shift ? *shift : empty}});
    float* out = y.mutable_data();
    const float *inp = aligned(x, "x"), *a = aligned(scale, "scale");
    without_gil([&] { cnnkit::affine_forward(out, inp, c, a, b, outer, channels, inner); });
    return y;
}

farray affine_backward(const farray& dy, const farray& scale, int64_t outer, int64_t inner,
                       const py::object& out_) {
    const int64_t channels = affine_channels(dy, scale, outer, inner);
    farray dx = output(out_, shape_of(dy), "out", {{"dy", dy}, {"scale", scale}});
    float* out = dx.mutable_data();
    const float *inp = aligned(dy, "dy"), *a = aligned(scale, "scale");
    without_gil([&] { cnnkit::affine_forward(out, inp, nullptr, a, nullptr, outer, channels, inner); });
    return dx;
}

// x (N, ..., C) times mask (N, C), broadcast over the axes between.
farray channel_mask(const farray& x, const farray& mask, const py::object& out_, const char* name) {
    require(x.ndim() >= 2, std::string(name) + " must have at least 2 axes, got shape " + shape_str(x));
    const int64_t n = x.shape(0), channels = x.shape(x.ndim() - 1);
    require(n > 0 && channels > 0, std::string(name) + " must not be empty");
    require_shape(mask, {x.shape(0), x.shape(x.ndim() - 1)}, "mask");
    farray y = output(out_, shape_of(x), "out", {{name, x}, {"mask", mask}});
    float* out = y.mutable_data();
    const float *inp = aligned(x, name), *m = aligned(mask, "mask");
    const int64_t spatial = x.size() / n / channels;
    without_gil([&] { cnnkit::channel_mask(out, inp, m, n, spatial, channels); });
    return y;
}

farray gaussian_noise_forward(const farray& x, const farray& noise, float stddev,
                              const py::object& out_) {
    require_shape(noise, shape_of(x), "noise");
    require(std::isfinite(stddev) && stddev >= 0.0f, "stddev must be finite and non-negative");
    farray y = output(out_, shape_of(x), "out", {{"x", x}, {"noise", noise}});
    float* out = y.mutable_data();
    const float *inp = aligned(x, "x"), *z = aligned(noise, "noise");
    const int64_t n = x.size();
    without_gil([&] { cnnkit::add_scaled_noise(out, inp, z, stddev, n); });
    return y;
}

// out may be a itself (an in-place sum, as a graph's gradient accumulation), else it shares no
// memory with a or b.
farray add_forward(const farray& a, const farray& b, bool relu, const py::object& out_) {
    require_shape(b, shape_of(a), "b");
    farray y = output(out_, shape_of(a), "out", {{"b", b}});
    require(y.data() == a.data() || !overlap(y, a),
            "out must be a itself or share no memory with a");
    float* out = y.mutable_data();
    const float *pa = aligned(a, "a"), *pb = aligned(b, "b");
    const int64_t n = a.size();
    without_gil([&] { cnnkit::add_forward(out, pa, pb, n, relu); });
    return y;
}

}  // namespace

void bind_elementwise(py::module_& m) {
    m.def("affine_forward", &affine_forward, nc("x"), nc("scale"), opt("offset"), "outer"_a,
          "inner"_a, opt("shift") = py::none(), out("out"));
    m.def("affine_backward", &affine_backward, nc("dy"), nc("scale"), "outer"_a, "inner"_a,
          out("out"));
    m.def("spatial_dropout_forward",
          [](const farray& x, const farray& mask, const py::object& out_) {
              return channel_mask(x, mask, out_, "x");
          },
          nc("x"), nc("mask"), out("out"));
    m.def("spatial_dropout_backward",
          [](const farray& dy, const farray& mask, const py::object& out_) {
              return channel_mask(dy, mask, out_, "dy");
          },
          nc("dy"), nc("mask"), out("out"));
    m.def("gaussian_noise_forward", &gaussian_noise_forward, nc("x"), nc("noise"), "stddev"_a,
          out("out"));
    m.def("add_forward", &add_forward, nc("a"), nc("b"), "relu"_a = false, out("out"));
}

}  // namespace cnnkit_bind
