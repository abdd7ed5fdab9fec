// bind_augment.cpp: the Python bindings of augmentation: flip, affine transform, crop, contrast (cpp/augment.cpp).
#include "check.h"

namespace cnnkit_bind {
namespace {

// Per-image parameters come as small arrays with one row per image of x (flags, matrices,
// offsets, factors); their values are checked wherever a kernel indexes with them.
using barray = py::array_t<uint8_t, py::array::c_style>;

struct Images {
    int n, h, w, c;
};

Images image_sizes(const farray& x, const char* name) {
    require_ndim(x, 4, name);
    return {as_int(x.shape(0), "batch size"), as_int(x.shape(1), "height"),
            as_int(x.shape(2), "width"), as_int(x.shape(3), "channels")};
}

int interpolation_code(const std::string& name) {
    if (name == "bilinear") return cnnkit::kInterpolationBilinear;
    if (name == "nearest") return cnnkit::kInterpolationNearest;
    throw py::value_error("interpolation must be 'bilinear' or 'nearest', got '" + name + "'");
}

int fill_code(const std::string& name) {
    if (name == "reflect") return cnnkit::kFillReflect;
    if (name == "wrap") return cnnkit::kFillWrap;
    if (name == "nearest") return cnnkit::kFillNearest;
    if (name == "constant") return cnnkit::kFillConstant;
    throw py::value_error("fill_mode must be 'reflect', 'wrap', 'nearest' or 'constant', got '" + name + "'");
}

// Flips are their own inverse: backward is the same kernel on dy.
farray flip(const farray& x, const barray& flags, const py::object& out_, const char* name) {
    const auto s = image_sizes(x, name);
    require_shape(flags, {s.n}, "flags");
    const uint8_t* f = aligned(flags, "flags");
    bool known = true;
    for (int i = 0; i < s.n; ++i) known &= f[i] <= (cnnkit::kFlipHorizontal | cnnkit::kFlipVertical);
    require(known, "flags must hold 0..3 (bit 0: left-right, bit 1: top-bottom)");
    farray y = output(out_, shape_of(x), "out", {{name, x}, {"flags", flags}});
    float* out = y.mutable_data();
    const float* inp = aligned(x, "x");
    without_gil([&] { cnnkit::flip_forward(out, inp, f, s.n, s.h, s.w, s.c); });
    return y;
}

farray flip_forward(const farray& x, const barray& flags, const py::object& out_) {
    return flip(x, flags, out_, "x");
}

farray flip_backward(const farray& dy, const barray& flags, const py::object& out_) {
    return flip(dy, flags, out_, "dy");
}

void require_matrices(const farray& matrices, int n) {
    require_shape(matrices, {n, 6}, "matrices");
    const float* m = aligned(matrices, "matrices");
    bool finite = true;
    for (int64_t i = 0; i < 6LL * n; ++i) finite &= std::isfinite(m[i]);
    require(finite, "matrices must be finite");
}

farray affine_transform_forward(const farray& x, const farray& matrices, int oh, int ow,
                                const std::string& interpolation, const std::string& fill_mode,
                                float fill_value, bool naive, const py::object& out_) {
    const auto s = image_sizes(x, "x");
    require_matrices(matrices, s.n);
    const cnnkit::AffineGeometry g{s.n, s.h, s.w, s.c, as_int(oh, "output height"), as_int(ow, "output width")};
    const int interp = interpolation_code(interpolation), fill = fill_code(fill_mode);
    farray y = output(out_, {g.N, g.OH, g.OW, g.C}, "out", {{"x", x}, {"matrices", matrices}});
    float* out = y.mutable_data();
    const float *inp = aligned(x, "x"), *m = aligned(matrices, "matrices");
    without_gil([&] {
        (naive ? cnnkit::affine_transform_forward_naive : cnnkit::affine_transform_forward)(
            out, inp, m, g, interp, fill, fill_value);
    });
    return y;
}

farray affine_transform_backward(const farray& dy, const farray& matrices, int h, int w,
                                 const std::string& interpolation, const std::string& fill_mode,
                                 const py::object& out_) {
    const auto s = image_sizes(dy, "dy");
    require_matrices(matrices, s.n);
    const cnnkit::AffineGeometry g{s.n, as_int(h, "height"), as_int(w, "width"), s.c, s.h, s.w};
    const int interp = interpolation_code(interpolation), fill = fill_code(fill_mode);
    farray dx = output(out_, {g.N, g.H, g.W, g.C}, "out", {{"dy", dy}, {"matrices", matrices}});
    float* pdx = dx.mutable_data();
    const float *pdy = aligned(dy, "dy"), *m = aligned(matrices, "matrices");
    without_gil([&] { cnnkit::affine_transform_backward(pdx, pdy, m, g, interp, fill); });
    return dx;
}

// offsets (n, 2) must keep every (oh, ow) window inside its (h, w) image.
void require_windows(const iarray& offsets, int n, int h, int w, int oh, int ow) {
    require_shape(offsets, {n, 2}, "offsets");
    require(oh <= h && ow <= w, "the " + std::to_string(oh) + "x" + std::to_string(ow) +
                                    " window is larger than the " + std::to_string(h) + "x" +
                                    std::to_string(w) + " image");
    const int32_t* o = aligned(offsets, "offsets");
    bool inside = true;
    for (int i = 0; i < n; ++i)
        inside &= o[2 * i] >= 0 && o[2 * i] <= h - oh && o[2 * i + 1] >= 0 && o[2 * i + 1] <= w - ow;
    require(inside, "offsets put a window outside its image");
}

farray crop_forward(const farray& x, const iarray& offsets, int oh, int ow, const py::object& out_) {
    const auto s = image_sizes(x, "x");
    oh = as_int(oh, "output height"), ow = as_int(ow, "output width");
    require_windows(offsets, s.n, s.h, s.w, oh, ow);
    farray y = output(out_, {s.n, oh, ow, s.c}, "out", {{"x", x}, {"offsets", offsets}});
    float* out = y.mutable_data();
    const float* inp = aligned(x, "x");
    const int32_t* o = aligned(offsets, "offsets");
    without_gil([&] { cnnkit::crop_forward(out, inp, o, s.n, s.h, s.w, s.c, oh, ow); });
    return y;
}

farray crop_backward(const farray& dy, const iarray& offsets, int h, int w, const py::object& out_) {
    const auto s = image_sizes(dy, "dy");
    h = as_int(h, "height"), w = as_int(w, "width");
    require_windows(offsets, s.n, h, w, s.h, s.w);
    farray dx = output(out_, {s.n, h, w, s.c}, "out", {{"dy", dy}, {"offsets", offsets}});
    float* pdx = dx.mutable_data();
    const float* pdy = aligned(dy, "dy");
    const int32_t* o = aligned(offsets, "offsets");
    without_gil([&] { cnnkit::crop_backward(pdx, pdy, o, s.n, h, w, s.c, s.h, s.w); });
    return dx;
}

farray contrast_forward(const farray& x, const farray& factors, float lo, float hi,
                        const py::object& out_) {
    const auto s = image_sizes(x, "x");
    require_shape(factors, {s.n}, "factors");
    require(lo <= hi, "value_range must be (low, high) with low <= high");
    farray y = output(out_, shape_of(x), "out", {{"x", x}, {"factors", factors}});
    float* out = y.mutable_data();
    const float *inp = aligned(x, "x"), *f = aligned(factors, "factors");
    const int64_t pixels = static_cast<int64_t>(s.h) * s.w;
    without_gil([&] { cnnkit::contrast_forward(out, inp, f, lo, hi, s.n, pixels, s.c); });
    return y;
}

farray contrast_backward(const farray& dy, const farray& x, const farray& factors, float lo,
                         float hi, const py::object& out_) {
    const auto s = image_sizes(x, "x");
    require_shape(dy, shape_of(x), "dy");
    require_shape(factors, {s.n}, "factors");
    require(lo <= hi, "value_range must be (low, high) with low <= high");
    farray dx = output(out_, shape_of(x), "out", {{"dy", dy}, {"x", x}, {"factors", factors}});
    float* pdx = dx.mutable_data();
    const float *pdy = aligned(dy, "dy"), *inp = aligned(x, "x"), *f = aligned(factors, "factors");
    const int64_t pixels = static_cast<int64_t>(s.h) * s.w;
    without_gil([&] { cnnkit::contrast_backward(pdx, pdy, inp, f, lo, hi, s.n, pixels, s.c); });
    return dx;
}

}  // namespace

void bind_augment(py::module_& m) {
    m.def("flip_forward", &flip_forward, nc("x"), nc("flags"), out("out"));
    m.def("flip_backward", &flip_backward, nc("dy"), nc("flags"), out("out"));
    m.def("affine_transform_forward", &affine_transform_forward, nc("x"), nc("matrices"), "oh"_a,
          "ow"_a, "interpolation"_a = "bilinear", "fill_mode"_a = "reflect", "fill_value"_a = 0.0f,
          py::arg("naive") = false, out("out"));
    m.def("affine_transform_backward", &affine_transform_backward, nc("dy"), nc("matrices"), "h"_a,
          "w"_a, "interpolation"_a = "bilinear", "fill_mode"_a = "reflect", out("out"));
    m.def("crop_forward", &crop_forward, nc("x"), nc("offsets"), "oh"_a, "ow"_a, out("out"));
    m.def("crop_backward", &crop_backward, nc("dy"), nc("offsets"), "h"_a, "w"_a, out("out"));
    m.def("contrast_forward", &contrast_forward, nc("x"), nc("factors"), "lo"_a, "hi"_a, out("out"));
    m.def("contrast_backward", &contrast_backward, nc("dy"), nc("x"), nc("factors"), "lo"_a, "hi"_a,
          out("out"));
}

}  // namespace cnnkit_bind
