// bind_dense.cpp: the Python bindings of dense layers (cpp/dense.cpp).
#include "check.h"

namespace cnnkit_bind {
namespace {

farray dense_forward(const farray& x, const farray& w, const std::optional<farray>& b, bool naive,
                     bool relu, const py::object& out_) {
    require_ndim(x, 2, "x");
    require_ndim(w, 2, "w");
    const int batch = as_int(x.shape(0), "batch size"), in = as_int(x.shape(1), "input features");
    require(w.shape(0) == in, "w has shape " + shape_str(w) + " but x has " + std::to_string(in) + " features");
    const int out_features = as_int(w.shape(1), "units");
    if (b) require_shape(*b, {out_features}, "b");
    farray y = b ? output(out_, {batch, out_features}, "out", {{"x", x}, {"w", w}, {"b", *b}})
                 : output(out_, {batch, out_features}, "out", {{"x", x}, {"w", w}});
    float* out = y.mutable_data();
    const float *inp = aligned(x, "x"), *wt = aligned(w, "w"), *bias = b ? aligned(*b, "b") : nullptr;
    without_gil([&] { (naive ? cnnkit::dense_forward_naive : cnnkit::dense_forward)(out, inp, wt, bias, batch, in, out_features, relu); });
    return y;
}

py::tuple dense_backward(const farray& dy, const farray& x, const farray& w, bool naive, bool need_dx,
                         const py::object& dx_out, const py::object& dw_out, const py::object& db_out) {
    require_ndim(x, 2, "x");
    require_ndim(w, 2, "w");
    const int batch = as_int(x.shape(0), "batch size"), in = as_int(x.shape(1), "input features");
    require(w.shape(0) == in, "w has shape " + shape_str(w) + " but x has " + std::to_string(in) + " features");
    const int out_features = as_int(w.shape(1), "units");
    require_shape(dy, {batch, out_features}, "dy");
    const std::initializer_list<Input> inputs = {{"dy", dy}, {"x", x}, {"w", w}};
    farray dx = optional_dx(need_dx, dx_out, {batch, in}, inputs);
    farray dw = output(dw_out, {in, out_features}, "dw_out", inputs);
    farray db = output(db_out, {out_features}, "db_out", inputs);
    require(!overlap(dw, db) && (!need_dx || (!overlap(dx, dw) && !overlap(dx, db))),
            "dx_out, dw_out and db_out must not share memory");
    float *pdx = need_dx ? dx.mutable_data() : nullptr, *pdw = dw.mutable_data(), *pdb = db.mutable_data();
    const float *pdy = aligned(dy, "dy"), *inp = aligned(x, "x"), *wt = aligned(w, "w");
    without_gil([&] { (naive ? cnnkit::dense_backward_naive : cnnkit::dense_backward)(pdx, pdw, pdb, pdy, inp, wt, batch, in, out_features); });
    return py::make_tuple(need_dx ? py::object(dx) : py::none(), dw, db);
}

}  // namespace

void bind_dense(py::module_& m) {
    m.def("dense_forward", &dense_forward, nc("x"), nc("w"), opt("b"), py::arg("naive") = false,
          py::arg("relu") = false, out("out"));
    m.def("dense_backward", &dense_backward, nc("dy"), nc("x"), nc("w"), py::arg("naive") = false,
          py::arg("need_dx") = true, out("dx_out"), out("dw_out"), out("db_out"));
}

}  // namespace cnnkit_bind
