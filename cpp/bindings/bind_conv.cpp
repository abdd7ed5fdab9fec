// bind_conv.cpp: the Python bindings of convolution: conv2d_forward and conv2d_backward (cpp/conv2d.cpp).
#include "check.h"

namespace cnnkit_bind {
namespace {

farray conv2d_forward(const farray& x, const farray& w, const std::optional<farray>& b, int sh,
                      int sw, int pt, int pl, int oh, int ow, bool naive, bool relu,
                      const py::object& out_) {
    require_ndim(w, 4, "w");
    const auto g = window(x, as_int(w.shape(0), "kernel height"), as_int(w.shape(1), "kernel width"),
                          sh, sw, pt, pl, oh, ow);
    require(w.shape(2) == g.C, "w has " + std::to_string(w.shape(2)) + " input channels but x has " +
                                   std::to_string(g.C));
    const int oc = as_int(w.shape(3), "filters");
    if (b) require_shape(*b, {oc}, "b");
    farray y = b ? output(out_, {g.N, oh, ow, oc}, "out", {{"x", x}, {"w", w}, {"b", *b}})
                 : output(out_, {g.N, oh, ow, oc}, "out", {{"x", x}, {"w", w}});
    float* out = y.mutable_data();
    const float *inp = aligned(x, "x"), *wt = aligned(w, "w"), *bias = b ? aligned(*b, "b") : nullptr;
    without_gil([&] { (naive ? cnnkit::conv2d_forward_naive : cnnkit::conv2d_forward)(out, inp, wt, bias, g, oc, relu); });
    return y;
}

// need_dx=false skips the input gradient (returned as None): a model's first layer has no use
// for it, and for a 3-channel input it costs as much as the weight gradient.
py::tuple conv2d_backward(const farray& dy, const farray& x, const farray& w, int sh, int sw,
                          int pt, int pl, bool naive, bool need_dx, const py::object& dx_out,
                          const py::object& dw_out, const py::object& db_out) {
    require_ndim(w, 4, "w");
    require_ndim(dy, 4, "dy");
    const auto g = window(x, as_int(w.shape(0), "kernel height"), as_int(w.shape(1), "kernel width"),
                          sh, sw, pt, pl, as_int(dy.shape(1), "dy height"), as_int(dy.shape(2), "dy width"));
    require(w.shape(2) == g.C, "w has " + std::to_string(w.shape(2)) + " input channels but x has " +
                                   std::to_string(g.C));
    const int oc = as_int(w.shape(3), "filters");
    require_shape(dy, {g.N, g.OH, g.OW, oc}, "dy");
    const std::initializer_list<Input> inputs = {{"dy", dy}, {"x", x}, {"w", w}};
    farray dx = optional_dx(need_dx, dx_out, {g.N, g.H, g.W, g.C}, inputs);
    farray dw = output(dw_out, {g.KH, g.KW, g.C, oc}, "dw_out", inputs);
    farray db = output(db_out, {oc}, "db_out", inputs);
    require(!overlap(dw, db) && (!need_dx || (!overlap(dx, dw) && !overlap(dx, db))),
            "dx_out, dw_out and db_out must not share memory");
    float *pdx = need_dx ? dx.mutable_data() : nullptr, *pdw = dw.mutable_data(), *pdb = db.mutable_data();
    const float *pdy = aligned(dy, "dy"), *inp = aligned(x, "x"), *wt = aligned(w, "w");
    without_gil([&] { (naive ? cnnkit::conv2d_backward_naive : cnnkit::conv2d_backward)(pdx, pdw, pdb, pdy, inp, wt, g, oc); });
    return py::make_tuple(need_dx ? py::object(dx) : py::none(), dw, db);
}

}  // namespace

void bind_conv(py::module_& m) {
    m.def("conv2d_forward", &conv2d_forward, nc("x"), nc("w"), opt("b"), "sh"_a, "sw"_a, "pt"_a,
          "pl"_a, "oh"_a, "ow"_a, py::arg("naive") = false, py::arg("relu") = false, out("out"));
    m.def("conv2d_backward", &conv2d_backward, nc("dy"), nc("x"), nc("w"), "sh"_a, "sw"_a, "pt"_a,
          "pl"_a, py::arg("naive") = false, py::arg("need_dx") = true, out("dx_out"), out("dw_out"),
          out("db_out"));
}

}  // namespace cnnkit_bind
