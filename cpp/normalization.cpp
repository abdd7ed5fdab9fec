// normalization.cpp: batch and layer normalization, forward and backward, on float32.
//
// Contract: plain C++17, no intrinsics; inner loops run over the contiguous axis (the channels
// of a channels-last batch, the values of a layer-norm row) so the compiler vectorises them.
// Statistics are accumulated in double: each block of rows (a few KiB, in cache) is summed,
// its mean taken, then its squared deviations from that mean summed (two passes over the block,
// one over memory), and blocks are merged with Chan's formula. Reductions over the batch are
// split into a number of chunks that depends on the shape only, each summed by one thread and
// merged in order afterwards: results do not depend on the number of threads.
// Every workspace is allocated before a parallel region; nothing throws inside one.
#include "cnnkit.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace cnnkit {
namespace {

// Below this many values a parallel region costs more than it saves.
constexpr int64_t kParallelMin = 32768;
// A reduction over rows is split into at most this many chunks of at least kChunkMin values,
// with at most kWorkspaceMax partial sums per kind (wide rows get fewer chunks: the workspace
// of a 4096-wide Dense output stays small next to the data).
constexpr int64_t kMaxChunks = 64;
constexpr int64_t kChunkMin = 16384;
constexpr int64_t kWorkspaceMax = 32768;
// Rows per cache block of a channels-last batch: about this many values.
constexpr int64_t kBlockValues = 4096;

int64_t chunk_count(int64_t rows, int64_t cols) {
    return std::max<int64_t>(
        1, std::min<int64_t>({kMaxChunks, rows, rows * cols / kChunkMin, kWorkspaceMax / cols}));
}

// The gradient reaching the normalization's output when a ReLU is fused after it: dout where
// the stored output y is > 0, else 0 (a select, as relu_backward: an infinite dout past a zero
// output gives 0, not NaN). Without a fused ReLU (Mask false) dout itself.
template <bool Mask>
inline float gated(float d, const float* y, int64_t i) {
    if constexpr (Mask) {
        // d & (all ones where y > 0, else 0): +0 or d, as the select, but without a branch
        // that would keep the compiler from vectorising the loops around it.
        uint32_t bits;
        std::memcpy(&bits, &d, sizeof bits);
        bits &= 0u - static_cast<uint32_t>(y[i] > 0.0f);
        float g;
        std::memcpy(&g, &bits, sizeof g);
        return g;
    } else {
        return d;
    }
}

// Sum of n floats in double, in 8 lanes so that the loop vectorises (a single double
// accumulator is a serial chain: the compiler may not reassociate it).
double sum_double(const float* x, int64_t n) {
    double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; ++k) lane[k] += x[i + k];
    double s = 0.0;
    for (; i < n; ++i) s += x[i];
    for (int k = 0; k < 8; ++k) s += lane[k];
    return s;
}

// Sum of (x - mu)^2 over n floats, in double.
double sum_sq_dev(const float* x, int64_t n, double mu) {
    double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; ++k) {
            const double d = x[i + k] - mu;
            lane[k] += d * d;
        }
    double s = 0.0;
    for (; i < n; ++i) {
        const double d = x[i] - mu;
        s += d * d;
    }
    for (int k = 0; k < 8; ++k) s += lane[k];
    return s;
}

// Sum of a[i] * (b[i] - mu) over n floats, in double.
double sum_prod_dev(const float* a, const float* b, int64_t n, double mu) {
    double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; ++k) lane[k] += static_cast<double>(a[i + k]) * (b[i + k] - mu);
    double s = 0.0;
    for (; i < n; ++i) s += static_cast<double>(a[i]) * (b[i] - mu);
    for (int k = 0; k < 8; ++k) s += lane[k];
    return s;
}

// sum_double(d) and sum_prod_dev(d, x, mu) of the gated gradient d = gated(dout, y), in one
// pass and in the same order as those (so a fused ReLU gives the unfused sums bit for bit).
void sums_gated(double& sd, double& sdx, const float* dout, const float* y, const float* x,
                int64_t n, double mu) {
    double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0}, lanex[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; ++k) {
            const float d = gated<true>(dout[i + k], y, i + k);
            lane[k] += d;
            lanex[k] += static_cast<double>(d) * (x[i + k] - mu);
        }
    double s = 0.0, sx = 0.0;
    for (; i < n; ++i) {
        const float d = gated<true>(dout[i], y, i);
        s += d;
        sx += static_cast<double>(d) * (x[i] - mu);
    }
    for (int k = 0; k < 8; ++k) s += lane[k], sx += lanex[k];
    sd = s;
    sdx = sx;
}

