// loss.cpp: softmax cross-entropy, mean squared error and binary cross-entropy, each returning
// the mean loss and (optionally) writing the gradient already divided by the batch size.
//
// Contract: plain C++17, no intrinsics; sums accumulate in double. The work is cut into a fixed
// number of contiguous blocks whose partial sums are added in order afterwards, so the loss is
// bit-identical whatever the number of threads (a reduction clause would not promise that).
// Blocks run in parallel only when there is enough work to pay for a parallel region. Assumes
// IEEE float semantics (no -ffast-math), so a NaN prediction shows up as a NaN loss.
#include "cnnkit.h"

#include <cmath>

namespace cnnkit {

namespace {

// Below this many values a parallel region costs more than it saves.
constexpr int64_t kParallelMin = 32768;
// Fixed, not the thread count, so that the summation order never changes.
constexpr int kBlocks = 256;

// Sums range_sum(i0, i1) over kBlocks contiguous blocks of [0, n).
template <class RangeSum>
double blocked_sum(int64_t n, [[maybe_unused]] bool parallel, const RangeSum& range_sum) {
    double part[kBlocks];
#ifdef _OPENMP
#pragma omp parallel for if (parallel)
#endif
    for (int b = 0; b < kBlocks; ++b) part[b] = range_sum(n * b / kBlocks, n * (b + 1) / kBlocks);
    double total = 0.0;
    for (int b = 0; b < kBlocks; ++b) total += part[b];
    return total;
}

}  // namespace

double softmax_cross_entropy(float* dlogits, const float* logits, const float* onehot,
                             const int64_t* labels, int64_t B, int K) {
    // logits, dlogits and onehot are (B,K), labels is (B,)
    const double inv_b = 1.0 / static_cast<double>(B);
    auto rows = [&](int64_t r0, int64_t r1) {
        double s = 0.0;
        for (int64_t r = r0; r < r1; ++r) {
            const float* x = logits + r * K;
            double m = x[0];
            for (int k = 1; k < K; ++k) m = x[k] > m ? x[k] : m;
            double se = 0.0;
            for (int k = 0; k < K; ++k) se += std::exp(x[k] - m);
            const double lse = m + std::log(se);  // log-sum-exp, stable for large logits
            if (onehot) {
                const float* y = onehot + r * K;
                // Zero targets are skipped so that a -inf logit with y = 0 adds 0, not NaN.
                for (int k = 0; k < K; ++k)
                    if (y[k] != 0.0f) s -= y[k] * (x[k] - lse);
            } else {
                s += lse - x[labels[r]];
            }
            if (dlogits) {
                float* d = dlogits + r * K;
                for (int k = 0; k < K; ++k) {
                    const double y = onehot ? onehot[r * K + k] : (k == labels[r] ? 1.0 : 0.0);
                    d[k] = static_cast<float>((std::exp(x[k] - lse) - y) * inv_b);
                }
            }
        }
        return s;
    };
    return blocked_sum(B, B * K > kParallelMin, rows) * inv_b;
}

double mean_squared_error(float* dpred, const float* pred, const float* target, int64_t n) {
    // pred, target and dpred are (n,)
    const double scale = 2.0 / static_cast<double>(n);
    auto range = [&](int64_t i0, int64_t i1) {
        double s = 0.0;
        for (int64_t i = i0; i < i1; ++i) {
            const double e = static_cast<double>(pred[i]) - target[i];
            s += e * e;
            if (dpred) dpred[i] = static_cast<float>(scale * e);
        }
        return s;
    };
    return blocked_sum(n, n > kParallelMin, range) / static_cast<double>(n);
}

double binary_crossentropy(float* dpred, const float* pred, const float* target, int64_t n,
                           float eps) {
    // pred, target and dpred are (n,)
    // Clip bounds in float32, as Keras computes them.
    const float lo = eps, hi = 1.0f - eps;
    const double inv_n = 1.0 / static_cast<double>(n);
    auto range = [&](int64_t i0, int64_t i1) {
        double s = 0.0;
        for (int64_t i = i0; i < i1; ++i) {
            const float x = pred[i];
            // Written so that a NaN prediction stays NaN and shows in the loss.
            const double p = x < lo ? lo : (x > hi ? hi : x);
            const double t = target[i];
            s -= t * std::log(p) + (1.0 - t) * std::log(1.0 - p);
            if (dpred) {
                // The clip is flat where it is active, so the gradient there is zero.
                const bool inside = x > lo && x < hi;
                dpred[i] = inside ? static_cast<float>((p - t) / (p * (1.0 - p)) * inv_n) : 0.0f;
            }
        }
        return s;
    };
    return blocked_sum(n, n > kParallelMin, range) * inv_n;
}

}  // namespace cnnkit
