// cpu_features.h: what this CPU can run, and which instruction set the kernels use (one place).
//
// Detection runs once, at first use: AVX2+FMA, AVX-512 F/BW/DQ/VL, AVX-512 BF16 (with the OS
// saving the wider registers). The active instruction set is the best one the CPU runs, lowered
// by the environment variable CNNKIT_ISA=generic|avx2|avx512 (it can only lower), and changed
// at run time by set_simd_isa() (cnnkit.h). Every kernel with ISA variants (the GEMM
// micro-kernels in gemm.cpp, the few-channel and depthwise convolutions) reads active_isa()
// once per call, so that a switch mid-call cannot mix variants (as XNNPACK's init config and
// oneDNN's cpu_isa_traits do, in small).
//
// CNNKIT_X86_KERNELS is defined where the x86 variants are compiled (function by function, with
// target attributes, so a portable build still holds them); -DCNNKIT_NO_DISPATCH (CMake
// CNNKIT_DISPATCH=OFF) leaves them out, and then only the build's baseline is used.
#pragma once

#if !defined(CNNKIT_NO_DISPATCH) && defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define CNNKIT_X86_KERNELS 1
#endif

namespace cnnkit {
namespace cpu {

// Ordered from least to most capable: a kernel may test `active_isa() >= Isa::kAvx2`.
enum class Isa : int { kGeneric = 0, kAvx2 = 1, kAvx512 = 2 };

struct Features {
    bool avx2_fma;     // AVX2 and FMA3
    bool avx512f, avx512bw, avx512dq, avx512vl;
    bool avx512_bf16;  // AVX512_BF16 (bfloat16 dot products)
};

// What the CPU and OS support (detected once; all false on a non-x86 build).
const Features& features();
// Whether this CPU and build can run `isa`.
bool can_run(Isa isa);
// The instruction set kernels use now.
Isa active_isa();
const char* isa_name(Isa isa);
// The Isa called `name` ("generic", "avx2", "avx512"); false for an unknown name, or one this
// build does not compile.
bool isa_from_name(const char* name, Isa* isa);

}  // namespace cpu
}  // namespace cnnkit
