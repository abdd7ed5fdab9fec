// optimizer.cpp: Keras 3's optimizer updates, each one fused pass over a parameter (see
// optimizer.h for what the pass does and in which order), and the finiteness check.
//
// Contract: plain C++17, no intrinsics; elementwise float32 loops the compiler vectorises for
// the instruction set the build targets. Per-step scalars are computed once in double; the
// element updates follow Keras' float32 formulas term by term. OpenMP splits large arrays by
// element, so results do not depend on the number of threads.
#include "cnnkit.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

namespace cnnkit {

namespace {
// Below this many values a parallel region costs more than it saves.
constexpr int64_t kParallelMin = 32768;

// The fused pass: clip and scale the gradient, decay the parameter, the optimizer's own step
// (step(i, g, p) -> new p, updating its slots at i), then the moving average. The options are
// template flags so that each combination is its own branch-free loop.
template <bool kClip, bool kDecay, bool kEma, class Step>
void run(float* param, const float* grad, int64_t n, const UpdateCommon& c, const Step& step) {
    const float cv = c.clipvalue, scale = c.grad_scale, wd = c.weight_decay, lr = c.lr;
    const float em = c.ema_momentum, em1 = static_cast<float>(1.0 - double(c.ema_momentum));
    float* ema = c.ema;
#ifdef _OPENMP
#pragma omp parallel for if (n > kParallelMin)
#endif
    for (int64_t i = 0; i < n; ++i) {
        float g = grad[i];
        // Comparisons, not std::min/max: a NaN gradient stays NaN, as in Keras.
        if constexpr (kClip) g = g < -cv ? -cv : (g > cv ? cv : g);
        g *= scale;
        float p = param[i];
        if constexpr (kDecay) p = p - p * wd * lr;
        p = step(i, g, p);
        param[i] = p;
        if constexpr (kEma) ema[i] = em * ema[i] + em1 * p;
    }
}

template <bool kClip, bool kDecay, class Step>
void with_ema(float* param, const float* grad, int64_t n, const UpdateCommon& c, const Step& step) {
    if (c.ema) run<kClip, kDecay, true>(param, grad, n, c, step);
    else run<kClip, kDecay, false>(param, grad, n, c, step);
}

template <bool kClip, class Step>
void with_decay(float* param, const float* grad, int64_t n, const UpdateCommon& c, const Step& step) {
    if (c.weight_decay != 0) with_ema<kClip, true>(param, grad, n, c, step);
    else with_ema<kClip, false>(param, grad, n, c, step);
}

template <class Step>
void fused(float* param, const float* grad, int64_t n, const UpdateCommon& c, const Step& step) {
    if (c.clipvalue > 0) with_decay<true>(param, grad, n, c, step);
    else with_decay<false>(param, grad, n, c, step);
}

// 1 - x for a hyperparameter, in double then rounded once (Keras computes 1 - beta in Python).
inline float one_minus(float x) { return static_cast<float>(1.0 - double(x)); }
}  // namespace

double sum_squares(const float* x, int64_t n) {
    // A fixed number of chunks summed in a fixed order: the same result for any thread count.
    constexpr int kChunks = 64;
    double partial[kChunks];
    const int64_t chunk = (n + kChunks - 1) / kChunks;
#ifdef _OPENMP
#pragma omp parallel for if (n > kParallelMin)
#endif
    for (int k = 0; k < kChunks; ++k) {
        const int64_t lo = std::min<int64_t>(n, k * chunk), hi = std::min<int64_t>(n, lo + chunk);
        double s = 0;
#ifdef _OPENMP
#pragma omp simd reduction(+ : s)
#endif
        for (int64_t i = lo; i < hi; ++i) s += double(x[i]) * double(x[i]);
        partial[k] = s;
    }
    double total = 0;
    for (int k = 0; k < kChunks; ++k) total += partial[k];
    return total;
}

void sgd_update(float* param, float* momentum_buf, const float* grad, int64_t n,
                const UpdateCommon& c, float momentum, bool nesterov) {
    const float lr = c.lr;
    float* mb = momentum_buf;
    if (!mb) {
        fused(param, grad, n, c, [=](int64_t, float g, float p) { return p - g * lr; });
    } else if (nesterov) {
        fused(param, grad, n, c, [=](int64_t i, float g, float p) {
            const float m = mb[i] * momentum - g * lr;
            mb[i] = m;
            return p + (m * momentum - g * lr);
        });
    } else {
        fused(param, grad, n, c, [=](int64_t i, float g, float p) {
            const float m = mb[i] * momentum - g * lr;
            mb[i] = m;
            return p + m;
        });
    }
}

void rmsprop_update(float* param, float* velocity, float* momentum_buf, float* average_grad,
                    const float* grad, int64_t n, const UpdateCommon& c, float rho,
                    float momentum, float eps) {
    const float lr = c.lr, rho1 = one_minus(rho);
    float *v = velocity, *mb = momentum_buf, *a = average_grad;
    // centered and momentum as compile-time flags: four plain loops.
    auto pass = [&](auto centered, auto with_momentum) {
        fused(param, grad, n, c, [=](int64_t i, float g, float p) {
            const float vi = rho * v[i] + rho1 * (g * g);
            v[i] = vi;
            float denominator;
            if constexpr (decltype(centered)::value) {
                const float ai = rho * a[i] + rho1 * g;
                a[i] = ai;
                denominator = vi - ai * ai + eps;
            } else {
                denominator = vi + eps;
            }
            const float inc = (lr * g) / std::sqrt(denominator);
            if constexpr (decltype(with_momentum)::value) {
                const float m = momentum * mb[i] + inc;
                mb[i] = m;
                return p - m;
            } else {
                return p - inc;
            }
        });
    };
    using yes = std::true_type;
    using no = std::false_type;
    if (a && mb) pass(yes{}, yes{});
    else if (a) pass(yes{}, no{});
    else if (mb) pass(no{}, yes{});
    else pass(no{}, no{});
}

void adam_update(float* param, float* m, float* v, float* velocity_hat, const float* grad,
                 int64_t n, const UpdateCommon& c, float beta1, float beta2, float eps,
                 int64_t step) {
    // Bias correction folded into the step size, as Keras does; powers in double because
    // beta2^step is close to 1 for many steps and float would round 1 - beta2^step badly.
    const double s = static_cast<double>(step);
    const float alpha = static_cast<float>(double(c.lr) * std::sqrt(1.0 - std::pow(double(beta2), s)) /
                                           (1.0 - std::pow(double(beta1), s)));
    const float c1 = one_minus(beta1), c2 = one_minus(beta2);
    float* vh = velocity_hat;
    auto moments = [=](int64_t i, float g) {
        const float mi = m[i] + (g - m[i]) * c1;
        const float vi = v[i] + (g * g - v[i]) * c2;
        m[i] = mi;
        v[i] = vi;
        return mi;
    };
    if (vh) {
        fused(param, grad, n, c, [=](int64_t i, float g, float p) {
            const float mi = moments(i, g);
            const float h = std::max(vh[i], v[i]);
            vh[i] = h;
            return p - (mi * alpha) / (std::sqrt(h) + eps);
        });
    } else {
        fused(param, grad, n, c, [=](int64_t i, float g, float p) {
            const float mi = moments(i, g);
            return p - (mi * alpha) / (std::sqrt(v[i]) + eps);
        });
    }
}

void adagrad_update(float* param, float* accumulator, const float* grad, int64_t n,
                    const UpdateCommon& c, float eps) {
    const float lr = c.lr;
    float* acc = accumulator;
    fused(param, grad, n, c, [=](int64_t i, float g, float p) {
        const float a = acc[i] + g * g;
        acc[i] = a;
        return p - (lr * g) / std::sqrt(a + eps);
    });
}

void nadam_update(float* param, float* m, float* v, const float* grad, int64_t n,
                  const UpdateCommon& c, float beta1, float beta2, float eps, float m_coef,
                  float g_coef, float v_divisor) {
    const float lr = c.lr, c1 = one_minus(beta1), c2 = one_minus(beta2);
    fused(param, grad, n, c, [=](int64_t i, float g, float p) {
        const float mi = m[i] + (g - m[i]) * c1;
        const float vi = v[i] + (g * g - v[i]) * c2;
        m[i] = mi;
        v[i] = vi;
        const float m_hat = m_coef * mi + g_coef * g;
        const float v_hat = vi / v_divisor;
        return p - (m_hat * lr) / (std::sqrt(v_hat) + eps);
    });
}

void adamax_update(float* param, float* m, float* u, const float* grad, int64_t n,
                   const UpdateCommon& c, float beta1, float beta2, float eps, int64_t step) {
    const float lr = c.lr, c1 = one_minus(beta1);
    const float correction = static_cast<float>(1.0 - std::pow(double(beta1), double(step)));
    fused(param, grad, n, c, [=](int64_t i, float g, float p) {
        const float mi = m[i] + (g - m[i]) * c1;
        const float ui = std::max(beta2 * u[i], std::fabs(g));
        m[i] = mi;
        u[i] = ui;
        return p - (lr * mi) / (correction * (ui + eps));
    });
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
