// activation.cpp: the activations of keras.activations and of the activation layers, forward and
// backward, on float32.
//
// Contract: plain C++17, no intrinsics. exp, expm1, tanh, log1p and erfc are written here as
// branch-free float arithmetic (range reduction, polynomials, selects) so that each loop
// vectorises for the instruction set the build targets; std::exp would keep the loops scalar
// without a vector math library. They are accurate to a few float ulps (erfc: ~1e-6 relative at
// large arguments). Backward passes take the forward *output* y where the derivative follows
// from it (relu, sigmoid, tanh, exponential, softmax, log_softmax) and the forward *input* x
// otherwise (cnnkit.h says which). OpenMP splits only large arrays; every output element is
// written by one thread, and PReLU's alpha gradient sums in an order fixed by the sizes alone,
// so results do not depend on the number of threads. Assumes IEEE float semantics (no
// -ffast-math): NaN passes through every activation, exp(-inf) == 0.
#include "cnnkit.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

// The kernels below compute both sides of each select (no branches), which GCC if-converts
// into vector blends only when it may assume that float operations do not trap; cnnkit never
// enables float traps, and the flag changes no result. Without it most loops stay scalar.
// (Functions compiled under it do not inline <cmath>'s wrappers, so the loops call the
// compiler's builtins for fabs and copysign.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

