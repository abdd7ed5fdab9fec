// check_small_kernels.cpp: dev harness (its own main, not part of the Python module) for the
// pooling, upsampling, activation, loss, optimizer and runtime kernels. It checks each kernel
// against straightforward loops written here, gradients against central finite differences,
// 1-thread against 2-thread results, then times a few realistic sizes.
//
// Build and run from the repository root (exit status 1 if any check fails):
//   g++ -std=c++17 -O3 -fopenmp -Wall -Wextra cpp/pool.cpp cpp/activation.cpp cpp/loss.cpp
//       cpp/optimizer.cpp cpp/runtime.cpp cpp/dev/check_small_kernels.cpp -o /tmp/check_small
//   /tmp/check_small [--no-timing]
#include "../cnnkit.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <vector>

using namespace cnnkit;

namespace {

int g_failures = 0;
std::mt19937 g_rng(1234);

void check(bool ok, const char* what) {
    std::printf("  [%s] %s\n", ok ? " ok " : "FAIL", what);
    if (!ok) ++g_failures;
}

std::vector<float> uniform(int64_t n, float lo, float hi) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = d(g_rng);
    return v;
}

// Small integers: pooling windows full of ties.
std::vector<float> small_ints(int64_t n, int k) {
    std::uniform_int_distribution<int> d(0, k - 1);
    std::vector<float> v(n);
    for (auto& x : v) x = static_cast<float>(d(g_rng));
    return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// max |a-b| / (atol + rtol*|b|) <= 1
bool close(const std::vector<float>& a, const std::vector<double>& b, double rtol, double atol,
           double* worst = nullptr) {
    double w = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        const double e = std::fabs(a[i] - b[i]) / (atol + rtol * std::fabs(b[i]));
        if (!(e <= w)) w = e;  // NaN counts as worst
    }
    if (worst) *worst = w;
    return w <= 1.0;
}

// ------------------------------------------------------------------ pooling

// Keras geometry: 'valid' or 'same'.
Window2d geometry(int N, int H, int W, int C, int K, int S, bool same) {
    Window2d g{};
    g.N = N, g.H = H, g.W = W, g.C = C, g.KH = K, g.KW = K, g.SH = S, g.SW = S;
    if (same) {
        g.OH = (H + S - 1) / S, g.OW = (W + S - 1) / S;
        g.PT = std::max((g.OH - 1) * S + K - H, 0) / 2;
        g.PL = std::max((g.OW - 1) * S + K - W, 0) / 2;
    } else {
        g.OH = (H - K) / S + 1, g.OW = (W - K) / S + 1;
        g.PT = g.PL = 0;
    }
    return g;
}

// The obvious loops: padding is -inf, first maximum wins, first NaN wins.
void maxpool_ref(std::vector<float>& out, std::vector<int32_t>& arg, const std::vector<float>& in,
                 const Window2d& g) {
    out.assign(int64_t(g.N) * g.OH * g.OW * g.C, 0.f);
    arg.assign(out.size(), -7);
    for (int n = 0; n < g.N; ++n)
        for (int oh = 0; oh < g.OH; ++oh)
            for (int ow = 0; ow < g.OW; ++ow)
                for (int c = 0; c < g.C; ++c) {
                    float best = -std::numeric_limits<float>::infinity();
                    int32_t bi = -1;
                    for (int kh = 0; kh < g.KH; ++kh)
                        for (int kw = 0; kw < g.KW; ++kw) {
                            const int h = oh * g.SH - g.PT + kh, w = ow * g.SW - g.PL + kw;
                            if (h < 0 || h >= g.H || w < 0 || w >= g.W) continue;
                            const float v = in[((int64_t(n) * g.H + h) * g.W + w) * g.C + c];
                            const bool take = bi < 0 || v > best ||
                                              (std::isnan(v) && !std::isnan(best));
                            if (take) best = v, bi = h * g.W + w;
                        }
                    const int64_t o = ((int64_t(n) * g.OH + oh) * g.OW + ow) * g.C + c;
                    out[o] = best, arg[o] = bi;
                }
}

void maxpool_backward_ref(std::vector<float>& din, const std::vector<float>& dout,
                          const std::vector<int32_t>& arg, const Window2d& g) {
    din.assign(int64_t(g.N) * g.H * g.W * g.C, 0.f);
    const int64_t per = int64_t(g.OH) * g.OW * g.C;
    for (int n = 0; n < g.N; ++n)
        for (int64_t i = 0; i < per; ++i)
            din[(int64_t(n) * g.H * g.W + arg[n * per + i]) * g.C + i % g.C] += dout[n * per + i];
}

