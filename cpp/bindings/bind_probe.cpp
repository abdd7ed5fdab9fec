// bind_probe.cpp: the Python bindings of the machine probes (cpp/machine_probe.cpp), which
// bench/peak.py times: an FMA loop on registers only, and a STREAM-like copy.
#include "check.h"

#include <chrono>

#include "../cpu_features.h"

namespace cnnkit_bind {
namespace {

// {"seconds", "flops", "threads", "lanes", "sum"}: one run of the FMA loop on every kernel thread.
py::dict fma_probe(const std::string& isa_name, int64_t iterations) {
    cnnkit::cpu::Isa isa{};
    require(cnnkit::cpu::isa_from_name(isa_name.c_str(), &isa) && cnnkit::cpu::can_run(isa),
            "isa '" + isa_name + "' is not available on this CPU or build (choose from "
            "'generic', 'avx2', 'avx512')");
    require(iterations >= 1, "iterations must be >= 1, got " + std::to_string(iterations));
    const int code = static_cast<int>(isa);
    float sum = 0.0f;
    double seconds = 0.0;
    int threads = 1;
    without_gil([&] {
        threads = cnnkit::get_num_threads();
        const auto start = std::chrono::steady_clock::now();
        sum = cnnkit::fma_probe(code, iterations, 0.9999999f, 1e-7f);
        seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    });
    const double flops = 2.0 * static_cast<double>(iterations) * cnnkit::fma_probe_chains(code) *
                         cnnkit::fma_probe_lanes(code) * threads;
    return py::dict("seconds"_a = seconds, "flops"_a = flops, "threads"_a = threads,
                    "lanes"_a = cnnkit::fma_probe_lanes(code),
                    "chains"_a = cnnkit::fma_probe_chains(code), "sum"_a = sum);
}

void copy_probe(farray dst, const farray& src) {
    require_writeable(dst, "dst");
    require(dst.size() == src.size(), "dst and src must have the same size, got " +
                                          std::to_string(dst.size()) + " and " +
                                          std::to_string(src.size()));
    require(!overlap(dst, src), "dst must not share memory with src");
    aligned(dst, "dst");
    float* out = dst.mutable_data();
    const float* inp = aligned(src, "src");
    const int64_t n = dst.size();
    without_gil([&] { cnnkit::copy_probe(out, inp, n); });
}

}  // namespace

void bind_probe(py::module_& m) {
    m.def("fma_probe", &fma_probe, "isa"_a, "iterations"_a,
          "Runs the register-only FMA loop of `isa` on every kernel thread; returns its seconds "
          "and floating-point operations.");
    m.def("copy_probe", &copy_probe, nc("dst"), nc("src"),
          "dst[:] = src[:] on the kernel threads (a STREAM copy).");
}

}  // namespace cnnkit_bind