namespace cnnkit {

namespace {
// Below this many values a parallel region costs more than it saves.
constexpr int64_t kParallelMin = 32768;
constexpr float kInf = std::numeric_limits<float>::infinity();

inline float bits_to_float(int32_t i) {
    float f;
    std::memcpy(&f, &i, sizeof f);
    return f;
}

inline int32_t float_to_bits(float f) {
    int32_t i;
    std::memcpy(&i, &f, sizeof i);
    return i;
}

// 2^n for n in [-126, 127], built in the exponent field.
inline float pow2i(int32_t n) { return bits_to_float((n + 127) << 23); }

// expm1(r) for |r| <= ln2/2 (Cephes' expf polynomial: 1 + r + r^2 P(r) within 1 ulp).
inline float expm1_reduced(float r) {
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    return r + r * r * p;
}

// x = n ln2 + r with |r| <= ln2/2 (Cody-Waite: ln2 in two parts so that n*C1 is exact).
// The input is clamped to [-104, 89], where exp is 0 or infinite in float anyway; a NaN becomes 0
// here (a float-to-int conversion of NaN is undefined) and the callers put it back.
inline void reduce_exp(float x, float& r, int32_t& n) {
    float c = x < -104.0f ? -104.0f : x;
    c = c > 89.0f ? 89.0f : c;
    c = c == c ? c : 0.0f;
    // Round to nearest by the 1.5 * 2^23 trick: plain float adds, which always vectorise.
    const float shifter = 12582912.0f;
    const float nf = (c * 1.44269504088896341f + shifter) - shifter;
    r = (c - nf * 0.693359375f) - nf * -2.12194440e-4f;
    n = static_cast<int32_t>(nf);
}

// e^x: 0 for x <= -104 (and -inf), inf for x >= 89 (and inf), NaN for NaN; subnormal results
// are right too (2^n is applied in two halves that each stay a normal float).
inline float fexp(float x) {
    float r;
    int32_t n;
    reduce_exp(x, r, n);
    const int32_t n1 = n >> 1;
    const float e = (expm1_reduced(r) + 1.0f) * pow2i(n1) * pow2i(n - n1);
    return x == x ? e : x;
}

// e^x - 1, accurate near 0 (where n == 0 and the polynomial alone is the answer).
inline float fexpm1(float x) {
    float r;
    int32_t n;
    reduce_exp(x, r, n);
    const float q = expm1_reduced(r);
    const int32_t n1 = n >> 1;
    const float big = (q + 1.0f) * pow2i(n1) * pow2i(n - n1) - 1.0f;
    const float e = n == 0 ? q : big;
    return x == x ? e : x;
}

// tanh(x) = expm1(2x) / (expm1(2x) + 2) on |x|, which keeps its relative accuracy near 0;
// |x| >= 9 rounds to +-1 in float.
inline float ftanh(float x) {
    float a = __builtin_fabsf(x);
    a = a > 9.0f ? 9.0f : a;
    const float e = fexpm1(2.0f * a);
    const float t = e / (e + 2.0f);
    return __builtin_copysignf(t, x);  // a NaN stays NaN through e
}

// 1 / (1 + e^-x) from e^-|x|, which never overflows.
inline float fsigmoid(float x) {
    const float e = fexp(-__builtin_fabsf(x));
    const float num = x >= 0.0f ? 1.0f : e;  // a select, not a branch on the sign
    return num / (1.0f + e);
}

// log(w) for w in [1, 2] (softplus only): Cephes' logf on the mantissa and exponent.
inline float flog_1_2(float w) {
    const int32_t bits = float_to_bits(w);
    int32_t e = ((bits >> 23) & 0xff) - 126;                 // w = m 2^e, m in [0.5, 1)
    float m = bits_to_float((bits & 0x7fffff) | 0x3f000000);
    const bool small = m < 0.70710678118654752440f;
    e = small ? e - 1 : e;
    const float twice = m + m - 1.0f, once = m - 1.0f;  // both computed: selects, no branches
    m = small ? twice : once;
    const float z = m * m;
    float p = 7.0376836292e-2f;
    p = p * m - 1.1514610310e-1f;
    p = p * m + 1.1676998740e-1f;
    p = p * m - 1.2420140846e-1f;
    p = p * m + 1.4249322787e-1f;
    p = p * m - 1.6668057665e-1f;
    p = p * m + 2.0000714765e-1f;
    p = p * m - 2.4999993993e-1f;
    p = p * m + 3.3333331174e-1f;
    const float fe = static_cast<float>(e);
    float y = m * z * p + fe * -2.12194440e-4f - 0.5f * z;
    return m + y + fe * 0.693359375f;
}

// log(1 + u) for u in [0, 1], accurate for tiny u: log(w) * u / (w - 1) with w = 1 + u
// corrects the rounding of w (Goldberg's trick); w == 1 means u is below half an ulp of 1.
inline float flog1p_0_1(float u) {
    const float w = 1.0f + u;
    const float d = w - 1.0f;
    const float ratio = u / (d == 0.0f ? 1.0f : d);
    const float corrected = flog_1_2(w) * ratio;
    return d == 0.0f ? u : corrected;
}

// log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow, exact-ish for very negative x.
inline float fsoftplus(float x) {
    const float pos = x > 0.0f ? x : 0.0f;
    const float sp = pos + flog1p_0_1(fexp(-__builtin_fabsf(x)));
    return x == x ? sp : x;
}

// erfc(z) by the Chebyshev fit of Numerical Recipes (erfcc): relative error 1.2e-7 in exact
// arithmetic, about 1e-6 in float at large |z| (z^2 is rounded before the exponential).
inline float ferfc(float z) {
    const float a = __builtin_fabsf(z);
    const float t = 1.0f / (1.0f + 0.5f * a);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    const float r = t * fexp(-a * a + p);
    const float reflected = 2.0f - r;
    return z >= 0.0f ? r : reflected;  // NaN: the comparison fails, 2 - NaN is NaN
}

constexpr float kSqrtHalf = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;
constexpr float kSqrt2OverPi = 0.79788456080286535588f;
constexpr float kGeluCubic = 0.044715f;
constexpr float kSeluAlpha = 1.67326324235437728482f;
constexpr float kSeluScale = 1.05070098735548049342f;

// Elementwise loops run in fixed blocks of kBlock values, whatever the number of threads: the
// compiler may contract a*b+c into an FMA differently in the vector body and in the scalar
// remainder of a loop, so each value must meet the same code path on 1 thread as on 16.
constexpr int64_t kBlock = 4096;

// The forward loop of an elementwise activation, out = act(inp), split among threads for large
// n. `omp simd` states that the iterations are independent (out may be inp: dense and conv run
// relu in place), and the pointers are firstprivate so that the loop reads them from registers.
template <class Act>
inline void map(float* out, const float* inp, int64_t n, Act act) {
#ifdef _OPENMP
#pragma omp parallel for simd if (n > kParallelMin) schedule(static, kBlock) firstprivate(out, inp, act)
#endif
    for (int64_t i = 0; i < n; ++i) out[i] = act(inp[i]);
}

// The backward loop: dinp = dout * deriv(saved), saved being x or y as the activation needs.
template <class Deriv>
inline void map_backward(float* dinp, const float* dout, const float* saved, int64_t n, Deriv deriv) {
#ifdef _OPENMP
#pragma omp parallel for simd if (n > kParallelMin) schedule(static, kBlock) \
    firstprivate(dinp, dout, saved, deriv)
#endif
    for (int64_t i = 0; i < n; ++i) dinp[i] = dout[i] * deriv(saved[i]);
}
}  // namespace

// ---------------------------------------------------------------- relu and its family

void relu_forward(float* out, const float* inp, int64_t n) {
    // written this way a NaN passes through, as in np.maximum
    map(out, inp, n, [](float x) { return x < 0.0f ? 0.0f : x; });
}

void relu_backward(float* dinp, const float* dout, const float* out, int64_t n) {
    // A select, not a product: where y <= 0 the gradient is 0 even for an infinite dout.
#ifdef _OPENMP
#pragma omp parallel for simd if (n > kParallelMin) firstprivate(dinp, dout, out)
#endif
    for (int64_t i = 0; i < n; ++i) {
        const float d = dout[i];
        dinp[i] = out[i] > 0.0f ? d : 0.0f;
    }
}

void relu_general_forward(float* out, const float* inp, int64_t n, float negative_slope,
                          float max_value, float threshold) {
    // Keras' relu: clip(x > threshold ? x : 0, 0, max_value) - negative_slope * max(threshold - x, 0);
    // the clip below 0 applies only with a max_value (without one, a negative threshold lets
    // x in (threshold, 0) through, as in Keras).
    const float low = std::isinf(max_value) ? -kInf : 0.0f;
    map(out, inp, n, [=](float x) {
        float a = x <= threshold ? 0.0f : x;  // NaN passes
        a = a < low ? 0.0f : a;
        a = a > max_value ? max_value : a;
        const float below = threshold - x;
        return a - negative_slope * (below > 0.0f ? below : 0.0f);
    });
}

void relu_general_backward(float* dinp, const float* dout, const float* inp, int64_t n,
                           float negative_slope, float max_value, float threshold) {
    const bool clipped = !std::isinf(max_value);
    const float low = clipped ? 0.0f : -kInf;
    map_backward(dinp, dout, inp, n, [=](float x) {
        // no short circuit (a branch); an infinite x passes when nothing clips it
        const bool inside = (x > threshold) & (x > low) & ((x < max_value) | !clipped);
        const float pass = inside ? 1.0f : 0.0f;
        return pass + (x < threshold ? negative_slope : 0.0f);
    });
}

// ---------------------------------------------------------------- sigmoid, tanh, exponential

void sigmoid_forward(float* out, const float* inp, int64_t n) { map(out, inp, n, [](float x) { return fsigmoid(x); }); }

void sigmoid_backward(float* dinp, const float* dout, const float* out, int64_t n) {
    map_backward(dinp, dout, out, n, [](float y) { return y * (1.0f - y); });
}

void tanh_forward(float* out, const float* inp, int64_t n) { map(out, inp, n, [](float x) { return ftanh(x); }); }

void tanh_backward(float* dinp, const float* dout, const float* out, int64_t n) {
    map_backward(dinp, dout, out, n, [](float y) { return 1.0f - y * y; });
}

void exponential_forward(float* out, const float* inp, int64_t n) { map(out, inp, n, [](float x) { return fexp(x); }); }

void exponential_backward(float* dinp, const float* dout, const float* out, int64_t n) {
    map_backward(dinp, dout, out, n, [](float y) { return y; });
}

// ---------------------------------------------------------------- smooth activations (take x)

void gelu_forward(float* out, const float* inp, int64_t n, bool approximate) {
    if (approximate) {
        // 0.5 x (1 + tanh(u)) == x sigmoid(2u): no cancellation where tanh(u) is near -1.
        // Past |x| = 12 the sigmoid is 0 or 1 in float; clamping keeps x^3 finite.
        map(out, inp, n, [](float x) {
            const float c = x < -12.0f ? -12.0f : (x > 12.0f ? 12.0f : x);
            const float u = kSqrt2OverPi * (c + kGeluCubic * c * c * c);
            return x * fsigmoid(2.0f * u);
        });
    } else {
        // x Phi(x) with Phi(x) = erfc(-x / sqrt 2) / 2, accurate in the far negative tail.
        map(out, inp, n, [](float x) { return x * 0.5f * ferfc(-x * kSqrtHalf); });
    }
}

void gelu_backward(float* dinp, const float* dout, const float* inp, int64_t n, bool approximate) {
    if (approximate) {
        // The derivative at |x| >= 12 is 0 or 1 (clamped, also for infinite x).
        map_backward(dinp, dout, inp, n, [](float x) {
            const float c = x < -12.0f ? -12.0f : (x > 12.0f ? 12.0f : x);
            const float c2 = c * c;
            const float s = fsigmoid(2.0f * kSqrt2OverPi * (c + kGeluCubic * c2 * c));
            const float du = kSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * c2);
            return s + c * s * (1.0f - s) * 2.0f * du;
        });
    } else {
        map_backward(dinp, dout, inp, n, [](float x) {
            const float cdf = 0.5f * ferfc(-x * kSqrtHalf);
            const float pdf = kInvSqrt2Pi * fexp(-0.5f * x * x);
            return cdf + x * pdf;
        });
    }
}