void check_maxpool_case(const char* name, const Window2d& g, std::vector<float> in) {
    std::vector<float> ref, out(int64_t(g.N) * g.OH * g.OW * g.C), out2(out.size());
    std::vector<int32_t> refa, arg(out.size()), arg2(out.size());
    maxpool_ref(ref, refa, in, g);
    set_num_threads(1);
    maxpool2d_forward(out.data(), arg.data(), in.data(), g);
    set_num_threads(2);
    maxpool2d_forward(out2.data(), arg2.data(), in.data(), g);
    std::vector<float> noarg(out.size());
    maxpool2d_forward(noarg.data(), nullptr, in.data(), g);

    char buf[256];
    std::snprintf(buf, sizeof buf, "maxpool fwd %s (N%d %dx%dx%d k%dx%d s%d pad %d,%d -> %dx%d)",
                  name, g.N, g.H, g.W, g.C, g.KH, g.KW, g.SH, g.PT, g.PL, g.OH, g.OW);
    check(same_bits(out, ref) && arg == refa, buf);
    check(same_bits(out, out2) && arg == arg2 && same_bits(out, noarg),
          "  same with 1 and 2 threads, and with argmax null");

    std::vector<float> dout = uniform(out.size(), -1, 1), dref, din(in.size(), 123.f),
                       din2(in.size(), -5.f);
    maxpool_backward_ref(dref, dout, refa, g);
    set_num_threads(1);
    maxpool2d_backward(din.data(), dout.data(), arg.data(), g);
    set_num_threads(2);
    maxpool2d_backward(din2.data(), dout.data(), arg.data(), g);
    check(same_bits(din, dref) && same_bits(din, din2), "  bwd: routes dout by argmax, 1 == 2 threads");
}

