// machine_probe.cpp: what the machine itself can do, the yardsticks of bench/peak.py (issue 15's
// "near the hardware's limit"): the float32 FMA peak of an instruction set, from a loop that
// never touches memory, and the copy bandwidth, from a STREAM-like copy. Not used by any layer.
//
// The FMA loop keeps independent accumulators, at least latency x FMA ports of any x86 core to
// date (4-5 cycles x 2 ports) and few enough to stay in registers with the two constants: 12 of
// AVX2's 16 ymm registers (16 spilled three chains to the stack, halving the rate), 16 of
// AVX-512's 32 zmm. Each is a chain acc = acc * a + b whose values stay normal and finite; a and b come from the caller, so the compiler cannot fold the chain away, and the
// accumulators' sum is returned so it cannot drop it either. Every OpenMP thread runs its own
// loop; the caller times the whole parallel region.
#include "cnnkit.h"
#include "cpu_features.h"

#include <algorithm>
#include <cstring>

#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef CNNKIT_X86_KERNELS
#include <immintrin.h>
#endif

namespace cnnkit {

namespace {

constexpr int kChainsAvx2 = 12, kChains = 16;

#ifdef CNNKIT_X86_KERNELS
__attribute__((target("avx2,fma"))) float fma_chains_avx2(int64_t iterations, float a, float b) {
    __m256 acc[kChainsAvx2];
    const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
    for (int i = 0; i < kChainsAvx2; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i + 1));
    for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 12
        for (int i = 0; i < kChainsAvx2; ++i) acc[i] = _mm256_fmadd_ps(acc[i], va, vb);
    }
    __m256 sum = acc[0];
    for (int i = 1; i < kChainsAvx2; ++i) sum = _mm256_add_ps(sum, acc[i]);
    float lanes[8];
    _mm256_storeu_ps(lanes, sum);
    float total = 0.0f;
    for (float v : lanes) total += v;
    return total;
}

__attribute__((target("avx512f"))) float fma_chains_avx512(int64_t iterations, float a, float b) {
    __m512 acc[kChains];
    const __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i + 1));
    for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 16
        for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], va, vb);
    }
    __m512 sum = acc[0];
    for (int i = 1; i < kChains; ++i) sum = _mm512_add_ps(sum, acc[i]);
    // Summed through memory: GCC 12's _mm512_reduce_add_ps reads an undefined vector inside
    // avx512fintrin.h and warns (-Wuninitialized) in every build.
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, sum);
    float total = 0.0f;
    for (float v : lanes) total += v;
    return total;
}
#endif

// The portable loop: what the compiler makes of scalar multiply-adds for the build's target.
float fma_chains_generic(int64_t iterations, float a, float b) {
    float acc[kChains];
    for (int i = 0; i < kChains; ++i) acc[i] = static_cast<float>(i + 1);
    for (int64_t it = 0; it < iterations; ++it)
        for (int i = 0; i < kChains; ++i) acc[i] = acc[i] * a + b;
    float total = 0.0f;
    for (float v : acc) total += v;
    return total;
}

}  // namespace

int fma_probe_lanes(int isa) {
    switch (static_cast<cpu::Isa>(isa)) {
        case cpu::Isa::kAvx512: return 16;
        case cpu::Isa::kAvx2: return 8;
        default: return 1;
    }
}

float fma_probe(int isa, int64_t iterations, float a, float b) {
    float total = 0.0f;
#ifdef _OPENMP
#pragma omp parallel reduction(+ : total)
#endif
    {
        switch (static_cast<cpu::Isa>(isa)) {
#ifdef CNNKIT_X86_KERNELS
            case cpu::Isa::kAvx512: total += fma_chains_avx512(iterations, a, b); break;
            case cpu::Isa::kAvx2: total += fma_chains_avx2(iterations, a, b); break;
#endif
            default: total += fma_chains_generic(iterations, a, b); break;
        }
    }
    return total;
}

int fma_probe_chains(int isa) {
    return static_cast<cpu::Isa>(isa) == cpu::Isa::kAvx2 ? kChainsAvx2 : kChains;
}

void copy_probe(float* dst, const float* src, int64_t n) {
    // Static chunks of whole cache lines, one memcpy each (glibc's picks the stores: streaming
    // ones for large blocks, as STREAM's tuned builds use).
    constexpr int64_t kLine = 16;
    const int64_t lines = (n + kLine - 1) / kLine;
#ifdef _OPENMP
#pragma omp parallel
#endif
    {
        int threads = 1, me = 0;
#ifdef _OPENMP
        threads = omp_get_num_threads();
        me = omp_get_thread_num();
#endif
        const int64_t first = std::min(n, lines * me / threads * kLine);
        const int64_t last = std::min(n, lines * (me + 1) / threads * kLine);
        if (last > first)
            std::memcpy(dst + first, src + first, static_cast<size_t>(last - first) * sizeof(float));
    }
}

}  // namespace cnnkit