void silu_forward(float* out, const float* inp, int64_t n) {
    map(out, inp, n, [](float x) { return x * fsigmoid(x); });
}

void silu_backward(float* dinp, const float* dout, const float* inp, int64_t n) {
    map_backward(dinp, dout, inp, n, [](float x) {
        const float s = fsigmoid(x);
        return s * (1.0f + x * (1.0f - s));
    });
}

void elu_forward(float* out, const float* inp, int64_t n, float alpha, float scale) {
    // Keras: x >= 0 ? x : alpha expm1(x); selu is scale * elu(x, its alpha).
    map(out, inp, n, [=](float x) {
        const float neg = alpha * fexpm1(x);
        return scale * (x >= 0.0f ? x : neg);
    });
}

void elu_backward(float* dinp, const float* dout, const float* inp, int64_t n, float alpha,
                  float scale) {
    map_backward(dinp, dout, inp, n, [=](float x) {
        const float neg = alpha * fexp(x);
        return scale * (x >= 0.0f ? 1.0f : neg);
    });
}

void selu_forward(float* out, const float* inp, int64_t n) {
    elu_forward(out, inp, n, kSeluAlpha, kSeluScale);
}

void selu_backward(float* dinp, const float* dout, const float* inp, int64_t n) {
    elu_backward(dinp, dout, inp, n, kSeluAlpha, kSeluScale);
}