void check_pool() {
    std::printf("maxpool2d\n");
    check_maxpool_case("2x2/2 valid", geometry(2, 8, 10, 3, 2, 2, false), uniform(2 * 8 * 10 * 3, -1, 1));
    check_maxpool_case("3x3/2 valid overlap", geometry(2, 9, 11, 5, 3, 2, false), uniform(2 * 9 * 11 * 5, -1, 1));
    check_maxpool_case("3x3/2 same", geometry(2, 7, 10, 4, 3, 2, true), uniform(2 * 7 * 10 * 4, -1, 1));
    check_maxpool_case("2x2/2 same odd", geometry(1, 7, 9, 3, 2, 2, true), uniform(7 * 9 * 3, -1, 1));
    check_maxpool_case("3x3/1 same", geometry(2, 6, 5, 2, 3, 1, true), uniform(2 * 6 * 5 * 2, -1, 1));
    check_maxpool_case("5x5/3 same", geometry(1, 8, 13, 3, 5, 3, true), uniform(8 * 13 * 3, -1, 1));
    check_maxpool_case("ties 3x3/2", geometry(2, 9, 9, 3, 3, 2, false), small_ints(2 * 9 * 9 * 3, 2));
    check_maxpool_case("ties 3x3/2 same", geometry(2, 8, 8, 3, 3, 2, true), small_ints(2 * 8 * 8 * 3, 3));

    {  // All values equal: every winner is the window's first real position.
        const Window2d g = geometry(1, 6, 6, 2, 3, 2, true);
        std::vector<float> in(6 * 6 * 2, 0.5f), out(g.OH * g.OW * 2);
        std::vector<int32_t> arg(out.size());
        maxpool2d_forward(out.data(), arg.data(), in.data(), g);
        bool ok = true;
        for (int oh = 0; oh < g.OH; ++oh)
            for (int ow = 0; ow < g.OW; ++ow)
                for (int c = 0; c < 2; ++c) {
                    const int h = std::max(oh * 2 - g.PT, 0), w = std::max(ow * 2 - g.PL, 0);
                    ok &= arg[(oh * g.OW + ow) * 2 + c] == h * 6 + w;
                }
        check(ok, "all-equal windows: winner is the first real position");
        // Overlapping windows with ties: each window has one winner, so dinp sums to sum(dout).
        std::vector<float> dout(out.size(), 1.f), din(in.size());
        maxpool2d_backward(din.data(), dout.data(), arg.data(), g);
        double s = 0;
        for (float x : din) s += x;
        check(s == double(out.size()), "  ties + overlap: one winner per window (sum dinp == sum dout)");
    }
    {  // -inf everywhere, with padding: still a real winner, never padding.
        const Window2d g = geometry(1, 5, 5, 1, 3, 2, true);
        std::vector<float> in(25, -std::numeric_limits<float>::infinity());
        in[7] = -1e30f;
        check_maxpool_case("-inf input", g, in);
    }
    {  // NaN: the window's result is NaN, winner the first NaN.
        const Window2d g = geometry(1, 6, 6, 3, 3, 2, false);
        std::vector<float> in = uniform(6 * 6 * 3, -1, 1);
        const float nan = std::numeric_limits<float>::quiet_NaN();
        in[(2 * 6 + 2) * 3 + 0] = nan;  // shared by windows (0,0) and (0,1), (1,0), (1,1)
        in[(3 * 6 + 4) * 3 + 0] = nan;
        in[(0 * 6 + 1) * 3 + 1] = 5.f;
        in[(0 * 6 + 2) * 3 + 1] = nan;
        check_maxpool_case("NaN", g, in);
        std::vector<float> out(g.OH * g.OW * 3);
        maxpool2d_forward(out.data(), nullptr, in.data(), g);
        check(std::isnan(out[0]) && std::isnan(out[1]) && std::isnan(out[3]),
              "  NaN in a window gives NaN (argmax null path too)");
    }
    // Large enough for the parallel path (work > 32768).
    check_maxpool_case("big 3x3/2 same", geometry(8, 32, 32, 16, 3, 2, true),
                       small_ints(8 * 32 * 32 * 16, 4));
    check_maxpool_case("big 2x2/2", geometry(8, 32, 32, 16, 2, 2, false),
                       uniform(8 * 32 * 32 * 16, -1, 1));

    std::printf("upsampling2d\n");
    for (auto sz : {std::vector<int>{2, 3, 4, 5, 2, 3}, std::vector<int>{4, 16, 16, 32, 2, 2},
                    std::vector<int>{1, 1, 1, 1, 1, 1}}) {
        const int N = sz[0], H = sz[1], W = sz[2], C = sz[3], SH = sz[4], SW = sz[5];
        const int OH = H * SH, OW = W * SW;
        std::vector<float> in = uniform(int64_t(N) * H * W * C, -1, 1);
        std::vector<float> out(int64_t(N) * OH * OW * C), ref(out.size());
        for (int n = 0; n < N; ++n)
            for (int y = 0; y < OH; ++y)
                for (int x = 0; x < OW; ++x)
                    for (int c = 0; c < C; ++c)
                        ref[((int64_t(n) * OH + y) * OW + x) * C + c] =
                            in[((int64_t(n) * H + y / SH) * W + x / SW) * C + c];
        std::vector<float> dout = uniform(out.size(), -1, 1), din(in.size()), din2(in.size());
        std::vector<double> dref(in.size(), 0.0);
        for (int n = 0; n < N; ++n)
            for (int y = 0; y < OH; ++y)
                for (int x = 0; x < OW; ++x)
                    for (int c = 0; c < C; ++c)
                        dref[((int64_t(n) * H + y / SH) * W + x / SW) * C + c] +=
                            dout[((int64_t(n) * OH + y) * OW + x) * C + c];
        set_num_threads(1);
        upsampling2d_forward(out.data(), in.data(), N, H, W, C, SH, SW);
        upsampling2d_backward(din.data(), dout.data(), N, H, W, C, SH, SW);
        set_num_threads(2);
        std::vector<float> out2(out.size());
        upsampling2d_forward(out2.data(), in.data(), N, H, W, C, SH, SW);
        upsampling2d_backward(din2.data(), dout.data(), N, H, W, C, SH, SW);
        char buf[128];
        std::snprintf(buf, sizeof buf, "upsampling (N%d %dx%dx%d by %dx%d): fwd exact, bwd block sums, 1 == 2 threads",
                      N, H, W, C, SH, SW);
        check(same_bits(out, ref) && close(din, dref, 1e-6, 1e-6) && same_bits(out, out2) &&
                  same_bits(din, din2), buf);
    }
}

// ------------------------------------------------------------------ finite differences

