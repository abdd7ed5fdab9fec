// bind_conv.cpp: the Python bindings of the convolutions (cpp/conv/): conv2d (strides, padding,
// dilation, groups), conv2d_transpose and depthwise_conv2d, forward and backward.
#include "check.h"

namespace cnnkit_bind {
namespace {

// The geometry of a convolution of x's shape (N,H,W,C) with a KH x KW kernel dilated by DH x DW,
// checked as window() checks a pooling window, on the dilated extent of the kernel.
cnnkit::Window2d conv_window(const std::vector<py::ssize_t>& x, int kh, int kw, int sh, int sw,
                             int dh, int dw, int pt, int pl, int oh, int ow) {
    require(x.size() == 4, "x must be 4-D");
    require(kh > 0 && kw > 0, "kernel size must be positive");
    require(dh > 0 && dw > 0 && dh < (1 << 16) && dw < (1 << 16), "dilation must be in [1, 2^16)");
    require(sh > 0 && sw > 0, "strides must be positive");
    require(oh > 0 && ow > 0, "output size must be positive");
    cnnkit::Window2d g{};
    g.N = as_int(x[0], "batch size");
    g.H = as_int(x[1], "height");
    g.W = as_int(x[2], "width");
    g.C = as_int(x[3], "channels");
    const int64_t ekh = (int64_t)(kh - 1) * dh + 1, ekw = (int64_t)(kw - 1) * dw + 1;
    require(pt >= 0 && pl >= 0 && pt < ekh && pl < ekw, "padding must be in [0, dilated kernel size)");
    require(static_cast<int64_t>(oh - 1) * sh - pt < g.H && static_cast<int64_t>(ow - 1) * sw - pl < g.W,
            "the output size reaches past the input");
    g.KH = kh, g.KW = kw, g.SH = sh, g.SW = sw, g.DH = dh, g.DW = dw, g.PT = pt, g.PL = pl;
    g.OH = oh, g.OW = ow;
    return g;
}

// conv2d weight (KH,KW,C/groups,OC) against input channels C: returns OC.
int conv_filters(const farray& w, int C, int groups) {
    require_ndim(w, 4, "w");
    require(groups >= 1 && C % groups == 0,
            "groups must be a positive divisor of the input channels, got groups=" +
                std::to_string(groups) + " for " + std::to_string(C) + " channels");
    require(w.shape(2) == C / groups, "w has " + std::to_string(w.shape(2)) +
                                          " input channels per group but x has " +
                                          std::to_string(C) + " in " + std::to_string(groups) +
                                          " group(s)");
    const int oc = as_int(w.shape(3), "filters");
    require(oc % groups == 0, "filters (" + std::to_string(oc) + ") must be divisible by groups (" +
                                  std::to_string(groups) + ")");
    return oc;
}

farray conv2d_forward(const farray& x, const farray& w, const std::optional<farray>& b, int sh,
                      int sw, int pt, int pl, int oh, int ow, bool naive, bool relu, int dh,
                      int dw, int groups, const py::object& out_,
                      const std::optional<farray>& residual) {
    require_ndim(w, 4, "w");
    const auto g = conv_window(shape_of(x), as_int(w.shape(0), "kernel height"),
                               as_int(w.shape(1), "kernel width"), sh, sw, dh, dw, pt, pl, oh, ow);
    const int oc = conv_filters(w, g.C, groups);
    if (b) require_shape(*b, {oc}, "b");
    farray y = b ? output(out_, {g.N, oh, ow, oc}, "out", {{"x", x}, {"w", w}, {"b", *b}})
                 : output(out_, {g.N, oh, ow, oc}, "out", {{"x", x}, {"w", w}});
    const float* res = nullptr;
    if (residual) {  // the output's shape, and no memory shared with it
        require_shape(*residual, {g.N, oh, ow, oc}, "residual");
        require(!overlap(y, *residual), "out must not share memory with residual");
        res = aligned(*residual, "residual");
    }
    float* out = y.mutable_data();
    const float *inp = aligned(x, "x"), *wt = aligned(w, "w"), *bias = b ? aligned(*b, "b") : nullptr;
    const int64_t n = (int64_t)g.N * oh * ow * oc;
    without_gil([&] {
        if (!naive) return cnnkit::conv2d_forward(out, inp, wt, bias, g, oc, relu, groups, res);
        // The naive loops, then the sum and the ReLU as their own pass.
        cnnkit::conv2d_forward_naive(out, inp, wt, bias, g, oc, relu && !res, groups);
        if (res) cnnkit::add_forward(out, out, res, n, relu);
    });
    return y;
}

// need_dx=false skips the input gradient (returned as None): a model's first layer has no use
// for it, and for a 3-channel input it costs as much as the weight gradient.
py::tuple conv2d_backward(const farray& dy, const farray& x, const farray& w, int sh, int sw,
                          int pt, int pl, bool naive, bool need_dx, int dh, int dw, int groups,
                          const py::object& dx_out, const py::object& dw_out,
                          const py::object& db_out) {
    require_ndim(w, 4, "w");
    require_ndim(dy, 4, "dy");
    const auto g = conv_window(shape_of(x), as_int(w.shape(0), "kernel height"),
                               as_int(w.shape(1), "kernel width"), sh, sw, dh, dw, pt, pl,
                               as_int(dy.shape(1), "dy height"), as_int(dy.shape(2), "dy width"));
    const int oc = conv_filters(w, g.C, groups);
    require_shape(dy, {g.N, g.OH, g.OW, oc}, "dy");
    const std::initializer_list<Input> inputs = {{"dy", dy}, {"x", x}, {"w", w}};
    farray dx = optional_dx(need_dx, dx_out, {g.N, g.H, g.W, g.C}, inputs);
    farray dwt = output(dw_out, shape_of(w), "dw_out", inputs);
    farray db = output(db_out, {oc}, "db_out", inputs);
    require(!overlap(dwt, db) && (!need_dx || (!overlap(dx, dwt) && !overlap(dx, db))),
            "dx_out, dw_out and db_out must not share memory");
    float *pdx = need_dx ? dx.mutable_data() : nullptr, *pdw = dwt.mutable_data(), *pdb = db.mutable_data();
    const float *pdy = aligned(dy, "dy"), *inp = aligned(x, "x"), *wt = aligned(w, "w");
    without_gil([&] {
        (naive ? cnnkit::conv2d_backward_naive : cnnkit::conv2d_backward)(pdx, pdw, pdb, pdy, inp, wt, g, oc, groups);
    });
    return py::make_tuple(need_dx ? py::object(dx) : py::none(), dwt, db);
}

// Transposed convolution: x (N,H,W,IC) is the output of the convolution whose input, the
// result (N,OH,OW,F), has output size oh x ow; w is (KH,KW,F,IC); pt/pl that convolution's
// padding.
farray conv2d_transpose_forward(const farray& x, const farray& w, const std::optional<farray>& b,
                                int sh, int sw, int dh, int dw, int pt, int pl, int oh, int ow,
                                bool naive, const py::object& out_) {
    require_ndim(x, 4, "x");
    require_ndim(w, 4, "w");
    const int f = as_int(w.shape(2), "filters");
    const auto g = conv_window({x.shape(0), oh, ow, f}, as_int(w.shape(0), "kernel height"),
                               as_int(w.shape(1), "kernel width"), sh, sw, dh, dw, pt, pl,
                               as_int(x.shape(1), "height"), as_int(x.shape(2), "width"));
    const int ic = as_int(w.shape(3), "input channels of w");
    require(x.shape(3) == ic, "x has " + std::to_string(x.shape(3)) + " channels but w expects " +
                                  std::to_string(ic));
    if (b) require_shape(*b, {f}, "b");
    farray y = b ? output(out_, {g.N, oh, ow, f}, "out", {{"x", x}, {"w", w}, {"b", *b}})
                 : output(out_, {g.N, oh, ow, f}, "out", {{"x", x}, {"w", w}});
    float* out = y.mutable_data();
    const float *inp = aligned(x, "x"), *wt = aligned(w, "w"), *bias = b ? aligned(*b, "b") : nullptr;
    without_gil([&] {
        (naive ? cnnkit::conv2d_transpose_forward_naive : cnnkit::conv2d_transpose_forward)(out, inp, wt, bias, g, ic);
    });
    return y;
}

py::tuple conv2d_transpose_backward(const farray& dy, const farray& x, const farray& w, int sh,
                                    int sw, int dh, int dw, int pt, int pl, bool naive,
                                    bool need_dx, const py::object& dx_out,
                                    const py::object& dw_out, const py::object& db_out) {
    require_ndim(x, 4, "x");
    require_ndim(w, 4, "w");
    require_ndim(dy, 4, "dy");
    const auto g = conv_window(shape_of(dy), as_int(w.shape(0), "kernel height"),
                               as_int(w.shape(1), "kernel width"), sh, sw, dh, dw, pt, pl,
                               as_int(x.shape(1), "height"), as_int(x.shape(2), "width"));
    const int ic = as_int(w.shape(3), "input channels of w");
    require_shape(w, {g.KH, g.KW, g.C, ic}, "w");
    require_shape(x, {g.N, g.OH, g.OW, ic}, "x");
    const std::initializer_list<Input> inputs = {{"dy", dy}, {"x", x}, {"w", w}};
    farray dx = optional_dx(need_dx, dx_out, shape_of(x), inputs);
    farray dwt = output(dw_out, shape_of(w), "dw_out", inputs);
    farray db = output(db_out, {g.C}, "db_out", inputs);
    require(!overlap(dwt, db) && (!need_dx || (!overlap(dx, dwt) && !overlap(dx, db))),
            "dx_out, dw_out and db_out must not share memory");
    float *pdx = need_dx ? dx.mutable_data() : nullptr, *pdw = dwt.mutable_data(), *pdb = db.mutable_data();
    const float *pdy = aligned(dy, "dy"), *inp = aligned(x, "x"), *wt = aligned(w, "w");
    without_gil([&] {
        (naive ? cnnkit::conv2d_transpose_backward_naive : cnnkit::conv2d_transpose_backward)(pdx, pdw, pdb, pdy, inp, wt, g, ic);
    });
    return py::make_tuple(need_dx ? py::object(dx) : py::none(), dwt, db);
}

// Depthwise: w is (KH,KW,C,DM), the output has C*DM channels.
int depthwise_multiplier(const farray& w, int C) {
    require_ndim(w, 4, "w");
    require(w.shape(2) == C, "w has " + std::to_string(w.shape(2)) + " input channels but x has " +
                                 std::to_string(C));
    const int dm = as_int(w.shape(3), "depth multiplier");
    require((int64_t)C * dm < (1LL << 31), "channels * depth multiplier must be < 2^31");
    return dm;
}

farray depthwise_conv2d_forward(const farray& x, const farray& w, const std::optional<farray>& b,
                                int sh, int sw, int dh, int dw, int pt, int pl, int oh, int ow,
                                bool naive, bool relu, const py::object& out_) {
    require_ndim(w, 4, "w");
    const auto g = conv_window(shape_of(x), as_int(w.shape(0), "kernel height"),
                               as_int(w.shape(1), "kernel width"), sh, sw, dh, dw, pt, pl, oh, ow);
    const int dm = depthwise_multiplier(w, g.C), oc = g.C * dm;
    if (b) require_shape(*b, {oc}, "b");
    farray y = b ? output(out_, {g.N, oh, ow, oc}, "out", {{"x", x}, {"w", w}, {"b", *b}})
                 : output(out_, {g.N, oh, ow, oc}, "out", {{"x", x}, {"w", w}});
    float* out = y.mutable_data();
    const float *inp = aligned(x, "x"), *wt = aligned(w, "w"), *bias = b ? aligned(*b, "b") : nullptr;
    without_gil([&] {
        (naive ? cnnkit::depthwise_conv2d_forward_naive : cnnkit::depthwise_conv2d_forward)(out, inp, wt, bias, g, dm, relu);
    });
    return y;
}

py::tuple depthwise_conv2d_backward(const farray& dy, const farray& x, const farray& w, int sh,
                                    int sw, int dh, int dw, int pt, int pl, bool naive,
                                    bool need_dx, const py::object& dx_out,
                                    const py::object& dw_out, const py::object& db_out) {
    require_ndim(w, 4, "w");
    require_ndim(dy, 4, "dy");
    const auto g = conv_window(shape_of(x), as_int(w.shape(0), "kernel height"),
                               as_int(w.shape(1), "kernel width"), sh, sw, dh, dw, pt, pl,
                               as_int(dy.shape(1), "dy height"), as_int(dy.shape(2), "dy width"));
    const int dm = depthwise_multiplier(w, g.C), oc = g.C * dm;
    require_shape(dy, {g.N, g.OH, g.OW, oc}, "dy");
    const std::initializer_list<Input> inputs = {{"dy", dy}, {"x", x}, {"w", w}};
    farray dx = optional_dx(need_dx, dx_out, {g.N, g.H, g.W, g.C}, inputs);
    farray dwt = output(dw_out, shape_of(w), "dw_out", inputs);
    farray db = output(db_out, {oc}, "db_out", inputs);
    require(!overlap(dwt, db) && (!need_dx || (!overlap(dx, dwt) && !overlap(dx, db))),
            "dx_out, dw_out and db_out must not share memory");
    float *pdx = need_dx ? dx.mutable_data() : nullptr, *pdw = dwt.mutable_data(), *pdb = db.mutable_data();
    const float *pdy = aligned(dy, "dy"), *inp = aligned(x, "x"), *wt = aligned(w, "w");
    without_gil([&] {
        (naive ? cnnkit::depthwise_conv2d_backward_naive : cnnkit::depthwise_conv2d_backward)(pdx, pdw, pdb, pdy, inp, wt, g, dm);
    });
    return py::make_tuple(need_dx ? py::object(dx) : py::none(), dwt, db);
}

}  // namespace

void bind_conv(py::module_& m) {
    m.def("conv2d_forward", &conv2d_forward, nc("x"), nc("w"), opt("b"), "sh"_a, "sw"_a, "pt"_a,
          "pl"_a, "oh"_a, "ow"_a, py::arg("naive") = false, py::arg("relu") = false,
          py::arg("dh") = 1, py::arg("dw") = 1, py::arg("groups") = 1, out("out"),
          opt("residual") = py::none());
    m.def("conv2d_backward", &conv2d_backward, nc("dy"), nc("x"), nc("w"), "sh"_a, "sw"_a, "pt"_a,
          "pl"_a, py::arg("naive") = false, py::arg("need_dx") = true, py::arg("dh") = 1,
          py::arg("dw") = 1, py::arg("groups") = 1, out("dx_out"), out("dw_out"), out("db_out"));
    m.def("conv2d_transpose_forward", &conv2d_transpose_forward, nc("x"), nc("w"), opt("b"),
          "sh"_a, "sw"_a, "dh"_a, "dw"_a, "pt"_a, "pl"_a, "oh"_a, "ow"_a,
          py::arg("naive") = false, out("out"));
    m.def("conv2d_transpose_backward", &conv2d_transpose_backward, nc("dy"), nc("x"), nc("w"),
          "sh"_a, "sw"_a, "dh"_a, "dw"_a, "pt"_a, "pl"_a, py::arg("naive") = false,
          py::arg("need_dx") = true, out("dx_out"), out("dw_out"), out("db_out"));
    m.def("depthwise_conv2d_forward", &depthwise_conv2d_forward, nc("x"), nc("w"), opt("b"),
          "sh"_a, "sw"_a, "dh"_a, "dw"_a, "pt"_a, "pl"_a, "oh"_a, "ow"_a,
          py::arg("naive") = false, py::arg("relu") = false, out("out"));
    m.def("depthwise_conv2d_backward", &depthwise_conv2d_backward, nc("dy"), nc("x"), nc("w"),
          "sh"_a, "sw"_a, "dh"_a, "dw"_a, "pt"_a, "pl"_a, py::arg("naive") = false,
          py::arg("need_dx") = true, out("dx_out"), out("dw_out"), out("db_out"));
}

}  // namespace cnnkit_bind