void softplus_forward(float* out, const float* inp, int64_t n) { map(out, inp, n, [](float x) { return fsoftplus(x); }); }

void softplus_backward(float* dinp, const float* dout, const float* inp, int64_t n) {
    map_backward(dinp, dout, inp, n, [](float x) { return fsigmoid(x); });
}

void softsign_forward(float* out, const float* inp, int64_t n) {
    map(out, inp, n, [](float x) { return x / (1.0f + __builtin_fabsf(x)); });
}

void softsign_backward(float* dinp, const float* dout, const float* inp, int64_t n) {
    map_backward(dinp, dout, inp, n, [](float x) {
        const float d = 1.0f + __builtin_fabsf(x);
        return 1.0f / (d * d);
    });
}

namespace {
// Keras' hard_sigmoid: clip(x / 6 + 1/2, 0, 1), which is relu6(x + 3) / 6.
inline float fhard_sigmoid(float x) {
    float h = x / 6.0f + 0.5f;
    h = h < 0.0f ? 0.0f : h;  // NaN passes
    return h > 1.0f ? 1.0f : h;
}

// Its slope: 1/6 inside (-3, 3), where the clip is not active.
inline float hard_sigmoid_slope(float x) { return (x > -3.0f) & (x < 3.0f) ? 1.0f / 6.0f : 0.0f; }
}  // namespace

void hard_sigmoid_forward(float* out, const float* inp, int64_t n) { map(out, inp, n, [](float x) { return fhard_sigmoid(x); }); }

void hard_sigmoid_backward(float* dinp, const float* dout, const float* inp, int64_t n) {
    map_backward(dinp, dout, inp, n, [](float x) { return hard_sigmoid_slope(x); });
}

void hard_silu_forward(float* out, const float* inp, int64_t n) {
    map(out, inp, n, [](float x) { return x * fhard_sigmoid(x); });
}

void hard_silu_backward(float* dinp, const float* dout, const float* inp, int64_t n) {
    map_backward(dinp, dout, inp, n,
                 [](float x) { return fhard_sigmoid(x) + x * hard_sigmoid_slope(x); });
}

