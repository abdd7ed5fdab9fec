// bindings.cpp: the Python module cnnkit._core, the one place where Python meets the kernels.
//
// The Python layer (cnnkit.ops) normalises arguments, converts dtypes once and writes the
// friendly error messages. This layer still checks every shape and index that a kernel relies
// on, so that a direct call into _core can raise an exception but never read or write out of
// bounds: the kernels trust their arguments and must not throw inside OpenMP regions.
// Arrays are taken without conversion (.noconvert()): a float64 or strided array is a TypeError
// here, never a silent copy, so outputs written in place are never lost. The GIL is released
// around each kernel, after the raw pointers are taken; no Python object is touched meanwhile.
// Every kernel that makes an array also takes it as an argument (out=, or dx_out=, dw_out=,
// db_out= for a backward pass): None makes a new array; a given one must be exactly the array
// the kernel would make (dtype, C-contiguous, writeable, shape), must not overlap an input, and
// is written in place and returned. Layers pass buffers they reuse, so a warm training step
// allocates no array.
#include <pybind11/pybind11.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "cnnkit.h"

namespace py = pybind11;
using namespace pybind11::literals;
using farray = py::array_t<float, py::array::c_style>;
using iarray = py::array_t<int32_t, py::array::c_style>;
using larray = py::array_t<int64_t, py::array::c_style>;

