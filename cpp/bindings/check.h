// check.h: what every binding file shares (pybind11's advice for big modules: one
// bind_<family>(py::module_&) per file, the checking helpers in one header).
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
#pragma once

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

#include "../cnnkit.h"

namespace py = pybind11;

namespace cnnkit_bind {

using namespace pybind11::literals;
using farray = py::array_t<float, py::array::c_style>;
using iarray = py::array_t<int32_t, py::array::c_style>;
using larray = py::array_t<int64_t, py::array::c_style>;

inline std::string shape_str(const py::array& a) {
    std::ostringstream s;
    s << "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
    s << (a.ndim() == 1 ? ",)" : ")");
    return s.str();
}

inline void require(bool ok, const std::string& message) {
    if (!ok) throw py::value_error(message);
}

inline void require_ndim(const py::array& a, int ndim, const char* name) {
    require(a.ndim() == ndim, std::string(name) + " must be " + std::to_string(ndim) +
                                  "-D, got shape " + shape_str(a));
}

inline void require_shape(const py::array& a, const std::vector<py::ssize_t>& shape, const char* name) {
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

inline void require_writeable(const py::array& a, const char* name) {
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

inline int as_int(py::ssize_t v, const char* what) {
    require(v > 0 && v < (1LL << 31), std::string(what) + " must be in [1, 2^31), got " + std::to_string(v));
    return static_cast<int>(v);
}

// Builds the window geometry of a conv or pool over x (N,H,W,C) and checks that every window
// holds at least one real input (so a max-pool window is never all padding, and no index
// computed from the geometry leaves the input).
inline cnnkit::Window2d window(const farray& x, int kh, int kw, int sh, int sw, int pt, int pl, int oh,
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

inline farray new_array(const std::vector<py::ssize_t>& shape) { return farray(shape); }

// An input an output must not overlap: the kernels read their inputs while writing.
struct Input {
    const char* name;
    const py::array& array;
};

inline bool overlap(const py::array& a, const py::array& b) {
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

inline farray output(const py::object& out, const std::vector<py::ssize_t>& shape, const char* name,
              std::initializer_list<Input> inputs = {}) {
    return output<float>(out, shape, name, inputs);
}

// dx_out of a backward pass that skips the input gradient (need_dx=False) must be None.
inline farray optional_dx(bool need_dx, const py::object& out, const std::vector<py::ssize_t>& shape,
                   std::initializer_list<Input> inputs) {
    if (need_dx) return output(out, shape, "dx_out", inputs);
    require(out.is_none(), "dx_out must be None when need_dx is False");
    auto empty = shape;
    empty[0] = 0;
    return new_array(empty);
}

// Runs a kernel with the GIL released; the caller has taken every pointer it needs beforehand.
template <class Kernel>
inline void without_gil(Kernel&& kernel) {
    py::gil_scoped_release release;
    cnnkit::adopt_num_threads();
    kernel();
}

inline std::vector<py::ssize_t> shape_of(const py::array& a) { return {a.shape(), a.shape() + a.ndim()}; }

// The argument kinds of the bindings: an array taken as it is (no conversion), an optional one,
// and an output buffer (None: the kernel makes a new array).
inline py::arg nc(const char* name) { return py::arg(name).noconvert(); }
inline py::arg opt(const char* name) { return py::arg(name).noconvert().none(true); }
inline py::arg_v out(const char* name) { return py::arg(name) = py::none(); }

// One registration function per op family (bind_<family>.cpp).
void bind_conv(py::module_& m);
void bind_pool(py::module_& m);
void bind_dense(py::module_& m);
void bind_activation(py::module_& m);
void bind_normalization(py::module_& m);
void bind_elementwise(py::module_& m);
void bind_loss(py::module_& m);
void bind_optimizer(py::module_& m);
void bind_augment(py::module_& m);
void bind_image(py::module_& m);
void bind_probe(py::module_& m);
void bind_plan(py::module_& m);

}  // namespace cnnkit_bind