void mish_forward(float* out, const float* inp, int64_t n) {
    // x tanh(softplus(x)) = x m / (m + 2) with m = e^x (e^x + 2): one exponential. Past x = 20
    // the factor is 1 in float (and m would overflow).
    map(out, inp, n, [](float x) {
        const float e = fexp(x < 20.0f ? x : 20.0f);
        const float m = e * (e + 2.0f);
        const float ratio = m / (m + 2.0f);
        return x * (x < 20.0f ? ratio : 1.0f);
    });
}

void mish_backward(float* dinp, const float* dout, const float* inp, int64_t n) {
    // t + x (1 - t^2) sigmoid(x), with 1 - t^2 = 4 (m + 1) / (m + 2)^2.
    map_backward(dinp, dout, inp, n, [](float x) {
        const float e = fexp(x < 20.0f ? x : 20.0f);
        const float m = e * (e + 2.0f);
        const float q = m + 2.0f;
        const float ratio = m / q, slope = 4.0f * (m + 1.0f) / (q * q);
        const float t = x < 20.0f ? ratio : 1.0f;
        const float one_minus_t2 = x < 20.0f ? slope : 0.0f;
        return t + x * one_minus_t2 * fsigmoid(x);
    });
}

// ---------------------------------------------------------------- softmax, log_softmax

namespace {
// Axis-wise activations over (outer, axis, inner). inner == 1 (the last axis) runs row by row;
// otherwise each task takes a strip of up to kStrip inner positions of one outer index and walks
// the axis, so that the innermost loop runs over contiguous memory and vectorises.
constexpr int kStrip = 64;

// Calls row(r) for each of the rows, or strip(o, j0, w) for each strip.
template <class Row, class Strip>
inline void for_each_slice(int64_t outer, int axis, int64_t inner, Row row, Strip strip) {
    const int64_t total = outer * axis * inner;
    if (inner == 1) {
#ifdef _OPENMP
#pragma omp parallel for if (total > kParallelMin)
#endif
        for (int64_t r = 0; r < outer; ++r) row(r);
        return;
    }
    const int64_t strips = (inner + kStrip - 1) / kStrip;
#ifdef _OPENMP
#pragma omp parallel for if (total > kParallelMin)
#endif
    for (int64_t task = 0; task < outer * strips; ++task) {
        const int64_t o = task / strips, j0 = (task % strips) * kStrip;
        strip(o, j0, static_cast<int>(inner - j0 < kStrip ? inner - j0 : kStrip));
    }
}

// Softmax (log=false) or log-softmax (log=true) over (outer, axis, inner); a template argument,
// so that the inner loops hold no test of it.
template <bool log>
void softmax_like_forward(float* out, const float* inp, int64_t outer, int axis, int64_t inner) {
    auto row = [=](int64_t r) {
        const float* x = inp + r * axis;
        float* y = out + r * axis;
        float m = x[0];
        for (int k = 1; k < axis; ++k) m = x[k] > m ? x[k] : m;
        for (int k = 0; k < axis; ++k) y[k] = fexp(x[k] - m);
        double sum = 0.0;  // double so that long rows lose nothing to rounding
        for (int k = 0; k < axis; ++k) sum += y[k];
        if constexpr (log) {
            const float shift = m + static_cast<float>(std::log(sum));
            for (int k = 0; k < axis; ++k) y[k] = x[k] - shift;
        } else {
            const float inv = static_cast<float>(1.0 / sum);
            for (int k = 0; k < axis; ++k) y[k] *= inv;
        }
    };
    auto strip = [=](int64_t o, int64_t j0, int w) {
        const float* x = inp + o * axis * inner + j0;
        float* y = out + o * axis * inner + j0;
        float m[kStrip];
        double sum[kStrip];
        for (int j = 0; j < w; ++j) m[j] = x[j], sum[j] = 0.0;
        for (int k = 1; k < axis; ++k)
            for (int j = 0; j < w; ++j) m[j] = x[k * inner + j] > m[j] ? x[k * inner + j] : m[j];
        for (int k = 0; k < axis; ++k)
            for (int j = 0; j < w; ++j) y[k * inner + j] = fexp(x[k * inner + j] - m[j]);
        for (int k = 0; k < axis; ++k)
            for (int j = 0; j < w; ++j) sum[j] += y[k * inner + j];
        float scale[kStrip];
        for (int j = 0; j < w; ++j)
            scale[j] = log ? m[j] + static_cast<float>(std::log(sum[j]))
                           : static_cast<float>(1.0 / sum[j]);
        for (int k = 0; k < axis; ++k)
            for (int j = 0; j < w; ++j)
                y[k * inner + j] = log ? x[k * inner + j] - scale[j] : y[k * inner + j] * scale[j];
    };
    for_each_slice(outer, axis, inner, row, strip);
}

// softmax: dx = y (dy - sum(dy y)); log_softmax: dx = dy - exp(y) sum(dy).
template <bool log>
void softmax_like_backward(float* dinp, const float* dout, const float* out, int64_t outer, int axis,
                           int64_t inner) {
    auto row = [=](int64_t r) {
        const float* d = dout + r * axis;
        const float* y = out + r * axis;
        float* di = dinp + r * axis;
        double dot = 0.0;
        if constexpr (log) {
            for (int k = 0; k < axis; ++k) dot += d[k];
            const float s = static_cast<float>(dot);
            for (int k = 0; k < axis; ++k) di[k] = d[k] - fexp(y[k]) * s;
        } else {
            for (int k = 0; k < axis; ++k) dot += static_cast<double>(d[k]) * y[k];
            const float s = static_cast<float>(dot);
            for (int k = 0; k < axis; ++k) di[k] = y[k] * (d[k] - s);
        }
    };
    auto strip = [=](int64_t o, int64_t j0, int w) {
        const int64_t base = o * axis * inner + j0;
        const float* d = dout + base;
        const float* y = out + base;
        float* di = dinp + base;
        double dot[kStrip];
        for (int j = 0; j < w; ++j) dot[j] = 0.0;
        for (int k = 0; k < axis; ++k)
            for (int j = 0; j < w; ++j)
                dot[j] += log ? d[k * inner + j]
                              : static_cast<double>(d[k * inner + j]) * y[k * inner + j];
        float s[kStrip];
        for (int j = 0; j < w; ++j) s[j] = static_cast<float>(dot[j]);
        for (int k = 0; k < axis; ++k)
            for (int j = 0; j < w; ++j) {
                const int64_t i = k * inner + j;
                di[i] = log ? d[i] - fexp(y[i]) * s[j] : y[i] * (d[i] - s[j]);
            }
    };
    for_each_slice(outer, axis, inner, row, strip);
}
}  // namespace

