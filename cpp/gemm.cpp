// gemm.cpp: the GEMM micro-kernels, one per instruction set (the choice: cpu_features.h).
//
// Three kernels compute an MR x NR tile of C from packed panels (layout in gemm.h):
//   avx512  6x32, zmm, compiled with target("avx512f")     (untested on hardware so far)
//   avx2    6x16, ymm, compiled with target("avx2,fma")
//   generic plain C++ loops the compiler vectorises for whatever -march the build uses.
// The x86 kernels are compiled function by function, so a portable build still holds them;
// active_kernel() returns the one for cpu::active_isa().
#include "gemm.h"

#include "cpu_features.h"

#ifdef CNNKIT_X86_KERNELS
#include <immintrin.h>
#endif

namespace cnnkit {
namespace gemm {
namespace {

// ---------------------------------------------------------------- generic
// 4x16 measured best for plain loops both on SSE2 (x86-64 baseline) and AVX2 builds: the
// compiler keeps the tile in vector registers once the loops are unrolled.
constexpr int kGenMR = 4, kGenNR = 16;

void ukernel_generic(int kc, const float* __restrict a, const float* __restrict b,
                     float* __restrict c, int64_t ldc, bool acc, const float* __restrict bias) {
    float t[kGenMR][kGenNR] = {};
    for (int k = 0; k < kc; ++k) {
#pragma GCC unroll 8
        for (int i = 0; i < kGenMR; ++i) {
            const float ai = a[i];
#pragma GCC unroll 32
            for (int j = 0; j < kGenNR; ++j) t[i][j] += ai * b[j];
        }
        a += kGenMR;
        b += kGenNR;
    }
    for (int i = 0; i < kGenMR; ++i) {
        float* cr = c + i * ldc;
        if (acc)
            for (int j = 0; j < kGenNR; ++j) t[i][j] += cr[j];
        if (bias)
            for (int j = 0; j < kGenNR; ++j) t[i][j] += bias[j];
        for (int j = 0; j < kGenNR; ++j) cr[j] = t[i][j];
    }
}

#ifdef CNNKIT_X86_KERNELS
// ---------------------------------------------------------------- AVX2 + FMA, 6x16
// 12 accumulators + 2 B vectors + 1 broadcast = 15 of the 16 ymm registers.
#define CNNKIT_ROW2(i)                                     \
    {                                                      \
        const __m256 ai = _mm256_broadcast_ss(a + (i));    \
        c##i##0 = _mm256_fmadd_ps(ai, b0, c##i##0);        \
        c##i##1 = _mm256_fmadd_ps(ai, b1, c##i##1);        \
    }
#define CNNKIT_STORE2(i)                                                         \
    {                                                                            \
        float* cr = c + (i) * ldc;                                               \
        if (acc) {                                                               \
            c##i##0 = _mm256_add_ps(c##i##0, _mm256_loadu_ps(cr));               \
            c##i##1 = _mm256_add_ps(c##i##1, _mm256_loadu_ps(cr + 8));           \
        }                                                                        \
        if (bias) {                                                              \
            c##i##0 = _mm256_add_ps(c##i##0, bias0);                             \
            c##i##1 = _mm256_add_ps(c##i##1, bias1);                             \
        }                                                                        \
        _mm256_storeu_ps(cr, c##i##0);                                           \
        _mm256_storeu_ps(cr + 8, c##i##1);                                       \
    }

__attribute__((target("avx2,fma"))) void ukernel_avx2(int kc, const float* a, const float* b,
                                                       float* c, int64_t ldc, bool acc,
                                                       const float* bias) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
#pragma GCC unroll 4
    for (int k = 0; k < kc; ++k) {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        CNNKIT_ROW2(0) CNNKIT_ROW2(1) CNNKIT_ROW2(2) CNNKIT_ROW2(3) CNNKIT_ROW2(4) CNNKIT_ROW2(5)
        a += 6;
        b += 16;
    }
    const __m256 zero = _mm256_setzero_ps();
    const __m256 bias0 = bias ? _mm256_loadu_ps(bias) : zero, bias1 = bias ? _mm256_loadu_ps(bias + 8) : zero;
    CNNKIT_STORE2(0) CNNKIT_STORE2(1) CNNKIT_STORE2(2) CNNKIT_STORE2(3) CNNKIT_STORE2(4)
    CNNKIT_STORE2(5)
}
#undef CNNKIT_ROW2
#undef CNNKIT_STORE2

// ---------------------------------------------------------------- AVX-512, 6x32
// The AVX2 kernel with zmm: 12 accumulators + 2 B vectors + 1 broadcast of the 32 registers.
#define CNNKIT_ROW2(i)                                     \
    {                                                      \
        const __m512 ai = _mm512_set1_ps(a[i]);            \
        c##i##0 = _mm512_fmadd_ps(ai, b0, c##i##0);        \
        c##i##1 = _mm512_fmadd_ps(ai, b1, c##i##1);        \
    }
#define CNNKIT_STORE2(i)                                                         \
    {                                                                            \
        float* cr = c + (i) * ldc;                                               \
        if (acc) {                                                               \
            c##i##0 = _mm512_add_ps(c##i##0, _mm512_loadu_ps(cr));               \
            c##i##1 = _mm512_add_ps(c##i##1, _mm512_loadu_ps(cr + 16));          \
        }                                                                        \
        if (bias) {                                                              \
            c##i##0 = _mm512_add_ps(c##i##0, bias0);                             \
            c##i##1 = _mm512_add_ps(c##i##1, bias1);                             \
        }                                                                        \
        _mm512_storeu_ps(cr, c##i##0);                                           \
        _mm512_storeu_ps(cr + 16, c##i##1);                                      \
    }

__attribute__((target("avx512f"))) void ukernel_avx512(int kc, const float* a, const float* b,
                                                        float* c, int64_t ldc, bool acc,
                                                        const float* bias) {
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
#pragma GCC unroll 4
    for (int k = 0; k < kc; ++k) {
        const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
        CNNKIT_ROW2(0) CNNKIT_ROW2(1) CNNKIT_ROW2(2) CNNKIT_ROW2(3) CNNKIT_ROW2(4) CNNKIT_ROW2(5)
        a += 6;
        b += 32;
    }
    const __m512 zero = _mm512_setzero_ps();
    const __m512 bias0 = bias ? _mm512_loadu_ps(bias) : zero, bias1 = bias ? _mm512_loadu_ps(bias + 16) : zero;
    CNNKIT_STORE2(0) CNNKIT_STORE2(1) CNNKIT_STORE2(2) CNNKIT_STORE2(3) CNNKIT_STORE2(4)
    CNNKIT_STORE2(5)
}
#undef CNNKIT_ROW2
#undef CNNKIT_STORE2
#endif  // CNNKIT_X86_KERNELS

// MC x KC of A is sized for about half of a 512 KiB-1 MiB L2; KC x NR of B for L1.
const Kernel kGeneric{"generic", kGenMR, kGenNR, 120, 256, 4096, ukernel_generic};
#ifdef CNNKIT_X86_KERNELS
const Kernel kAvx2{"avx2", 6, 16, 120, 256, 4096, ukernel_avx2};
const Kernel kAvx512{"avx512", 6, 32, 120, 256, 4096, ukernel_avx512};
#endif

}  // namespace

const Kernel& active_kernel() {
#ifdef CNNKIT_X86_KERNELS
    switch (cpu::active_isa()) {
        case cpu::Isa::kAvx512: return kAvx512;
        case cpu::Isa::kAvx2: return kAvx2;
        default: break;
    }
#endif
    return kGeneric;
}

}  // namespace gemm
}  // namespace cnnkit