// Central difference of a double-valued function of a float vector. The step actually taken
// is (float)(x+h) - (float)(x-h), so float rounding of the perturbation does not bias it.
std::vector<double> numeric_grad(std::vector<float> x, const std::function<double(const std::vector<float>&)>& f,
                                 float h) {
    std::vector<double> g(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
        const float x0 = x[i];
        x[i] = x0 + h;
        const float xp = x[i];
        const double fp = f(x);
        x[i] = x0 - h;
        const float xm = x[i];
        const double fm = f(x);
        x[i] = x0;
        g[i] = (fp - fm) / (double(xp) - double(xm));
    }
    return g;
}

void report_grad(const char* what, const std::vector<float>& analytic, const std::vector<double>& numeric,
                 double rtol, double atol) {
    double worst;
    const bool ok = close(analytic, numeric, rtol, atol, &worst);
    char buf[200];
    std::snprintf(buf, sizeof buf, "%s (worst err/tol %.3f)", what, worst);
    check(ok, buf);
}

// ------------------------------------------------------------------ activations

void check_activations() {
    std::printf("activations\n");
    const int64_t n = 1000;
    std::vector<float> x = uniform(n, -4, 4), y(n), dy = uniform(n, -1, 1), dx(n);
    x[0] = 0.f, x[1] = -0.f;

    relu_forward(y.data(), x.data(), n);
    relu_backward(dx.data(), dy.data(), y.data(), n);
    bool ok = true;
    for (int64_t i = 0; i < n; ++i)
        ok &= y[i] == std::max(x[i], 0.f) && dx[i] == (x[i] > 0 ? dy[i] : 0.f);
    check(ok, "relu fwd/bwd vs loops");
    {
        float nx = std::numeric_limits<float>::quiet_NaN(), ny;
        relu_forward(&ny, &nx, 1);
        check(std::isnan(ny), "relu passes NaN through");
    }

    // Sigmoid against double precision, including huge |x| and infinities.
    std::vector<float> xs = uniform(n, -20, 20);
    const float big[] = {-1e30f, -200.f, -88.f, -30.f, 30.f, 88.f, 200.f, 1e30f,
                         -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::infinity()};
    std::copy(std::begin(big), std::end(big), xs.begin());
    sigmoid_forward(y.data(), xs.data(), n);
    std::vector<double> sref(n);
    for (int64_t i = 0; i < n; ++i) sref[i] = 1.0 / (1.0 + std::exp(-double(xs[i])));
    check(close(y, sref, 1e-6, 1e-37), "sigmoid fwd vs double, |x| up to 1e30 and inf (rel 1e-6)");
    sigmoid_forward(y.data(), x.data(), n);
    sigmoid_backward(dx.data(), dy.data(), y.data(), n);
    auto sig_loss = [&](const std::vector<float>& xx) {
        std::vector<float> yy(xx.size());
        sigmoid_forward(yy.data(), xx.data(), int64_t(xx.size()));
        double s = 0;
        for (size_t i = 0; i < xx.size(); ++i) s += double(dy[i]) * yy[i];
        return s;
    };
    report_grad("sigmoid bwd vs finite differences", dx, numeric_grad(x, sig_loss, 1e-2f), 1e-3, 1e-4);

    // Softmax over rows.
    const int64_t rows = 7;
    const int cols = 13;
    std::vector<float> sx = uniform(rows * cols, -5, 5), sy(rows * cols), sdy = uniform(rows * cols, -1, 1),
                       sdx(rows * cols);
    sx[3] = 1000.f, sx[4] = 999.f;  // would overflow without the max subtracted
    softmax_forward(sy.data(), sx.data(), rows, cols);
    std::vector<double> smref(rows * cols);
    for (int64_t r = 0; r < rows; ++r) {
        double m = -1e300, s = 0;
        for (int k = 0; k < cols; ++k) m = std::max(m, double(sx[r * cols + k]));
        for (int k = 0; k < cols; ++k) s += std::exp(sx[r * cols + k] - m);
        for (int k = 0; k < cols; ++k) smref[r * cols + k] = std::exp(sx[r * cols + k] - m) / s;
    }
    check(close(sy, smref, 1e-6, 1e-9), "softmax fwd vs double (with logits near 1000)");
    sx[3] = 2.f, sx[4] = 1.f;
    softmax_forward(sy.data(), sx.data(), rows, cols);
    softmax_backward(sdx.data(), sdy.data(), sy.data(), rows, cols);
    auto sm_loss = [&](const std::vector<float>& xx) {
        std::vector<float> yy(xx.size());
        softmax_forward(yy.data(), xx.data(), rows, cols);
        double s = 0;
        for (size_t i = 0; i < xx.size(); ++i) s += double(sdy[i]) * yy[i];
        return s;
    };
    report_grad("softmax bwd vs finite differences", sdx, numeric_grad(sx, sm_loss, 1e-2f), 2e-3, 2e-4);

    // Threads: large arrays take the parallel path; results must not change.
    const int64_t big_n = 1 << 20;
    std::vector<float> bx = uniform(big_n, -6, 6), b1(big_n), b2(big_n), bd = uniform(big_n, -1, 1),
                       g1(big_n), g2(big_n);
    bool same = true;
    for (int t : {1, 2}) {
        set_num_threads(t);
        auto& o = t == 1 ? b1 : b2;
        auto& gg = t == 1 ? g1 : g2;
        relu_forward(o.data(), bx.data(), big_n);
        relu_backward(gg.data(), bd.data(), o.data(), big_n);
        sigmoid_forward(o.data(), bx.data(), big_n);
        sigmoid_backward(gg.data(), bd.data(), o.data(), big_n);
        softmax_forward(o.data(), bx.data(), big_n / 1000, 1000);
        softmax_backward(gg.data(), bd.data(), o.data(), big_n / 1000, 1000);
    }
    same = same_bits(b1, b2) && same_bits(g1, g2);
    check(same, "activations: 1 and 2 threads identical on 2^20 values");
}