// Chan's merge of (na, mean, m2) with a group of nb values of mean bmean and m2 bm2, per channel.
void merge_moments(double* mean, double* m2, int64_t na, const double* bmean, const double* bm2,
                   int64_t nb, int C) {
    const double n = static_cast<double>(na + nb);
    const double wb = nb / n, cross = static_cast<double>(na) * nb / n;
    for (int c = 0; c < C; ++c) {
        const double delta = bmean[c] - mean[c];
        mean[c] += delta * wb;
        m2[c] += bm2[c] + delta * delta * cross;
    }
}

// mean and biased variance (C) of each channel of inp (M, C), channels last.
void moments_channels_last(double* mean, double* var, const float* inp, int64_t M, int C) {
    const int64_t K = chunk_count(M, C);
    const int64_t B = std::max<int64_t>(1, kBlockValues / C);
    // Per chunk: its mean and m2, and the block's mean and m2 (scratch).
    std::vector<double> ws(static_cast<size_t>(4 * K * C), 0.0);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (M * C > kParallelMin)
#endif
    for (int64_t k = 0; k < K; ++k) {
        double* cmean = ws.data() + k * C;
        double* cm2 = cmean + K * C;
        double* bmean = cm2 + K * C;
        double* bm2 = bmean + K * C;
        const int64_t m0 = M * k / K, m1 = M * (k + 1) / K;
        int64_t count = 0;
        for (int64_t r0 = m0; r0 < m1; r0 += B) {
            const int64_t r1 = std::min(r0 + B, m1), nb = r1 - r0;
            for (int c = 0; c < C; ++c) bmean[c] = 0.0, bm2[c] = 0.0;
            for (int64_t r = r0; r < r1; ++r) {
                const float* x = inp + r * C;
                for (int c = 0; c < C; ++c) bmean[c] += x[c];
            }
            const double inv_nb = 1.0 / static_cast<double>(nb);
            for (int c = 0; c < C; ++c) bmean[c] *= inv_nb;
            for (int64_t r = r0; r < r1; ++r) {
                const float* x = inp + r * C;
                for (int c = 0; c < C; ++c) {
                    const double d = x[c] - bmean[c];
                    bm2[c] += d * d;
                }
            }
            merge_moments(cmean, cm2, count, bmean, bm2, nb, C);
            count += nb;
        }
    }
    std::fill(mean, mean + C, 0.0);
    std::fill(var, var + C, 0.0);
    int64_t count = 0;
    for (int64_t k = 0; k < K; ++k) {
        const int64_t nb = M * (k + 1) / K - M * k / K;
        merge_moments(mean, var, count, ws.data() + k * C, ws.data() + (K + k) * C, nb, C);
        count += nb;
    }
    for (int c = 0; c < C; ++c) var[c] /= static_cast<double>(M);
}

// The same for (outer, C, inner) with inner > 1: one channel per task, two passes.
void moments_strided(double* mean, double* var, const float* inp, int64_t outer, int C,
                     int64_t inner) {
    const double n = static_cast<double>(outer) * inner;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (outer * C * inner > kParallelMin)
#endif
    for (int c = 0; c < C; ++c) {
        double s = 0.0;
        for (int64_t o = 0; o < outer; ++o) s += sum_double(inp + (o * C + c) * inner, inner);
        const double mu = s / n;
        double m2 = 0.0;
        for (int64_t o = 0; o < outer; ++o) m2 += sum_sq_dev(inp + (o * C + c) * inner, inner, mu);
        mean[c] = mu;
        var[c] = m2 / n;
    }
}

// out = inp * scale[c] + shift[c] over (outer, C, inner), then max(., 0) when Relu (written as
// relu_forward writes it, so that a NaN passes through).
template <bool Relu>
inline float affine_out(float x, float a, float b) {
    const float v = x * a + b;
    if constexpr (Relu)
        return v < 0.0f ? 0.0f : v;
    else
        return v;
}

template <bool Relu>
void scale_shift_impl(float* out, const float* inp, const float* scale, const float* shift,
                      int64_t outer, int C, int64_t inner) {
    if (inner == 1) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (outer * C > kParallelMin)
#endif
        for (int64_t r = 0; r < outer; ++r) {
            const float* x = inp + r * C;
            float* y = out + r * C;
            for (int c = 0; c < C; ++c) y[c] = affine_out<Relu>(x[c], scale[c], shift[c]);
        }
        return;
    }
    const int64_t planes = outer * C;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (planes * inner > kParallelMin)
