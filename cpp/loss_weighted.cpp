// loss_weighted.cpp: Keras 3's losses as a weighted sum of row values (see loss.h): the
// elementwise ones (MSE, MAE, Huber, binary cross-entropy on probabilities or logits, KL
// divergence) and the categorical ones (cross-entropy and focal cross-entropy, on probabilities
// or logits, one-hot or sparse targets, label smoothing, an ignored class).
//
// Plain C++17; each row is computed in double. As in loss.cpp the rows are cut into a fixed
// number of blocks whose partial sums are added in order, so the value does not depend on the
// number of threads. Assumes IEEE floats (no -ffast-math): a NaN prediction gives a NaN loss.
#include "cnnkit.h"

#include <cmath>

namespace cnnkit {

namespace {

constexpr int64_t kParallelMin = 32768;  // values below which a parallel region costs more
constexpr int kBlocks = 256;             // fixed, so that the summation order never changes

template <class RangeSum>
double blocked_rows(int64_t rows, [[maybe_unused]] bool parallel, const RangeSum& range_sum) {
    double part[kBlocks];
#ifdef _OPENMP
#pragma omp parallel for if (parallel)
#endif
    for (int b = 0; b < kBlocks; ++b)
        part[b] = range_sum(rows * b / kBlocks, rows * (b + 1) / kBlocks);
    double total = 0.0;
    for (int b = 0; b < kBlocks; ++b) total += part[b];
    return total;
}

// The factor of row r's value and gradient: the reduction's scale times the row's weight.
inline double row_factor(const LossRows& r, int64_t row) {
    return r.sample_weight ? r.scale * r.sample_weight[row / r.rows_per_sample] : r.scale;
}

inline double sign(double e) { return (e > 0.0) - (e < 0.0); }

// One element's value and derivative with respect to the prediction.
template <int Kind>
inline double element(double p, double t, double param, double* d) {
    if constexpr (Kind == kLossMeanSquared) {
        const double e = p - t;
        *d = 2.0 * e;
        return e * e;
    } else if constexpr (Kind == kLossMeanAbsolute) {
        const double e = p - t;
        *d = sign(e);
        return std::fabs(e);
    } else if constexpr (Kind == kLossHuber) {
        const double e = p - t, a = std::fabs(e);
        if (a <= param) {
            *d = e;
            return 0.5 * e * e;
        }
        *d = param * sign(e);
        return param * a - 0.5 * param * param;
    } else if constexpr (Kind == kLossBinaryCrossentropy) {
        // Clip bounds in float32, as Keras computes them; flat (no gradient) where active.
        const float lo = static_cast<float>(param), hi = 1.0f - lo;
        const float x = static_cast<float>(p);
        const double c = x < lo ? lo : (x > hi ? hi : x);  // a NaN stays NaN
        *d = (x > lo && x < hi) ? (c - t) / (c * (1.0 - c)) : 0.0;
        return -(t * std::log(c) + (1.0 - t) * std::log(1.0 - c));
    } else if constexpr (Kind == kLossBinaryCrossentropyLogits) {
        // softplus(x) - t x, written so that no exp overflows
        const double sig = p >= 0 ? 1.0 / (1.0 + std::exp(-p)) : std::exp(p) / (1.0 + std::exp(p));
        *d = sig - t;
        return (p > 0 ? p : 0.0) - t * p + std::log1p(std::exp(-std::fabs(p)));
    } else {  // kLossKLDivergence
        const double lo = static_cast<float>(param);
        const double tc = t < lo ? lo : (t > 1.0 ? 1.0 : t);
        const double pc = p < lo ? lo : (p > 1.0 ? 1.0 : p);
        *d = (p > lo && p < 1.0) ? -tc / pc : 0.0;
        return tc * std::log(tc / pc);
    }
}

template <int Kind>
double elementwise_rows(float* dpred, const float* pred, const float* target, const LossRows& r,
                        double param, double smoothing) {
    const int K = r.K;
    // Every loss but KLD is the mean over K: its 1/K joins each row's factor.
    const double per_k = Kind == kLossKLDivergence ? 1.0 : 1.0 / K;
    auto range = [&](int64_t r0, int64_t r1) {
        double s = 0.0;
        for (int64_t row = r0; row < r1; ++row) {
            const double f = row_factor(r, row) * per_k;
            const float* p = pred + row * K;
            const float* t = target + row * K;
            double v = 0.0, d;
            for (int k = 0; k < K; ++k) {
                double tk = t[k];
                if (smoothing != 0.0) tk = tk * (1.0 - smoothing) + 0.5 * smoothing;
                v += element<Kind>(p[k], tk, param, &d);
                if (dpred) dpred[row * K + k] = static_cast<float>(f * d);
            }
            // A zero weight drops the row even when its value is infinite (0 * inf is NaN).
            const double weighted = f == 0.0 ? 0.0 : f * v;
            if (r.row_values) r.row_values[row] = static_cast<float>(weighted);
            s += weighted;
        }
        return s;
    };
    return blocked_rows(r.rows, r.rows * K > kParallelMin, range);
}

}  // namespace

double elementwise_loss(float* dpred, const float* pred, const float* target, const LossRows& r,
                        int kind, float param, float label_smoothing) {
    switch (kind) {
        case kLossMeanSquared:
            return elementwise_rows<kLossMeanSquared>(dpred, pred, target, r, param, 0.0);
        case kLossMeanAbsolute:
            return elementwise_rows<kLossMeanAbsolute>(dpred, pred, target, r, param, 0.0);
        case kLossHuber:
            return elementwise_rows<kLossHuber>(dpred, pred, target, r, param, 0.0);
        case kLossBinaryCrossentropy:
            return elementwise_rows<kLossBinaryCrossentropy>(dpred, pred, target, r, param,
                                                             label_smoothing);
        case kLossBinaryCrossentropyLogits:
            return elementwise_rows<kLossBinaryCrossentropyLogits>(dpred, pred, target, r, param,
                                                                   label_smoothing);
        default:
            return elementwise_rows<kLossKLDivergence>(dpred, pred, target, r, param, 0.0);
    }
}

double categorical_loss(float* dpred, const float* pred, const float* onehot,
                        const int64_t* labels, const LossRows& r,
                        const CategoricalLossOptions& o) {
    const int K = r.K;
    const double s = o.label_smoothing, lo = o.eps, hi = 1.0 - static_cast<double>(o.eps);
    const float lo_f = o.eps, hi_f = 1.0f - o.eps;  // the clip in float32, as Keras
    auto range = [&](int64_t r0, int64_t r1) {
        double sum = 0.0;
        for (int64_t row = r0; row < r1; ++row) {
            const float* x = pred + row * K;
            float* d = dpred ? dpred + row * K : nullptr;
            if (labels && o.has_ignore && labels[row] == o.ignore_class) {
                if (d)
                    for (int k = 0; k < K; ++k) d[k] = 0.0f;
                if (r.row_values) r.row_values[row] = 0.0f;
                continue;
            }
            auto target = [&](int k) {
                const double y = onehot ? onehot[row * K + k] : (k == labels[row] ? 1.0 : 0.0);
                return s != 0.0 ? y * (1.0 - s) + s / K : y;
            };
            const double f = row_factor(r, row);
            double v = 0.0;
            if (o.from_logits && !o.focal) {
                // -sum y log_softmax(x) = S lse - sum y x; dx = S p - y (S = sum y)
                double m = x[0];
                for (int k = 1; k < K; ++k) m = x[k] > m ? x[k] : m;
                double se = 0.0;
                for (int k = 0; k < K; ++k) se += std::exp(x[k] - m);
                const double lse = m + std::log(se);
                double total_y = 0.0;
                for (int k = 0; k < K; ++k) {
                    const double y = target(k);
                    total_y += y;
                    if (y != 0.0) v += y * (lse - x[k]);  // a -inf logit with y = 0 adds 0
                }
                if (d)
                    for (int k = 0; k < K; ++k)
                        d[k] = static_cast<float>(f * (std::exp(x[k] - lse) * total_y - target(k)));
            } else {
                // q: the softmax of the logits, or the probabilities normalised to sum 1;
                // recomputed in each pass rather than kept, so the kernel needs no scratch.
                double m = 0.0, total = 0.0;
                if (o.from_logits) {
                    m = x[0];
                    for (int k = 1; k < K; ++k) m = x[k] > m ? x[k] : m;
                    for (int k = 0; k < K; ++k) total += std::exp(x[k] - m);
                } else {
                    for (int k = 0; k < K; ++k) total += x[k];
                }
                auto prob = [&](int k) {
                    return o.from_logits ? std::exp(x[k] - m) / total : x[k] / total;
                };
                // class k's term of the row value, and its derivative g with respect to q_k
                // (zero where the clip is active)
                auto term = [&](int k, double qk, double* g) {
                    const double y = target(k);
                    *g = 0.0;
                    if (y == 0.0) return 0.0;
                    const float qf = static_cast<float>(qk);
                    const double c = qf < lo_f ? lo : (qf > hi_f ? hi : qk);
                    const bool inside = qf > lo_f && qf < hi_f;
                    const double logc = std::log(c);
                    if (!o.focal) {
                        if (inside) *g = -y / c;
                        return -y * logc;
                    }
                    const double one_minus = 1.0 - c;
                    const double mod = std::pow(one_minus, static_cast<double>(o.gamma));
                    const double dmod = o.gamma == 0.0f ? 0.0
                        : o.gamma * std::pow(one_minus, static_cast<double>(o.gamma) - 1.0);
                    if (inside) *g = o.alpha * y * (dmod * logc - mod / c);
                    return -o.alpha * y * mod * logc;
                };
                double gq = 0.0;  // sum_k g_k q_k
                for (int k = 0; k < K; ++k) {
                    const double qk = prob(k);
                    double g;
                    v += term(k, qk, &g);
                    gq += g * qk;
                }
                if (d) {
                    // softmax: dx = q (g - gq); normalisation p / total: dp = (g - gq) / total
                    for (int k = 0; k < K; ++k) {
                        const double qk = prob(k);
                        double g;
                        term(k, qk, &g);
                        const double dk = o.from_logits ? qk * (g - gq) : (g - gq) / total;
                        d[k] = static_cast<float>(f * dk);
                    }
                }
            }
            const double weighted = f == 0.0 ? 0.0 : f * v;
            if (r.row_values) r.row_values[row] = static_cast<float>(weighted);
            sum += weighted;
        }
        return sum;
    };
    return blocked_rows(r.rows, r.rows * K > kParallelMin, range);
}

}  // namespace cnnkit