void softmax_forward(float* out, const float* inp, int64_t rows, int cols) {
    softmax_like_forward<false>(out, inp, rows, cols, 1);
}

void softmax_backward(float* dinp, const float* dout, const float* out, int64_t rows, int cols) {
    softmax_like_backward<false>(dinp, dout, out, rows, cols, 1);
}

void softmax_axis_forward(float* out, const float* inp, int64_t outer, int axis, int64_t inner) {
    softmax_like_forward<false>(out, inp, outer, axis, inner);
}

void softmax_axis_backward(float* dinp, const float* dout, const float* out, int64_t outer, int axis,
                           int64_t inner) {
    softmax_like_backward<false>(dinp, dout, out, outer, axis, inner);
}

void log_softmax_forward(float* out, const float* inp, int64_t outer, int axis, int64_t inner) {
    softmax_like_forward<true>(out, inp, outer, axis, inner);
}

void log_softmax_backward(float* dinp, const float* dout, const float* out, int64_t outer, int axis,
                          int64_t inner) {
    softmax_like_backward<true>(dinp, dout, out, outer, axis, inner);
}

// ---------------------------------------------------------------- PReLU

namespace {
// The offset into alpha of row q of a sample (rows of g.dims[ndim-1] values).
inline int64_t alpha_row_offset(const PReluGeometry& g, int64_t q) {
    int64_t offset = 0;
    for (int d = g.ndim - 2; d >= 0; --d) {
        offset += (q % g.dims[d]) * g.alpha_strides[d];
        q /= g.dims[d];
    }
    return offset;
}

inline int64_t rows_per_sample(const PReluGeometry& g) {
    int64_t rows = 1;
    for (int d = 0; d + 1 < g.ndim; ++d) rows *= g.dims[d];
    return rows;
}
}  // namespace