// ------------------------------------------------------------------ losses

void check_losses() {
    std::printf("losses\n");
    const int64_t B = 6;
    const int K = 5;
    std::vector<float> logits = uniform(B * K, -3, 3), dl(B * K), dl2(B * K);
    std::vector<int64_t> labels(B);
    std::vector<float> onehot(B * K, 0.f);
    for (int64_t b = 0; b < B; ++b) labels[b] = (b * 3) % K, onehot[b * K + labels[b]] = 1.f;

    auto sce_ref = [&](const std::vector<float>& x, const float* y) {
        double total = 0;
        for (int64_t b = 0; b < B; ++b) {
            double m = -1e300, s = 0;
            for (int k = 0; k < K; ++k) m = std::max(m, double(x[b * K + k]));
            for (int k = 0; k < K; ++k) s += std::exp(x[b * K + k] - m);
            for (int k = 0; k < K; ++k) total -= y[b * K + k] * (x[b * K + k] - m - std::log(s));
        }
        return total / B;
    };
    const double l1 = softmax_cross_entropy(dl.data(), logits.data(), onehot.data(), nullptr, B, K);
    const double l2 = softmax_cross_entropy(dl2.data(), logits.data(), nullptr, labels.data(), B, K);
    const double lr = sce_ref(logits, onehot.data());
    check(std::fabs(l1 - lr) < 1e-12 && std::fabs(l2 - lr) < 1e-12 && same_bits(dl, dl2),
          "softmax_cross_entropy: one-hot == labels == double loop");
    auto sce_f = [&](const std::vector<float>& x) {
        return softmax_cross_entropy(nullptr, x.data(), onehot.data(), nullptr, B, K);
    };
    report_grad("  dlogits (one-hot) vs finite differences", dl, numeric_grad(logits, sce_f, 1e-3f), 1e-4, 1e-7);
    // Soft targets (rows sum to 1).
    std::vector<float> soft = uniform(B * K, 0, 1);
    for (int64_t b = 0; b < B; ++b) {
        float s = 0;
        for (int k = 0; k < K; ++k) s += soft[b * K + k];
        for (int k = 0; k < K; ++k) soft[b * K + k] /= s;
    }
    const double ls = softmax_cross_entropy(dl.data(), logits.data(), soft.data(), nullptr, B, K);
    auto sce_soft = [&](const std::vector<float>& x) {
        return softmax_cross_entropy(nullptr, x.data(), soft.data(), nullptr, B, K);
    };
    check(std::fabs(ls - sce_ref(logits, soft.data())) < 1e-12, "  soft targets: loss vs double loop");
    report_grad("  dlogits (soft targets) vs finite differences", dl, numeric_grad(logits, sce_soft, 1e-3f), 1e-4, 1e-7);
    {
        std::vector<float> huge = {1000.f, -1000.f, 0.f, 3e38f, -3e38f, 20.f};
        std::vector<int64_t> lab = {1, 1};
        std::vector<float> d(6);
        const double l = softmax_cross_entropy(d.data(), huge.data(), nullptr, lab.data(), 2, 3);
        // Row 0: lse = 1000, loss 2000; row 1: lse = 3e38, loss 6e38 (finite in double).
        bool ok = std::isfinite(l) && std::fabs(l - (2000.0 + 6e38) / 2) / l < 1e-6;
        for (float v : d) ok &= std::isfinite(v);
        check(ok, "  logits of +-1000 and +-3e38: finite loss and gradient");
    }

    // MSE
    const int64_t n = 37;
    std::vector<float> p = uniform(n, -2, 2), t = uniform(n, -2, 2), dp(n);
    const double mse = mean_squared_error(dp.data(), p.data(), t.data(), n);
    double mref = 0;
    for (int64_t i = 0; i < n; ++i) mref += (double(p[i]) - t[i]) * (double(p[i]) - t[i]);
    mref /= n;
    check(std::fabs(mse - mref) < 1e-12 * mref, "mean_squared_error vs double loop");
    auto mse_f = [&](const std::vector<float>& x) { return mean_squared_error(nullptr, x.data(), t.data(), n); };
    report_grad("  dpred vs finite differences", dp, numeric_grad(p, mse_f, 1e-2f), 1e-5, 1e-8);

    // BCE: some predictions inside, some clipped (0, 1, below eps, above 1-eps).
    const float eps = 1e-7f;
    std::vector<float> bp = uniform(n, 0.02f, 0.98f), bt = small_ints(n, 2), bd(n);
    bt[5] = 0.3f;  // soft target
    bp[0] = 0.f, bp[1] = 1.f, bp[2] = 1e-9f, bp[3] = 1.f - 1e-9f;
    const double bce = binary_crossentropy(bd.data(), bp.data(), bt.data(), n, eps);
    double bref = 0;
    for (int64_t i = 0; i < n; ++i) {
        const double q = std::min(std::max(bp[i], eps), 1.f - eps);
        bref -= bt[i] * std::log(q) + (1 - bt[i]) * std::log(1 - q);
    }
    bref /= n;
    check(std::fabs(bce - bref) < 1e-12 * bref && std::isfinite(bce), "binary_crossentropy vs double loop (with 0 and 1)");
    check(bd[0] == 0 && bd[1] == 0 && bd[2] == 0 && bd[3] == 0, "  zero gradient where the clip is active");
    auto bce_f = [&](const std::vector<float>& x) { return binary_crossentropy(nullptr, x.data(), bt.data(), n, eps); };
    std::vector<double> bnum = numeric_grad(bp, bce_f, 1e-3f);
    for (int i = 0; i < 4; ++i) bnum[i] = 0;  // finite differences straddle the clip there
    report_grad("  dpred vs finite differences (unclipped entries)", bd, bnum, 1e-4, 1e-8);

    // Thread count must not change the loss bits (fixed block split).
    const int64_t big = 1 << 20;
    const int64_t BB = big / 100;
    std::vector<float> x1 = uniform(big, -3, 3), x2 = uniform(big, 0, 1), x3 = small_ints(big, 2);
    std::vector<int64_t> lab(BB);
    for (int64_t b = 0; b < BB; ++b) lab[b] = b % 100;
    std::vector<float> d1(big), d2(big);
    double r1[3], r2[3];
    std::vector<float> e1(big), e2(big), f1(big), f2(big);
    set_num_threads(1);
    r1[0] = softmax_cross_entropy(d1.data(), x1.data(), nullptr, lab.data(), BB, 100);
    r1[1] = mean_squared_error(e1.data(), x1.data(), x2.data(), big);
    r1[2] = binary_crossentropy(f1.data(), x2.data(), x3.data(), big, eps);
    set_num_threads(2);
    r2[0] = softmax_cross_entropy(d2.data(), x1.data(), nullptr, lab.data(), BB, 100);
    r2[1] = mean_squared_error(e2.data(), x1.data(), x2.data(), big);
    r2[2] = binary_crossentropy(f2.data(), x2.data(), x3.data(), big, eps);
    check(std::memcmp(r1, r2, sizeof r1) == 0 && same_bits(d1, d2) && same_bits(e1, e2) && same_bits(f1, f2),
          "losses: 1 and 2 threads bit-identical on 2^20 values");
    // The same big loss summed naively in double: the blocked sum must agree closely.
    double naive = 0;
    for (int64_t i = 0; i < big; ++i) naive += (double(x1[i]) - x2[i]) * (double(x1[i]) - x2[i]);
    check(std::fabs(r1[1] - naive / big) < 1e-12, "  blocked MSE sum agrees with a plain double loop");
}

