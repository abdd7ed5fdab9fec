// optimizer.cpp: Keras' Adam and SGD (with optional momentum and Nesterov), in place.
//
// Contract: plain C++17, no intrinsics; elementwise float32 loops the compiler vectorises for
// the instruction set the build targets. The per-step scalars are computed once in double; the
// element updates follow Keras' float32 formulas term by term. OpenMP splits large arrays by
// element, so results do not depend on the number of threads.
#include "cnnkit.h"

#include <cmath>
#include <cstring>

namespace cnnkit {

namespace {
// Below this many values a parallel region costs more than it saves.
constexpr int64_t kParallelMin = 32768;
}  // namespace

void adam_update(float* param, float* m, float* v, const float* grad, int64_t n, float lr,
                 float beta1, float beta2, float eps, int64_t step) {
    // param, m, v and grad are (n,)
    // Bias correction folded into the step size, as Keras does; powers in double because
    // beta2^step is close to 1 for many steps and float would round 1 - beta2^step badly.
    const double s = static_cast<double>(step);
    const float alpha = static_cast<float>(lr * std::sqrt(1.0 - std::pow(double(beta2), s)) /
                                           (1.0 - std::pow(double(beta1), s)));
    const float c1 = static_cast<float>(1.0 - beta1), c2 = static_cast<float>(1.0 - beta2);
#ifdef _OPENMP
#pragma omp parallel for if (n > kParallelMin)
#endif
    for (int64_t i = 0; i < n; ++i) {
        const float g = grad[i];
        m[i] += (g - m[i]) * c1;
        v[i] += (g * g - v[i]) * c2;
        param[i] -= (m[i] * alpha) / (std::sqrt(v[i]) + eps);
    }
}

void sgd_update(float* param, float* velocity, const float* grad, int64_t n, float lr,
                float momentum, bool nesterov) {
    // param, velocity and grad are (n,); velocity may be null (plain SGD)
    if (!velocity) {
#ifdef _OPENMP
#pragma omp parallel for if (n > kParallelMin)
#endif
        for (int64_t i = 0; i < n; ++i) param[i] -= grad[i] * lr;
        return;
    }
    // Same order of operations as Keras: v = -g*lr + v*momentum.
    if (nesterov) {
#ifdef _OPENMP
#pragma omp parallel for if (n > kParallelMin)
#endif
        for (int64_t i = 0; i < n; ++i) {
            const float g = grad[i];
            velocity[i] = -g * lr + velocity[i] * momentum;
            param[i] += -g * lr + velocity[i] * momentum;
        }
    } else {
#ifdef _OPENMP
#pragma omp parallel for if (n > kParallelMin)
#endif
        for (int64_t i = 0; i < n; ++i) {
            velocity[i] = -grad[i] * lr + velocity[i] * momentum;
            param[i] += velocity[i];
        }
    }
}

bool all_finite(const float* x, int64_t n) {
    // x is (n,)
    // On the bits, not std::isfinite, so that the test survives -ffinite-math-only: a float is
    // NaN or infinite exactly when its exponent bits are all ones. An OR over the batch
    // vectorises; one pass, no early exit, since the answer is almost always true.
    constexpr uint32_t kExponent = 0x7f800000u;
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; ++i) {
        uint32_t bits;
        std::memcpy(&bits, x + i, sizeof bits);
        bad |= static_cast<uint32_t>((bits & kExponent) == kExponent);
    }
    return bad == 0;
}

}  // namespace cnnkit
