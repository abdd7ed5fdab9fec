// cpu_features.cpp: CPU feature detection and the active instruction set (cpu_features.h), with
// simd_isa() / set_simd_isa() of cnnkit.h.
#include "cpu_features.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

#include "cnnkit.h"

#ifdef CNNKIT_X86_KERNELS
#include <cpuid.h>
#endif

namespace cnnkit {
namespace cpu {
namespace {

Features detect() {
    Features f{};
#ifdef CNNKIT_X86_KERNELS
    __builtin_cpu_init();  // may run before libgcc's own constructor
    // __builtin_cpu_supports also checks that the OS saves the wider registers (XCR0).
    f.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    f.avx512f = __builtin_cpu_supports("avx512f");
    f.avx512bw = f.avx512f && __builtin_cpu_supports("avx512bw");
    f.avx512dq = f.avx512f && __builtin_cpu_supports("avx512dq");
    f.avx512vl = f.avx512f && __builtin_cpu_supports("avx512vl");
    // AVX512_BF16 is CPUID leaf 7, sub-leaf 1, EAX bit 5 (older compilers lack its builtin name).
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (f.avx512f && __get_cpuid_count(7, 1, &a, &b, &c, &d)) f.avx512_bf16 = (a >> 5) & 1u;
#endif
    return f;
}

Isa best_runnable() {
    if (can_run(Isa::kAvx512)) return Isa::kAvx512;
    if (can_run(Isa::kAvx2)) return Isa::kAvx2;
    return Isa::kGeneric;
}

Isa choose_at_load() {
    Isa best = best_runnable(), want;
    if (isa_from_name(std::getenv("CNNKIT_ISA"), &want) && want < best) best = want;
    return best;
}

// A function-local static, so that a caller from another file's static initialiser still finds
// the choice made (thread-safe initialisation). Atomic: kernels read it from any thread.
std::atomic<int>& active_slot() {
    static std::atomic<int> active{static_cast<int>(choose_at_load())};
    return active;
}

}  // namespace

const Features& features() {
    static const Features f = detect();
    return f;
}

bool can_run(Isa isa) {
    switch (isa) {
        case Isa::kGeneric: return true;
#ifdef CNNKIT_X86_KERNELS
        case Isa::kAvx2: return features().avx2_fma;
        case Isa::kAvx512: return features().avx512f;
#endif
        default: return false;
    }
}

Isa active_isa() { return static_cast<Isa>(active_slot().load(std::memory_order_relaxed)); }

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::kAvx512: return "avx512";
        case Isa::kAvx2: return "avx2";
        default: return "generic";
    }
}

bool isa_from_name(const char* name, Isa* isa) {
    if (!name) return false;
    for (Isa i : {Isa::kGeneric, Isa::kAvx2, Isa::kAvx512})
        if (std::strcmp(name, isa_name(i)) == 0) {
#ifndef CNNKIT_X86_KERNELS
            if (i != Isa::kGeneric) return false;
#endif
            *isa = i;
            return true;
        }
    return false;
}

}  // namespace cpu

const char* simd_isa() { return cpu::isa_name(cpu::active_isa()); }

bool set_simd_isa(const char* name) {
    cpu::Isa isa;
    if (!cpu::isa_from_name(name, &isa) || !cpu::can_run(isa)) return false;
    cpu::active_slot().store(static_cast<int>(isa));
    return true;
}

}  // namespace cnnkit