// ------------------------------------------------------------------ optimizers

void check_optimizers() {
    std::printf("optimizers\n");
    const int64_t n = 333;
    const float lr = 1e-3f, b1 = 0.9f, b2 = 0.999f, eps = 1e-7f;
    std::vector<float> p = uniform(n, -1, 1), m(n, 0.f), v(n, 0.f);
    std::vector<double> pd(p.begin(), p.end()), md(n, 0), vd(n, 0);
    for (int64_t step = 1; step <= 20; ++step) {
        std::vector<float> g = uniform(n, -1, 1);
        if (step == 3) g[0] = 0.f;
        adam_update(p.data(), m.data(), v.data(), g.data(), n, lr, b1, b2, eps, step);
        // Hand-written loop in double, the textbook Keras formula.
        const double alpha = lr * std::sqrt(1 - std::pow(double(b2), step)) / (1 - std::pow(double(b1), step));
        for (int64_t i = 0; i < n; ++i) {
            md[i] += (g[i] - md[i]) * (1 - double(b1));
            vd[i] += (double(g[i]) * g[i] - vd[i]) * (1 - double(b2));
            pd[i] -= alpha * md[i] / (std::sqrt(vd[i]) + eps);
        }
    }
    double worst;
    check(close(p, pd, 1e-5, 1e-7, &worst), "adam_update: 20 steps vs double loop");
    {
        std::vector<float> mm(m.begin(), m.end());
        std::vector<double> mmd(md.begin(), md.end());
        std::vector<float> vv(v.begin(), v.end());
        std::vector<double> vvd(vd.begin(), vd.end());
        check(close(mm, mmd, 1e-5, 1e-9) && close(vv, vvd, 1e-5, 1e-12), "  m and v vs double loop");
    }

    for (int mode = 0; mode < 3; ++mode) {  // plain, momentum, nesterov
        const float mom = 0.9f, slr = 0.01f;
        std::vector<float> sp = uniform(n, -1, 1), vel(n, 0.f);
        std::vector<double> spd(sp.begin(), sp.end()), veld(n, 0);
        for (int step = 0; step < 10; ++step) {
            std::vector<float> g = uniform(n, -1, 1);
            sgd_update(sp.data(), mode ? vel.data() : nullptr, g.data(), n, slr, mom, mode == 2);
            for (int64_t i = 0; i < n; ++i) {
                if (mode == 0) {
                    spd[i] -= double(slr) * g[i];
                } else {
                    veld[i] = mom * veld[i] - double(slr) * g[i];
                    spd[i] += mode == 2 ? mom * veld[i] - double(slr) * g[i] : veld[i];
                }
            }
        }
        const char* names[] = {"sgd_update plain vs double loop", "sgd_update momentum vs double loop",
                               "sgd_update nesterov vs double loop"};
        check(close(sp, spd, 1e-5, 1e-7), names[mode]);
    }

    // Parallel path: 1 and 2 threads identical.
    const int64_t big = 1 << 20;
    std::vector<float> g = uniform(big, -1, 1), pa = uniform(big, -1, 1), pb = pa;
    std::vector<float> ma(big, 0.1f), mb = ma, va(big, 0.2f), vb = va, wa(big, 0.f), wb = wa;
    set_num_threads(1);
    adam_update(pa.data(), ma.data(), va.data(), g.data(), big, lr, b1, b2, eps, 7);
    sgd_update(pa.data(), wa.data(), g.data(), big, 0.01f, 0.9f, true);
    set_num_threads(2);
    adam_update(pb.data(), mb.data(), vb.data(), g.data(), big, lr, b1, b2, eps, 7);
    sgd_update(pb.data(), wb.data(), g.data(), big, 0.01f, 0.9f, true);
    check(same_bits(pa, pb) && same_bits(ma, mb) && same_bits(va, vb) && same_bits(wa, wb),
          "optimizers: 1 and 2 threads identical on 2^20 values");
}

