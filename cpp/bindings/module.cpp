// module.cpp: the Python module cnnkit._core, the one place where Python meets the kernels.
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
//
// Each op family binds its functions in a file of its own (bind_<family>.cpp), with the
// checking helpers they share in check.h; this file makes the module and binds the runtime
// settings.
#include "check.h"

namespace cnnkit_bind {
namespace {

void set_num_threads(int n) {
    require(n >= 1, "the number of threads must be >= 1, got " + std::to_string(n));
    cnnkit::set_num_threads(n);
}

void set_local_num_threads(int n) {
    require(n >= 0, "the number of threads must be >= 0, got " + std::to_string(n));
    cnnkit::set_local_num_threads(n);
}

void set_winograd_tile(int m) {
    require(m == 0 || m == 2 || m == 4, "the Winograd tile must be 0, 2 or 4, got " + std::to_string(m));
    cnnkit::set_winograd_tile(m);
}

void set_simd_isa(const std::string& name) {
    if (!cnnkit::set_simd_isa(name.c_str()))
        throw py::value_error("instruction set '" + name + "' is not available on this CPU or build "
                              "(choose from 'generic', 'avx2', 'avx512')");
}

}  // namespace
}  // namespace cnnkit_bind

PYBIND11_MODULE(_core, m) {
    using namespace cnnkit_bind;
    m.doc() = "cnnkit's C++ kernels. Use cnnkit.ops: these functions take checked, converted arguments.";
    m.attr("__version__") = CNNKIT_VERSION;
    bind_conv(m);
    bind_pool(m);
    bind_dense(m);
    bind_activation(m);
    bind_normalization(m);
    bind_elementwise(m);
    bind_loss(m);
    bind_optimizer(m);
    bind_augment(m);
    bind_image(m);
    bind_probe(m);
    bind_plan(m);
    m.def("openmp_enabled", &cnnkit::openmp_enabled, "Whether the kernels were built with OpenMP.");
    m.def("get_num_threads", &cnnkit::get_num_threads, "Threads the kernels use.");
    m.def("set_num_threads", &set_num_threads, "n"_a, "Sets the threads the kernels use.");
    m.def("set_local_num_threads", &set_local_num_threads, "n"_a,
          "Sets the threads the kernels use when called from this OS thread (0: the library's).");
    m.def("simd_isa", &cnnkit::simd_isa, "The instruction set of the matrix micro-kernels.");
    m.def("set_simd_isa", &set_simd_isa, "name"_a,
          "Chooses the micro-kernels' instruction set: 'generic', 'avx2' or 'avx512'.");
    m.def("winograd_enabled", &cnnkit::winograd_enabled,
          "Whether 3x3 stride-1 convolutions (24+ channels, 7x7+ images) take Winograd's tiles.");
    m.def("set_winograd", &cnnkit::set_winograd, "enabled"_a,
          "Turns Winograd's F(2x2, 3x3) and F(4x4, 3x3) on (the default) or off, to compare them with the direct paths.");
    m.def("winograd_tile", &cnnkit::winograd_tile,
          "The Winograd output tile forced by set_winograd_tile: 2, 4, or 0 (each where it measured faster).");
    m.def("set_winograd_tile", &set_winograd_tile, "m"_a,
          "Forces Winograd's F(2x2, 3x3) (m=2) or F(4x4, 3x3) (m=4) on every 3x3 stride-1 forward "
          "pass it can take, or restores the measured choice (m=0).");
    m.def("winograd_fused_enabled", &cnnkit::winograd_fused_enabled,
          "Whether Winograd's forward pass takes its unpacked driver for few channels where it measured faster.");
    m.def("set_winograd_fused", &cnnkit::set_winograd_fused, "enabled"_a,
          "Turns Winograd's unpacked forward driver for few channels on (the default) or off, to compare it with the packed GEMMs.");
}