#endif
    for (int64_t p = 0; p < planes; ++p) {
        const int c = static_cast<int>(p % C);
        const float a = scale[c], b = shift[c];
        const float* x = inp + p * inner;
        float* y = out + p * inner;
        for (int64_t i = 0; i < inner; ++i) y[i] = affine_out<Relu>(x[i], a, b);
    }
}

void scale_shift(float* out, const float* inp, const float* scale, const float* shift,
                 int64_t outer, int C, int64_t inner, bool relu) {
    if (relu)
        scale_shift_impl<true>(out, inp, scale, shift, outer, C, inner);
    else
        scale_shift_impl<false>(out, inp, scale, shift, outer, C, inner);
}

// Keras' batch_normalization: inv = invstd * gamma, out = x * inv + (beta - mean * inv).
void affine_of(std::vector<float>& scale, std::vector<float>& shift, const float* mean,
               const float* invstd, const float* gamma, const float* beta, int C) {
    for (int c = 0; c < C; ++c) {
        scale[c] = gamma ? invstd[c] * gamma[c] : invstd[c];
        shift[c] = (beta ? beta[c] : 0.0f) - mean[c] * scale[c];
    }
}

// sdy[c] = sum d, sdyx[c] = sum d * (inp - mean[c]), in double, over (outer, C, inner), with
// d = gated<Mask>(dout, y).
template <bool Mask>
void grad_sums(double* sdy, double* sdyx, const float* dout, const float* y, const float* inp,
               const float* mean, int64_t outer, int C, int64_t inner) {
    if (inner > 1) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (outer * C * inner > kParallelMin)
#endif
        for (int c = 0; c < C; ++c) {
            double s = 0.0, sx = 0.0;
            for (int64_t o = 0; o < outer; ++o) {
                const int64_t at = (o * C + c) * inner;
                if constexpr (Mask) {
                    double ps, psx;
                    sums_gated(ps, psx, dout + at, y + at, inp + at, inner, mean[c]);
                    s += ps;
                    sx += psx;
                } else {
                    s += sum_double(dout + at, inner);
                    sx += sum_prod_dev(dout + at, inp + at, inner, mean[c]);
                }
            }
            sdy[c] = s;
            sdyx[c] = sx;
        }
        return;
    }
    const int64_t M = outer, K = chunk_count(M, C);
    std::vector<double> ws(static_cast<size_t>(2 * K * C), 0.0);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (M * C > kParallelMin)
#endif
    for (int64_t k = 0; k < K; ++k) {
        double* s = ws.data() + k * C;
        double* sx = s + K * C;
        for (int64_t r = M * k / K; r < M * (k + 1) / K; ++r) {
            const float* d = dout + r * C;
            const float* yr = Mask ? y + r * C : nullptr;
            const float* x = inp + r * C;
            for (int c = 0; c < C; ++c) {
                const float g = gated<Mask>(d[c], yr, c);
                s[c] += g;
                sx[c] += static_cast<double>(g) * (x[c] - mean[c]);
            }
        }
    }
    std::fill(sdy, sdy + C, 0.0);
    std::fill(sdyx, sdyx + C, 0.0);
    for (int64_t k = 0; k < K; ++k)
        for (int c = 0; c < C; ++c) sdy[c] += ws[k * C + c], sdyx[c] += ws[(K + k) * C + c];
}

// dinp = a[c] * d + b[c] * (inp - mean[c]) + c0[c] over (outer, C, inner), d = gated<Mask>(dout, y).
template <bool Mask>
void input_grad(float* dinp, const float* dout, const float* y, const float* inp,
                const float* mean, const float* a, const float* b, const float* c0,
                int64_t outer, int C, int64_t inner) {
    if (inner == 1) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (outer * C > kParallelMin)
#endif
        for (int64_t r = 0; r < outer; ++r) {
            const float* d = dout + r * C;
            const float* yr = Mask ? y + r * C : nullptr;
            const float* x = inp + r * C;
            float* dx = dinp + r * C;
            for (int c = 0; c < C; ++c)
                dx[c] = a[c] * gated<Mask>(d[c], yr, c) + b[c] * (x[c] - mean[c]) + c0[c];
        }
        return;
    }
    const int64_t planes = outer * C;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (planes * inner > kParallelMin)
#endif
    for (int64_t p = 0; p < planes; ++p) {
        const int c = static_cast<int>(p % C);
        const float ac = a[c], bc = b[c], cc = c0[c], mu = mean[c];
        const float* d = dout + p * inner;
        const float* yp = Mask ? y + p * inner : nullptr;
        const float* x = inp + p * inner;
        float* dx = dinp + p * inner;
        for (int64_t i = 0; i < inner; ++i)
            dx[i] = ac * gated<Mask>(d[i], yp, i) + bc * (x[i] - mu) + cc;
    }
}

}  // namespace