namespace {

std::string shape_str(const py::array& a) {
    std::ostringstream s;
    s << "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
    s << (a.ndim() == 1 ? ",)" : ")");
    return s.str();
}

void require(bool ok, const std::string& message) {
    if (!ok) throw py::value_error(message);
}

void require_ndim(const py::array& a, int ndim, const char* name) {
    require(a.ndim() == ndim, std::string(name) + " must be " + std::to_string(ndim) +
                                  "-D, got shape " + shape_str(a));
}

void require_shape(const py::array& a, const std::vector<py::ssize_t>& shape, const char* name) {
    bool same = a.ndim() == static_cast<py::ssize_t>(shape.size());
    for (size_t i = 0; same && i < shape.size(); ++i) same = a.shape(i) == shape[i];
    if (!same) {
        std::ostringstream s;
        s << name << " has shape " << shape_str(a) << ", expected (";
        for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
        s << (shape.size() == 1 ? ",)" : ")");
        throw py::value_error(s.str());
    }
}

void require_writeable(const py::array& a, const char* name) {
    if (!a.writeable()) throw py::value_error(std::string(name) + " must be writeable (it is updated in place)");
}

// The kernels read and write through typed pointers and may vectorise assuming their
// alignment: an array whose data does not start on a multiple of its element size (a view that
// begins mid-element) is refused, here for inputs and in output() for the arrays written.
template <class A>
auto aligned(const A& a, const char* name) -> decltype(a.data()) {
    require(reinterpret_cast<std::uintptr_t>(a.data()) % a.itemsize() == 0,
            std::string(name) + " must be aligned to its element size (copy it, e.g. with "
            "numpy.require(a, requirements='CA'))");
    return a.data();
}

template <class A>
auto aligned_mutable(A& a, const char* name) -> decltype(a.mutable_data()) {
    aligned(a, name);
    return a.mutable_data();
}

int as_int(py::ssize_t v, const char* what) {
    require(v > 0 && v < (1LL << 31), std::string(what) + " must be in [1, 2^31), got " + std::to_string(v));
    return static_cast<int>(v);
}

// Builds the window geometry of a conv or pool over x (N,H,W,C) and checks that every window
// holds at least one real input (so a max-pool window is never all padding, and no index
// computed from the geometry leaves the input).
cnnkit::Window2d window(const farray& x, int kh, int kw, int sh, int sw, int pt, int pl, int oh,
                        int ow) {
    require_ndim(x, 4, "x");
    cnnkit::Window2d g{};
    g.N = as_int(x.shape(0), "batch size");
    g.H = as_int(x.shape(1), "height");
    g.W = as_int(x.shape(2), "width");
    g.C = as_int(x.shape(3), "channels");
    g.KH = kh, g.KW = kw, g.SH = sh, g.SW = sw, g.PT = pt, g.PL = pl, g.OH = oh, g.OW = ow;
    require(kh > 0 && kw > 0, "window size must be positive");
    require(sh > 0 && sw > 0, "strides must be positive");
    require(oh > 0 && ow > 0, "output size must be positive");
    require(pt >= 0 && pl >= 0 && pt < kh && pl < kw, "padding must be in [0, window size)");
    require(static_cast<int64_t>(oh - 1) * sh - pt < g.H && static_cast<int64_t>(ow - 1) * sw - pl < g.W,
            "the output size reaches past the input");
    return g;
}

farray new_array(const std::vector<py::ssize_t>& shape) { return farray(shape); }

// An input an output must not overlap: the kernels read their inputs while writing.
struct Input {
    const char* name;
    const py::array& array;
};

bool overlap(const py::array& a, const py::array& b) {
    if (a.nbytes() == 0 || b.nbytes() == 0) return false;
    const auto* a0 = static_cast<const char*>(a.data());
    const auto* b0 = static_cast<const char*>(b.data());
    return a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes();
}

// The array a kernel writes: a new one for None, else `out` after the checks above (exact
// dtype, C-contiguous, writeable, the expected shape, no overlap with `inputs`).
template <class T>
py::array_t<T, py::array::c_style> output(const py::object& out, const std::vector<py::ssize_t>& shape,
                                          const char* name, std::initializer_list<Input> inputs = {}) {
    using result = py::array_t<T, py::array::c_style>;
    if (out.is_none()) return result(shape);
    if (!py::isinstance<py::array>(out))
        throw py::type_error(std::string(name) + " must be a NumPy array or None, got " +
                             py::str(py::type::handle_of(out).attr("__name__")).cast<std::string>());
    const auto a = py::reinterpret_borrow<py::array>(out);
    const auto dtype = py::dtype::of<T>();
    if (!a.dtype().equal(dtype))
        throw py::type_error(std::string(name) + " must have dtype " +
                             py::str(dtype).cast<std::string>() + ", got " +
                             py::str(a.dtype()).cast<std::string>());
    require((a.flags() & py::array::c_style) != 0, std::string(name) + " must be C-contiguous");
    aligned(a, name);
    require_writeable(a, name);
    require_shape(a, shape, name);
    for (const auto& input : inputs)
        require(!overlap(a, input.array),
                std::string(name) + " must not share memory with " + input.name);
    return py::reinterpret_borrow<result>(out);
}

farray output(const py::object& out, const std::vector<py::ssize_t>& shape, const char* name,
              std::initializer_list<Input> inputs = {}) {
    return output<float>(out, shape, name, inputs);
}

// dx_out of a backward pass that skips the input gradient (need_dx=False) must be None.
farray optional_dx(bool need_dx, const py::object& out, const std::vector<py::ssize_t>& shape,
                   std::initializer_list<Input> inputs) {
    if (need_dx) return output(out, shape, "dx_out", inputs);
    require(out.is_none(), "dx_out must be None when need_dx is False");
    auto empty = shape;
    empty[0] = 0;
    return new_array(empty);
}

// Runs a kernel with the GIL released; the caller has taken every pointer it needs beforehand.
template <class Kernel>
void without_gil(Kernel&& kernel) {
    py::gil_scoped_release release;
    cnnkit::adopt_num_threads();
    kernel();
}

// ---------------------------------------------------------------- convolution
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

// ---------------------------------------------------------------- pooling and upsampling
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

farray upsampling2d_forward(const farray& x, int sh, int sw, const py::object& out_) {
    require_ndim(x, 4, "x");
    require(sh > 0 && sw > 0, "size must be positive");
    const int n = as_int(x.shape(0), "batch size"), h = as_int(x.shape(1), "height"),
              w = as_int(x.shape(2), "width"), c = as_int(x.shape(3), "channels");
    farray y = output(out_, {n, static_cast<py::ssize_t>(h) * sh, static_cast<py::ssize_t>(w) * sw, c},
                      "out", {{"x", x}});
    float* out = y.mutable_data();
    const float* inp = aligned(x, "x");
    without_gil([&] { cnnkit::upsampling2d_forward(out, inp, n, h, w, c, sh, sw); });
    return y;
}

farray upsampling2d_backward(const farray& dy, int sh, int sw, const py::object& out_) {
    require_ndim(dy, 4, "dy");
    require(sh > 0 && sw > 0, "size must be positive");
    require(dy.shape(1) % sh == 0 && dy.shape(2) % sw == 0,
            "dy has shape " + shape_str(dy) + ", whose height and width are not multiples of size");
    const int n = as_int(dy.shape(0), "batch size"), h = as_int(dy.shape(1) / sh, "height"),
              w = as_int(dy.shape(2) / sw, "width"), c = as_int(dy.shape(3), "channels");
    farray dx = output(out_, {n, h, w, c}, "out", {{"dy", dy}});
    float* pdx = dx.mutable_data();
    const float* pdy = aligned(dy, "dy");
    without_gil([&] { cnnkit::upsampling2d_backward(pdx, pdy, n, h, w, c, sh, sw); });
    return dx;
}

// ---------------------------------------------------------------- dense
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

// ---------------------------------------------------------------- activations
std::vector<py::ssize_t> shape_of(const py::array& a) { return {a.shape(), a.shape() + a.ndim()}; }

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

// ---------------------------------------------------------------- losses
py::tuple softmax_cross_entropy(const farray& logits, const std::optional<farray>& onehot,
                                const std::optional<larray>& labels, const py::object& out_) {
    require_ndim(logits, 2, "logits");
    require(onehot.has_value() != labels.has_value(), "give exactly one of onehot and labels");
    const int64_t batch = as_int(logits.shape(0), "batch size");
    const int k = as_int(logits.shape(1), "classes");
    if (onehot) require_shape(*onehot, {batch, k}, "y_true");
    if (labels) {
        require_shape(*labels, {batch}, "y_true");
        const int64_t* l = aligned(*labels, "labels");
        for (int64_t i = 0; i < batch; ++i)
            if (l[i] < 0 || l[i] >= k)  // the message is built only for a bad label
                throw py::value_error("label " + std::to_string(l[i]) + " is outside [0, " +
                                      std::to_string(k) + ")");
    }
    farray dlogits = onehot ? output(out_, {batch, k}, "out", {{"logits", logits}, {"onehot", *onehot}})
                            : output(out_, {batch, k}, "out", {{"logits", logits}, {"labels", *labels}});
    float* pd = dlogits.mutable_data();
    const float *pl = aligned(logits, "logits"), *po = onehot ? aligned(*onehot, "onehot") : nullptr;
    const int64_t* pi = labels ? aligned(*labels, "labels") : nullptr;
    double loss;
    without_gil([&] { loss = cnnkit::softmax_cross_entropy(pd, pl, po, pi, batch, k); });
    return py::make_tuple(loss, dlogits);
}

py::tuple mean_squared_error(const farray& y_true, const farray& y_pred, const py::object& out_) {
    require_shape(y_true, shape_of(y_pred), "y_true");
    require(y_pred.size() > 0, "y_pred is empty");
    farray grad = output(out_, shape_of(y_pred), "out", {{"y_true", y_true}, {"y_pred", y_pred}});
    float* pg = grad.mutable_data();
    const float *pp = aligned(y_pred, "y_pred"), *pt = aligned(y_true, "y_true");
    const int64_t n = y_pred.size();
    double loss;
    without_gil([&] { loss = cnnkit::mean_squared_error(pg, pp, pt, n); });
    return py::make_tuple(loss, grad);
}

py::tuple binary_crossentropy(const farray& y_true, const farray& y_pred, float eps,
                              const py::object& out_) {
    require_shape(y_true, shape_of(y_pred), "y_true");
    require(y_pred.size() > 0, "y_pred is empty");
    require(eps >= 0.0f && eps < 0.5f, "epsilon must be in [0, 0.5)");
    farray grad = output(out_, shape_of(y_pred), "out", {{"y_true", y_true}, {"y_pred", y_pred}});
    float* pg = grad.mutable_data();
    const float *pp = aligned(y_pred, "y_pred"), *pt = aligned(y_true, "y_true");
    const int64_t n = y_pred.size();
    double loss;
    without_gil([&] { loss = cnnkit::binary_crossentropy(pg, pp, pt, n, eps); });
    return py::make_tuple(loss, grad);
}

// ---------------------------------------------------------------- optimizers (in place)
void adam_update(farray param, const farray& grad, farray m, farray v, int64_t step, float lr,
                 float beta1, float beta2, float eps) {
    const auto shape = shape_of(param);
    require_shape(grad, shape, "grad");
    require_shape(m, shape, "m");
    require_shape(v, shape, "v");
    require_writeable(param, "param");
    require_writeable(m, "m");
    require_writeable(v, "v");
    require(step >= 1, "step must be >= 1 (the 1-based number of this update)");
    float *pp = aligned_mutable(param, "param"), *pm = aligned_mutable(m, "m"), *pv = aligned_mutable(v, "v");
    const float* pg = aligned(grad, "grad");
    const int64_t n = param.size();
    without_gil([&] { cnnkit::adam_update(pp, pm, pv, pg, n, lr, beta1, beta2, eps, step); });
}

void sgd_update(farray param, const farray& grad, std::optional<farray> velocity, float lr,
                float momentum, bool nesterov) {
    const auto shape = shape_of(param);
    require_shape(grad, shape, "grad");
    require_writeable(param, "param");
    if (velocity) {
        require_shape(*velocity, shape, "velocity");
        require_writeable(*velocity, "velocity");
    }
    float *pp = aligned_mutable(param, "param"), *pv = velocity ? aligned_mutable(*velocity, "velocity") : nullptr;
    const float* pg = aligned(grad, "grad");
    const int64_t n = param.size();
    without_gil([&] { cnnkit::sgd_update(pp, pv, pg, n, lr, momentum, nesterov); });
}

bool all_finite(const std::vector<farray>& arrays) {
    bool ok = true;
    without_gil([&] {
        for (const auto& a : arrays) ok = ok && cnnkit::all_finite(a.data(), a.size());
    });
    return ok;
}

// ---------------------------------------------------------------- augmentation
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

void set_num_threads(int n) {
    require(n >= 1, "the number of threads must be >= 1, got " + std::to_string(n));
    cnnkit::set_num_threads(n);
}

void set_simd_isa(const std::string& name) {
    if (!cnnkit::set_simd_isa(name.c_str()))
        throw py::value_error("instruction set '" + name + "' is not available on this CPU or build "
                              "(choose from 'generic', 'avx2', 'avx512')");
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "cnnkit's C++ kernels. Use cnnkit.ops: these functions take checked, converted arguments.";
    m.attr("__version__") = CNNKIT_VERSION;
    const auto nc = [](const char* name) { return py::arg(name).noconvert(); };
    const auto opt = [](const char* name) { return py::arg(name).noconvert().none(true); };

    const auto out = [](const char* name) { return py::arg(name) = py::none(); };

    m.def("conv2d_forward", &conv2d_forward, nc("x"), nc("w"), opt("b"), "sh"_a, "sw"_a, "pt"_a,
          "pl"_a, "oh"_a, "ow"_a, py::arg("naive") = false, py::arg("relu") = false, out("out"));
    m.def("conv2d_backward", &conv2d_backward, nc("dy"), nc("x"), nc("w"), "sh"_a, "sw"_a, "pt"_a,
          "pl"_a, py::arg("naive") = false, py::arg("need_dx") = true, out("dx_out"), out("dw_out"),
          out("db_out"));
    m.def("maxpool2d_forward", &maxpool2d_forward, nc("x"), "kh"_a, "kw"_a, "sh"_a, "sw"_a, "pt"_a,
          "pl"_a, "oh"_a, "ow"_a, py::arg("with_argmax") = false, out("out"), out("argmax_out"));
    m.def("maxpool2d_backward", &maxpool2d_backward, nc("dy"), nc("x"), "kh"_a, "kw"_a, "sh"_a,
          "sw"_a, "pt"_a, "pl"_a, out("out"));
    m.def("maxpool2d_backward_argmax", &maxpool2d_backward_argmax, nc("dy"), nc("argmax"), "h"_a, "w"_a,
          "kh"_a = 0, "kw"_a = 0, "sh"_a = 0, "sw"_a = 0, "pt"_a = 0, "pl"_a = 0, out("out"));
    m.def("upsampling2d_forward", &upsampling2d_forward, nc("x"), "sh"_a, "sw"_a, out("out"));
    m.def("upsampling2d_backward", &upsampling2d_backward, nc("dy"), "sh"_a, "sw"_a, out("out"));
    m.def("dense_forward", &dense_forward, nc("x"), nc("w"), opt("b"), py::arg("naive") = false,
          py::arg("relu") = false, out("out"));
    m.def("dense_backward", &dense_backward, nc("dy"), nc("x"), nc("w"), py::arg("naive") = false,
          py::arg("need_dx") = true, out("dx_out"), out("dw_out"), out("db_out"));

    m.def("relu_forward", &elementwise<cnnkit::relu_forward>, nc("x"), out("out"));
    m.def("relu_backward", &elementwise_backward<cnnkit::relu_backward>, nc("dy"), nc("y"), out("out"));
    m.def("sigmoid_forward", &elementwise<cnnkit::sigmoid_forward>, nc("x"), out("out"));
    m.def("sigmoid_backward", &elementwise_backward<cnnkit::sigmoid_backward>, nc("dy"), nc("y"),
          out("out"));
    m.def("softmax_forward", &softmax_forward, nc("x"), out("out"));
    m.def("softmax_backward", &softmax_backward, nc("dy"), nc("y"), out("out"));

    m.def("softmax_cross_entropy", &softmax_cross_entropy, nc("logits"), opt("onehot"), opt("labels"),
          out("out"));
    m.def("mean_squared_error", &mean_squared_error, nc("y_true"), nc("y_pred"), out("out"));
    m.def("binary_crossentropy", &binary_crossentropy, nc("y_true"), nc("y_pred"), "epsilon"_a,
          out("out"));

    m.def("adam_update", &adam_update, nc("param"), nc("grad"), nc("m"), nc("v"), "step"_a,
          "learning_rate"_a, "beta_1"_a, "beta_2"_a, "epsilon"_a);
    m.def("sgd_update", &sgd_update, nc("param"), nc("grad"), opt("velocity"), "learning_rate"_a,
          "momentum"_a, "nesterov"_a);
    m.def("all_finite", &all_finite, "arrays"_a,
          "Whether every value of these float32 arrays is finite (no NaN, no infinity).");

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

    m.def("openmp_enabled", &cnnkit::openmp_enabled, "Whether the kernels were built with OpenMP.");
    m.def("get_num_threads", &cnnkit::get_num_threads, "Threads the kernels use.");
    m.def("set_num_threads", &set_num_threads, "n"_a, "Sets the threads the kernels use.");
    m.def("simd_isa", &cnnkit::simd_isa, "The instruction set of the matrix micro-kernels.");
    m.def("set_simd_isa", &set_simd_isa, "name"_a,
          "Chooses the micro-kernels' instruction set: 'generic', 'avx2' or 'avx512'.");
}