// ------------------------------------------------------------------ timing

double time_ms(const std::function<void()>& f, int reps) {
    f();  // warm up
    const auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; ++r) f();
    const auto t1 = std::chrono::steady_clock::now();
    return std::chrono::duration<double, std::milli>(t1 - t0).count() / reps;
}

void timings() {
    std::printf("timings (ms per call; 1 thread / %d threads)\n", get_num_threads());
    const int maxt = get_num_threads();
    const Window2d g2 = geometry(32, 32, 32, 64, 2, 2, false);
    const Window2d g3 = geometry(32, 32, 32, 64, 3, 2, true);
    const int64_t nin = int64_t(32) * 32 * 32 * 64;
    std::vector<float> in = uniform(nin, -1, 1), din(nin), out(nin), dout = uniform(nin, -1, 1);
    std::vector<int32_t> arg(nin);
    std::vector<float> up(nin * 4);
    const int64_t na = 1 << 22;
    std::vector<float> a = uniform(na, -3, 3), b(na), c = uniform(na, -1, 1), m(na, 0.f), v(na, 0.f);
    std::vector<int64_t> lab(256);
    for (int i = 0; i < 256; ++i) lab[i] = i % 1000;
    struct Case {
        const char* name;
        std::function<void()> f;
    };
    std::vector<Case> cases = {
        {"maxpool fwd 2x2/2 32x32x32x64", [&] { maxpool2d_forward(out.data(), arg.data(), in.data(), g2); }},
        {"maxpool bwd 2x2/2 32x32x32x64", [&] { maxpool2d_backward(din.data(), dout.data(), arg.data(), g2); }},
        {"maxpool fwd 3x3/2 same 32x32x32x64", [&] { maxpool2d_forward(out.data(), arg.data(), in.data(), g3); }},
        {"maxpool bwd 3x3/2 same 32x32x32x64", [&] { maxpool2d_backward(din.data(), dout.data(), arg.data(), g3); }},
        {"upsampling fwd 2x2 32x32x32x64", [&] { upsampling2d_forward(up.data(), in.data(), 32, 32, 32, 64, 2, 2); }},
        {"upsampling bwd 2x2 32x32x32x64", [&] { upsampling2d_backward(din.data(), up.data(), 32, 32, 32, 64, 2, 2); }},
        {"relu fwd 4M", [&] { relu_forward(b.data(), a.data(), na); }},
        {"relu bwd 4M", [&] { relu_backward(b.data(), c.data(), a.data(), na); }},
        {"sigmoid fwd 4M", [&] { sigmoid_forward(b.data(), a.data(), na); }},
        {"softmax fwd 256x1000", [&] { softmax_forward(b.data(), a.data(), 256, 1000); }},
        {"softmax bwd 256x1000", [&] { softmax_backward(b.data(), c.data(), a.data(), 256, 1000); }},
        {"softmax_xent 256x1000", [&] { softmax_cross_entropy(b.data(), a.data(), nullptr, lab.data(), 256, 1000); }},
        {"mse 4M", [&] { mean_squared_error(b.data(), a.data(), c.data(), na); }},
        {"adam 4M", [&] { adam_update(b.data(), m.data(), v.data(), c.data(), na, 1e-3f, 0.9f, 0.999f, 1e-7f, 3); }},
        {"sgd momentum 4M", [&] { sgd_update(b.data(), m.data(), c.data(), na, 0.01f, 0.9f, false); }},
    };
    for (auto& cs : cases) {
        set_num_threads(1);
        const double t1 = time_ms(cs.f, 5);
        set_num_threads(maxt);
        const double tn = time_ms(cs.f, 5);
        std::printf("  %-38s %8.3f / %8.3f\n", cs.name, t1, tn);
    }
}

}  // namespace

int main(int argc, char** argv) {
    const bool timing = !(argc > 1 && std::strcmp(argv[1], "--no-timing") == 0);
    std::printf("openmp_enabled=%d get_num_threads=%d\n", int(openmp_enabled()), get_num_threads());
    const int maxt = get_num_threads();
    check_pool();
    check_activations();
    check_losses();
    check_optimizers();
    set_num_threads(maxt);
    if (timing) timings();
    std::printf(g_failures ? "%d CHECK(S) FAILED\n" : "all checks passed\n", g_failures);
    return g_failures ? 1 : 0;
}