void batchnorm_forward_train(float* out, float* mean, float* var, float* invstd,
                             float* moving_mean, float* moving_var, const float* inp,
                             const float* gamma, const float* beta, int64_t outer, int C,
                             int64_t inner, float eps, float momentum, bool relu) {
    // inp and out are (outer,C,inner); mean, var, invstd, moving_*, gamma, beta are (C)
    std::vector<double> dmean(C), dvar(C);
    if (inner == 1)
        moments_channels_last(dmean.data(), dvar.data(), inp, outer, C);
    else
        moments_strided(dmean.data(), dvar.data(), inp, outer, C, inner);
    const float keep = momentum, take = 1.0f - momentum;
    for (int c = 0; c < C; ++c) {
        mean[c] = static_cast<float>(dmean[c]);
        var[c] = static_cast<float>(dvar[c]);
        invstd[c] = static_cast<float>(1.0 / std::sqrt(dvar[c] + static_cast<double>(eps)));
        if (moving_mean) moving_mean[c] = moving_mean[c] * keep + mean[c] * take;
        if (moving_var) moving_var[c] = moving_var[c] * keep + var[c] * take;
    }
    std::vector<float> scale(C), shift(C);
    affine_of(scale, shift, mean, invstd, gamma, beta, C);
    scale_shift(out, inp, scale.data(), shift.data(), outer, C, inner, relu);
}

void batchnorm_forward_infer(float* out, float* invstd, const float* inp, const float* gamma,
                             const float* beta, const float* mean, const float* var,
                             int64_t outer, int C, int64_t inner, float eps, bool relu) {
    // inp and out are (outer,C,inner); invstd, gamma, beta, mean, var are (C)
    std::vector<float> inv(C), scale(C), shift(C);
    for (int c = 0; c < C; ++c) {
        inv[c] = 1.0f / std::sqrt(var[c] + eps);  // as Keras: float32 rsqrt(var + eps)
        if (invstd) invstd[c] = inv[c];
    }
    affine_of(scale, shift, mean, inv.data(), gamma, beta, C);
    scale_shift(out, inp, scale.data(), shift.data(), outer, C, inner, relu);
}

void batchnorm_backward(float* dinp, float* dgamma, float* dbeta, const float* dout,
                        const float* inp, const float* mean, const float* invstd,
                        const float* gamma, const float* relu_out, int64_t outer, int C,
                        int64_t inner, bool batch_stats) {
    // dinp, dout, inp, relu_out are (outer,C,inner); dgamma, dbeta, mean, invstd, gamma are (C)
    const bool mask = relu_out != nullptr;
    std::vector<double> sdy(C), sdyx(C);
    if (dgamma || dbeta || batch_stats) {
        if (mask)
            grad_sums<true>(sdy.data(), sdyx.data(), dout, relu_out, inp, mean, outer, C, inner);
        else
            grad_sums<false>(sdy.data(), sdyx.data(), dout, nullptr, inp, mean, outer, C, inner);
    }
    for (int c = 0; c < C; ++c) {
        if (dgamma) dgamma[c] = static_cast<float>(sdyx[c] * invstd[c]);
        if (dbeta) dbeta[c] = static_cast<float>(sdy[c]);
    }
    if (!dinp) return;
    // dx = scale * dy + b * (x - mean) + c0, with scale = gamma * invstd and, when the
    // statistics are the batch's, b = -scale * invstd^2 * sum(dy (x - mean)) / n and
    // c0 = -scale * sum(dy) / n (the gradient through the mean and the variance).
    const double n = static_cast<double>(outer) * inner;
    std::vector<float> a(C), b(C, 0.0f), c0(C, 0.0f);
    for (int c = 0; c < C; ++c) {
        const double s = (gamma ? static_cast<double>(gamma[c]) : 1.0) * invstd[c];
        a[c] = static_cast<float>(s);
        if (batch_stats) {
            b[c] = static_cast<float>(-s * invstd[c] * invstd[c] * sdyx[c] / n);
            c0[c] = static_cast<float>(-s * sdy[c] / n);
        }
    }
    if (mask)
        input_grad<true>(dinp, dout, relu_out, inp, mean, a.data(), b.data(), c0.data(), outer,
                         C, inner);
    else
        input_grad<false>(dinp, dout, nullptr, inp, mean, a.data(), b.data(), c0.data(), outer,
                          C, inner);
}