void prelu_forward(float* out, const float* inp, const float* alpha, const PReluGeometry& g) {
    const int64_t rows = g.N * rows_per_sample(g);
    const int64_t len = g.dims[g.ndim - 1], step = g.alpha_strides[g.ndim - 1];
    const int64_t per_sample = rows / g.N;
#ifdef _OPENMP
#pragma omp parallel for if (rows * len > kParallelMin)
#endif
    for (int64_t r = 0; r < rows; ++r) {
        const float* x = inp + r * len;
        float* y = out + r * len;
        const float* a = alpha + alpha_row_offset(g, r % per_sample);
        for (int64_t j = 0; j < len; ++j) {
            const float v = x[j];
            const float scaled = a[j * step] * v;
            y[j] = v < 0.0f ? scaled : v;  // Keras: relu(x) - alpha relu(-x); NaN passes
        }
    }
}

void prelu_backward(float* dinp, float* dalpha, const float* dout, const float* inp,
                    const float* alpha, const PReluGeometry& g) {
    const int64_t per_sample = rows_per_sample(g);
    const int64_t rows = g.N * per_sample;
    const int64_t len = g.dims[g.ndim - 1], step = g.alpha_strides[g.ndim - 1];
    if (dinp) {
#ifdef _OPENMP
#pragma omp parallel for if (rows * len > kParallelMin)
#endif
        for (int64_t r = 0; r < rows; ++r) {
            const float* x = inp + r * len;
            const float* d = dout + r * len;
            float* dx = dinp + r * len;
            const float* a = alpha + alpha_row_offset(g, r % per_sample);
            for (int64_t j = 0; j < len; ++j) {
                const float v = x[j];
                const float av = a[j * step];
                const float slope = v > 0.0f ? 1.0f : (v < 0.0f ? av : 0.0f);
                dx[j] = d[j] * slope;
            }
        }
    }
    if (!dalpha) return;
    const int64_t sample = per_sample * len;
    if (g.alpha_size == sample) {
        // No shared axis: each alpha value sums over the batch alone. Blocks of alpha values run
        // in parallel, each walking the batch in order.
        const int64_t blocks = (sample + kBlock - 1) / kBlock;
#ifdef _OPENMP
#pragma omp parallel for if (g.N * sample > kParallelMin)
#endif
        for (int64_t b = 0; b < blocks; ++b) {
            const int64_t i0 = b * kBlock, i1 = i0 + kBlock < sample ? i0 + kBlock : sample;
            float* a = dalpha;
            for (int64_t i = i0; i < i1; ++i) a[i] = 0.0f;
            for (int64_t n = 0; n < g.N; ++n) {
                const float* x = inp + n * sample;
                const float* d = dout + n * sample;
                for (int64_t i = i0; i < i1; ++i) {
                    const float p = d[i] * x[i];
                    a[i] += x[i] < 0.0f ? p : 0.0f;
                }
            }
        }
        return;
    }
    // dalpha = sum over the batch and the shared axes of dout * min(x, 0). The batch is cut into
    // `chunks` blocks (a number fixed by the sizes, not by the threads); each block sums into a
    // partial alpha of its own, and the partials are added in block order.
    const int64_t chunks = g.N < 16 ? g.N : 16;
    const int64_t chunk_n = (g.N + chunks - 1) / chunks;
    std::vector<float> partial(static_cast<size_t>(chunks * g.alpha_size), 0.0f);
    float* parts = partial.data();
#ifdef _OPENMP
#pragma omp parallel for if (g.N * sample > kParallelMin)
#endif
    for (int64_t c = 0; c < chunks; ++c) {
        float* acc = parts + c * g.alpha_size;
        const int64_t n_end = (c + 1) * chunk_n < g.N ? (c + 1) * chunk_n : g.N;
        for (int64_t n = c * chunk_n; n < n_end; ++n) {
            for (int64_t q = 0; q < per_sample; ++q) {
                const int64_t at = n * sample + q * len;
                const float* x = inp + at;
                const float* d = dout + at;
                float* a = acc + alpha_row_offset(g, q);
                if (step == 0) {
                    float s = 0.0f;
                    for (int64_t j = 0; j < len; ++j) {
                        const float p = d[j] * x[j];
                        s += x[j] < 0.0f ? p : 0.0f;
                    }
                    a[0] += s;
                } else {
                    for (int64_t j = 0; j < len; ++j) {
                        const float p = d[j] * x[j];
                        a[j] += x[j] < 0.0f ? p : 0.0f;
                    }
                }
            }
        }
    }
    for (int64_t i = 0; i < g.alpha_size; ++i) {
        float s = 0.0f;
        for (int64_t c = 0; c < chunks; ++c) s += parts[c * g.alpha_size + i];
        dalpha[i] = s;
    }
}

}  // namespace cnnkit
