// bind_pool.cpp: the Python bindings of pooling (max, average, global average) and upsampling
// (cpp/pool.cpp, cpp/resize.cpp), zero padding and cropping (cpp/pad_crop.cpp).
#include "check.h"

namespace cnnkit_bind {
namespace {

py::object maxpool2d_forward(const farray& x, int kh, int kw, int sh, int sw, int pt, int pl,
                             int oh, int ow, bool with_argmax, const py::object& out_,
                             const py::object& argmax_out) {
    const auto g = window(x, kh, kw, sh, sw, pt, pl, oh, ow);
    farray y = output(out_, {g.N, oh, ow, g.C}, "out", {{"x", x}});
    require(with_argmax || argmax_out.is_none(), "argmax_out must be None when with_argmax is False");
    iarray idx = with_argmax
                     ? output<int32_t>(argmax_out, {g.N, oh, ow, g.C}, "argmax_out", {{"x", x}, {"out", y}})
                     : iarray(std::vector<py::ssize_t>{0, oh, ow, g.C});
    float* out = y.mutable_data();
    int32_t* argmax = with_argmax ? idx.mutable_data() : nullptr;
    const float* inp = aligned(x, "x");
    without_gil([&] { cnnkit::maxpool2d_forward(out, argmax, inp, g); });
    if (with_argmax) return py::make_tuple(y, idx);
    return std::move(y);
}

// The gradient routed through the winners the forward pass recorded. argmax comes from Python,
// so each index is checked before any is used.
// With the window given (kh > 0), argmax must come from maxpool2d_forward with that window: a
// tiling window then takes a faster path that assumes each winner lies in its own window.
farray maxpool2d_backward_argmax(const farray& dy, const iarray& argmax, int h, int w, int kh,
                                 int kw, int sh, int sw, int pt, int pl, const py::object& out_) {
    require_ndim(dy, 4, "dy");
    require_shape(argmax, {dy.shape(0), dy.shape(1), dy.shape(2), dy.shape(3)}, "argmax");
    cnnkit::Window2d g{};
    g.N = as_int(dy.shape(0), "batch size");
    g.H = as_int(h, "height");
    g.W = as_int(w, "width");
    g.C = as_int(dy.shape(3), "channels");
    g.OH = as_int(dy.shape(1), "dy height");
    g.OW = as_int(dy.shape(2), "dy width");
    if (kh > 0) {
        require(kw > 0 && sh > 0 && sw > 0, "window size and strides must be positive");
        require(pt >= 0 && pl >= 0 && pt < kh && pl < kw, "padding must be in [0, window size)");
        require(static_cast<int64_t>(g.OH - 1) * sh - pt < g.H && static_cast<int64_t>(g.OW - 1) * sw - pl < g.W,
                "the output size reaches past the input");
        g.KH = kh, g.KW = kw, g.SH = sh, g.SW = sw, g.PT = pt, g.PL = pl;
    }
    const int32_t* idx = aligned(argmax, "argmax");
    const int64_t limit = static_cast<int64_t>(g.H) * g.W;
    // One pass with a flag, the message built only on failure: require() inside the loop made a
    // std::string per element, which cost more than the backward pass itself.
    bool inside = true;
    const py::ssize_t count = argmax.size();
    for (py::ssize_t i = 0; i < count; ++i) inside &= idx[i] >= 0 && idx[i] < limit;
    require(inside, "argmax holds a position outside the input");
    farray dx = output(out_, {g.N, g.H, g.W, g.C}, "out", {{"dy", dy}, {"argmax", argmax}});
    float* pdx = dx.mutable_data();
    const float* pdy = aligned(dy, "dy");
    without_gil([&] { cnnkit::maxpool2d_backward(pdx, pdy, idx, g); });
    return dx;
}

farray maxpool2d_backward(const farray& dy, const farray& x, int kh, int kw, int sh, int sw, int pt,
                          int pl, const py::object& out_) {
    require_ndim(dy, 4, "dy");
    const auto g = window(x, kh, kw, sh, sw, pt, pl, as_int(dy.shape(1), "dy height"),
                          as_int(dy.shape(2), "dy width"));
    require_shape(dy, {g.N, g.OH, g.OW, g.C}, "dy");
    farray y = new_array({g.N, g.OH, g.OW, g.C});
    std::vector<int32_t> argmax(static_cast<size_t>(y.size()));
    farray dx = output(out_, {g.N, g.H, g.W, g.C}, "out", {{"dy", dy}, {"x", x}});
    float *out = y.mutable_data(), *pdx = dx.mutable_data();
    const float *inp = aligned(x, "x"), *pdy = aligned(dy, "dy");
    without_gil([&] {
        cnnkit::maxpool2d_forward(out, argmax.data(), inp, g);
        cnnkit::maxpool2d_backward(pdx, pdy, argmax.data(), g);
    });
    return dx;
}

// The window of a pooling whose input (N,h,w,C) is known only by its size, from the gradient dy
// (N,OH,OW,C) of its output; the same checks as window() makes on an input array.
cnnkit::Window2d window_of_dy(const farray& dy, int h, int w, int kh, int kw, int sh, int sw, int pt,
                              int pl) {
    require_ndim(dy, 4, "dy");
    cnnkit::Window2d g{};
    g.N = as_int(dy.shape(0), "batch size");
    g.H = as_int(h, "height");
    g.W = as_int(w, "width");
    g.C = as_int(dy.shape(3), "channels");
    g.OH = as_int(dy.shape(1), "dy height");
    g.OW = as_int(dy.shape(2), "dy width");
    g.KH = kh, g.KW = kw, g.SH = sh, g.SW = sw, g.PT = pt, g.PL = pl;
    require(kh > 0 && kw > 0, "window size must be positive");
    require(sh > 0 && sw > 0, "strides must be positive");
    require(pt >= 0 && pl >= 0 && pt < kh && pl < kw, "padding must be in [0, window size)");
    require(static_cast<int64_t>(g.OH - 1) * sh - pt < g.H && static_cast<int64_t>(g.OW - 1) * sw - pl < g.W,
            "the output size reaches past the input");
    return g;
}

farray avgpool2d_forward(const farray& x, int kh, int kw, int sh, int sw, int pt, int pl, int oh,
                         int ow, const py::object& out_) {
    const auto g = window(x, kh, kw, sh, sw, pt, pl, oh, ow);
    farray y = output(out_, {g.N, oh, ow, g.C}, "out", {{"x", x}});
    float* out = y.mutable_data();
    const float* inp = aligned(x, "x");
    without_gil([&] { cnnkit::avgpool2d_forward(out, inp, g); });
    return y;
}

farray avgpool2d_backward(const farray& dy, int h, int w, int kh, int kw, int sh, int sw, int pt,
                          int pl, const py::object& out_) {
    const auto g = window_of_dy(dy, h, w, kh, kw, sh, sw, pt, pl);
    farray dx = output(out_, {g.N, g.H, g.W, g.C}, "out", {{"dy", dy}});
    float* pdx = dx.mutable_data();
    const float* pdy = aligned(dy, "dy");
    without_gil([&] { cnnkit::avgpool2d_backward(pdx, pdy, g); });
    return dx;
}

farray global_avgpool2d_forward(const farray& x, const py::object& out_) {
    require_ndim(x, 4, "x");
    const int n = as_int(x.shape(0), "batch size"), c = as_int(x.shape(3), "channels");
    const int64_t p = static_cast<int64_t>(as_int(x.shape(1), "height")) * as_int(x.shape(2), "width");
    farray y = output(out_, {n, c}, "out", {{"x", x}});
    float* out = y.mutable_data();
    const float* inp = aligned(x, "x");
    without_gil([&] { cnnkit::global_avgpool2d_forward(out, inp, n, p, c); });
    return y;
}

farray global_avgpool2d_backward(const farray& dy, int h, int w, const py::object& out_) {
    require_ndim(dy, 2, "dy");
    const int n = as_int(dy.shape(0), "batch size"), c = as_int(dy.shape(1), "channels");
    const int64_t p = static_cast<int64_t>(as_int(h, "height")) * as_int(w, "width");
    farray dx = output(out_, {n, h, w, c}, "out", {{"dy", dy}});
    float* pdx = dx.mutable_data();
    const float* pdy = aligned(dy, "dy");
    without_gil([&] { cnnkit::global_avgpool2d_backward(pdx, pdy, n, p, c); });
    return dx;
}

// Rows and columns added (zero_padding2d_forward, cropping2d_backward) or removed (the other two)
// around the images of a batch.
struct Border {
    int top, bottom, left, right;
};

Border border(int top, int bottom, int left, int right, const char* what) {
    require(top >= 0 && bottom >= 0 && left >= 0 && right >= 0,
            std::string(what) + " must not be negative");
    return {top, bottom, left, right};
}

// out (N, H+top+bottom, W+left+right, C) = x (N,H,W,C) padded with zeros.
farray pad(const farray& x, const Border& b, const char* x_name, const py::object& out_) {
    require_ndim(x, 4, x_name);
    const int n = as_int(x.shape(0), "batch size"), h = as_int(x.shape(1), "height"),
              w = as_int(x.shape(2), "width"), c = as_int(x.shape(3), "channels");
    const int oh = as_int(static_cast<py::ssize_t>(h) + b.top + b.bottom, "padded height");
    const int ow = as_int(static_cast<py::ssize_t>(w) + b.left + b.right, "padded width");
    farray y = output(out_, {n, oh, ow, c}, "out", {{x_name, x}});
    float* out = y.mutable_data();
    const float* inp = aligned(x, x_name);
    without_gil([&] { cnnkit::pad2d(out, inp, n, h, w, c, b.top, b.bottom, b.left, b.right); });
    return y;
}

// out (N, H-top-bottom, W-left-right, C) = the middle of x (N,H,W,C); something must remain.
farray crop(const farray& x, const Border& b, const char* x_name, const py::object& out_) {
    require_ndim(x, 4, x_name);
    const int n = as_int(x.shape(0), "batch size"), h = as_int(x.shape(1), "height"),
              w = as_int(x.shape(2), "width"), c = as_int(x.shape(3), "channels");
    require(static_cast<int64_t>(b.top) + b.bottom < h && static_cast<int64_t>(b.left) + b.right < w,
            std::string(x_name) + " has shape " + shape_str(x) + ", too small to remove " +
                std::to_string(b.top) + "+" + std::to_string(b.bottom) + " rows and " +
                std::to_string(b.left) + "+" + std::to_string(b.right) + " columns");
    const int oh = h - b.top - b.bottom, ow = w - b.left - b.right;
    farray y = output(out_, {n, oh, ow, c}, "out", {{x_name, x}});
    float* out = y.mutable_data();
    const float* inp = aligned(x, x_name);
    without_gil([&] { cnnkit::crop2d(out, inp, n, h, w, c, b.top, b.left, oh, ow); });
    return y;
}

farray zero_padding2d_forward(const farray& x, int t, int b, int l, int r, const py::object& out_) {
    return pad(x, border(t, b, l, r, "padding"), "x", out_);
}
farray zero_padding2d_backward(const farray& dy, int t, int b, int l, int r, const py::object& out_) {
    return crop(dy, border(t, b, l, r, "padding"), "dy", out_);
}
// Upsampling, nearest or bilinear: the same checks and buffers around either kernel.
using Resize = void (*)(float*, const float*, int, int, int, int, int, int);

template <Resize kernel>
farray upsample_forward(const farray& x, int sh, int sw, const py::object& out_) {
    require_ndim(x, 4, "x");
    require(sh > 0 && sw > 0, "size must be positive");
    const int n = as_int(x.shape(0), "batch size"), h = as_int(x.shape(1), "height"),
              w = as_int(x.shape(2), "width"), c = as_int(x.shape(3), "channels");
    const int oh = as_int(static_cast<py::ssize_t>(h) * sh, "output height");
    const int ow = as_int(static_cast<py::ssize_t>(w) * sw, "output width");
    farray y = output(out_, {n, oh, ow, c}, "out", {{"x", x}});
    float* out = y.mutable_data();
    const float* inp = aligned(x, "x");
    without_gil([&] { kernel(out, inp, n, h, w, c, sh, sw); });
    return y;
}

template <Resize kernel>
farray upsample_backward(const farray& dy, int sh, int sw, const py::object& out_) {
    require_ndim(dy, 4, "dy");
    require(sh > 0 && sw > 0, "size must be positive");
    require(dy.shape(1) % sh == 0 && dy.shape(2) % sw == 0,
            "dy has shape " + shape_str(dy) + ", whose height and width are not multiples of size");
    const int n = as_int(dy.shape(0), "batch size"), h = as_int(dy.shape(1) / sh, "height"),
              w = as_int(dy.shape(2) / sw, "width"), c = as_int(dy.shape(3), "channels");
    farray dx = output(out_, {n, h, w, c}, "out", {{"dy", dy}});
    float* pdx = dx.mutable_data();
    const float* pdy = aligned(dy, "dy");
    without_gil([&] { kernel(pdx, pdy, n, h, w, c, sh, sw); });
    return dx;
}

farray cropping2d_forward(const farray& x, int t, int b, int l, int r, const py::object& out_) {
    return crop(x, border(t, b, l, r, "cropping"), "x", out_);
}
farray cropping2d_backward(const farray& dy, int t, int b, int l, int r, const py::object& out_) {
    return pad(dy, border(t, b, l, r, "cropping"), "dy", out_);
}

}  // namespace

void bind_pool(py::module_& m) {
    m.def("maxpool2d_forward", &maxpool2d_forward, nc("x"), "kh"_a, "kw"_a, "sh"_a, "sw"_a, "pt"_a,
          "pl"_a, "oh"_a, "ow"_a, py::arg("with_argmax") = false, out("out"), out("argmax_out"));
    m.def("maxpool2d_backward", &maxpool2d_backward, nc("dy"), nc("x"), "kh"_a, "kw"_a, "sh"_a,
          "sw"_a, "pt"_a, "pl"_a, out("out"));
    m.def("maxpool2d_backward_argmax", &maxpool2d_backward_argmax, nc("dy"), nc("argmax"), "h"_a, "w"_a,
          "kh"_a = 0, "kw"_a = 0, "sh"_a = 0, "sw"_a = 0, "pt"_a = 0, "pl"_a = 0, out("out"));
    m.def("upsampling2d_forward", &upsample_forward<cnnkit::upsampling2d_forward>, nc("x"),
          "sh"_a, "sw"_a, out("out"));
    m.def("upsampling2d_backward", &upsample_backward<cnnkit::upsampling2d_backward>, nc("dy"),
          "sh"_a, "sw"_a, out("out"));
    m.def("avgpool2d_forward", &avgpool2d_forward, nc("x"), "kh"_a, "kw"_a, "sh"_a, "sw"_a, "pt"_a,
          "pl"_a, "oh"_a, "ow"_a, out("out"));
    m.def("avgpool2d_backward", &avgpool2d_backward, nc("dy"), "h"_a, "w"_a, "kh"_a, "kw"_a, "sh"_a,
          "sw"_a, "pt"_a, "pl"_a, out("out"));
    m.def("global_avgpool2d_forward", &global_avgpool2d_forward, nc("x"), out("out"));
    m.def("global_avgpool2d_backward", &global_avgpool2d_backward, nc("dy"), "h"_a, "w"_a, out("out"));
    m.def("zero_padding2d_forward", &zero_padding2d_forward, nc("x"), "top"_a, "bottom"_a,
          "left"_a, "right"_a, out("out"));
    m.def("zero_padding2d_backward", &zero_padding2d_backward, nc("dy"), "top"_a, "bottom"_a,
          "left"_a, "right"_a, out("out"));
    m.def("cropping2d_forward", &cropping2d_forward, nc("x"), "top"_a, "bottom"_a, "left"_a,
          "right"_a, out("out"));
    m.def("cropping2d_backward", &cropping2d_backward, nc("dy"), "top"_a, "bottom"_a, "left"_a,
          "right"_a, out("out"));
    m.def("upsampling2d_bilinear_forward",
          &upsample_forward<cnnkit::upsampling2d_bilinear_forward>, nc("x"), "sh"_a, "sw"_a,
          out("out"));
    m.def("upsampling2d_bilinear_backward",
          &upsample_backward<cnnkit::upsampling2d_bilinear_backward>, nc("dy"), "sh"_a, "sw"_a,
          out("out"));
}

}  // namespace cnnkit_bind