void layernorm_forward(float* out, float* mean, float* invstd, const float* inp,
                       const float* gamma, const float* beta, int64_t rows, int64_t D, float eps,
                       bool center) {
    // inp and out are (rows,D); mean and invstd are (rows); gamma and beta are (D)
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (rows * D > kParallelMin)
#endif
    for (int64_t r = 0; r < rows; ++r) {
        const float* x = inp + r * D;
        float* y = out + r * D;
        const double mu = sum_double(x, D) / static_cast<double>(D);
        const double var = sum_sq_dev(x, D, mu) / static_cast<double>(D);
        const float inv = static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(eps)));
        mean[r] = static_cast<float>(mu);
        invstd[r] = inv;
        const float sub = center ? static_cast<float>(mu) : 0.0f;
        if (gamma && beta) {
            for (int64_t j = 0; j < D; ++j) y[j] = (x[j] - sub) * inv * gamma[j] + beta[j];
        } else if (gamma) {
            for (int64_t j = 0; j < D; ++j) y[j] = (x[j] - sub) * inv * gamma[j];
        } else if (beta) {
            for (int64_t j = 0; j < D; ++j) y[j] = (x[j] - sub) * inv + beta[j];
        } else {
            for (int64_t j = 0; j < D; ++j) y[j] = (x[j] - sub) * inv;
        }
    }
}

void layernorm_backward(float* dinp, float* dgamma, float* dbeta, const float* dout,
                        const float* inp, const float* mean, const float* invstd,
                        const float* gamma, int64_t rows, int64_t D, bool center) {
    // dinp, dout, inp are (rows,D); mean and invstd are (rows); dgamma, dbeta, gamma are (D).
    // With u = x - mean (x itself for rms scaling), r = invstd and g = dy * gamma:
    // dx = r * (g - mean(g) [centered only]) - r^3 * (x - mean) * sum(g u) / D,
    // dgamma = sum over rows of dy * u * r, dbeta = sum over rows of dy.
    const bool weights = dgamma || dbeta;
    const int64_t K = weights ? chunk_count(rows, D) : std::min<int64_t>(rows, kMaxChunks);
    std::vector<double> ws(weights ? static_cast<size_t>(2 * K * D) : 0, 0.0);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (rows * D > kParallelMin)
#endif
    for (int64_t k = 0; k < K; ++k) {
        double* sg = weights ? ws.data() + k * D : nullptr;
        double* sb = weights ? ws.data() + (K + k) * D : nullptr;
        for (int64_t r = rows * k / K; r < rows * (k + 1) / K; ++r) {
            const float* d = dout + r * D;
            const float* x = inp + r * D;
            const float mu = mean[r], inv = invstd[r], sub = center ? mu : 0.0f;
            if (weights)
                for (int64_t j = 0; j < D; ++j) {
                    sg[j] += static_cast<double>(d[j]) * ((x[j] - sub) * inv);
                    sb[j] += d[j];
                }
            if (!dinp) continue;
            double lane_g[8] = {0, 0, 0, 0, 0, 0, 0, 0}, lane_gu[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            double sum_g = 0.0, sum_gu = 0.0;
            int64_t j = 0;
            for (; j + 8 <= D; j += 8)
                for (int l = 0; l < 8; ++l) {
                    const double g = static_cast<double>(d[j + l]) * (gamma ? gamma[j + l] : 1.0f);
                    lane_g[l] += g;
                    lane_gu[l] += g * (x[j + l] - sub);
                }
            for (; j < D; ++j) {
                const double g = static_cast<double>(d[j]) * (gamma ? gamma[j] : 1.0f);
                sum_g += g;
                sum_gu += g * (x[j] - sub);
            }
            for (int l = 0; l < 8; ++l) sum_g += lane_g[l], sum_gu += lane_gu[l];
            const float gbar = center ? static_cast<float>(sum_g / D) : 0.0f;
            const float coef = static_cast<float>(static_cast<double>(inv) * inv * sum_gu / D);
            float* dx = dinp + r * D;
            if (gamma) {
                for (int64_t i = 0; i < D; ++i)
                    dx[i] = inv * (d[i] * gamma[i] - gbar - (x[i] - mu) * coef);
            } else {
                for (int64_t i = 0; i < D; ++i) dx[i] = inv * (d[i] - gbar - (x[i] - mu) * coef);
            }
        }
    }
    if (!weights) return;
    for (int64_t j = 0; j < D; ++j) {
        double g = 0.0, b = 0.0;
        for (int64_t k = 0; k < K; ++k) g += ws[k * D + j], b += ws[(K + k) * D + j];
        if (dgamma) dgamma[j] = static_cast<float>(g);
        if (dbeta) dbeta[j] = static_cast<float>(b);
    }
}

}  // namespace cnnkit
