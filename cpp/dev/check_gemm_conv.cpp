// check_gemm_conv.cpp: dev harness for gemm/conv2d/dense, not part of the Python module.
// Checks the fast kernels against the naive ones over many shapes, every ISA this CPU runs and
// 1 and 2 threads, then times them at the CIFAR-10 CNN shapes.
//   g++ -std=c++17 -O3 -fopenmp -march=native cpp/cpu_features.cpp cpp/gemm.cpp cpp/conv/*.cpp
//       cpp/dense.cpp cpp/activation.cpp cpp/dev/check_gemm_conv.cpp -o /tmp/check  &&  /tmp/check [check|bench [reps]|all]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "../cnnkit.h"

using namespace cnnkit;
using Vec = std::vector<float>;

static std::mt19937 rng(1234);
static Vec randv(size_t n) {
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    Vec v(n);
    for (auto& x : v) x = u(rng);
    return v;
}
static int randi(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

// Error of a against the reference r, relative to the reference's largest magnitude.
static double relerr(const Vec& a, const Vec& r) {
    double m = 1e-30, e = 0;
    for (size_t i = 0; i < r.size(); ++i) {
        m = std::max(m, (double)std::fabs(r[i]));
        e = std::max(e, (double)std::fabs(a[i] - r[i]));
        if (std::isnan(a[i])) e = INFINITY;
    }
    return e / m;
}

static double g_worst = 0;
static int g_cases = 0, g_fail = 0;
static const double kTol = 2e-5;

static void report(const char* what, const std::string& desc, double err) {
    ++g_cases;
    g_worst = std::max(g_worst, err);
    if (!(err <= kTol)) {
        ++g_fail;
        std::printf("FAIL %s %s err=%.3g\n", what, desc.c_str(), err);
    }
}

static void check_conv(const Window2d& g, int OC, bool use_bias) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "N%d H%d W%d C%d K%dx%d S%dx%d P%d,%d O%dx%d OC%d isa=%s T=%d",
                  g.N, g.H, g.W, g.C, g.KH, g.KW, g.SH, g.SW, g.PT, g.PL, g.OH, g.OW, OC,
                  simd_isa(), omp_get_max_threads());
    const size_t ni = (size_t)g.N * g.H * g.W * g.C, nw = (size_t)g.KH * g.KW * g.C * OC,
                 no = (size_t)g.N * g.OH * g.OW * OC;
    Vec inp = randv(ni), w = randv(nw), b = randv(OC), dout = randv(no);
    Vec o1(no, 7.f), o2(no, -7.f);
    conv2d_forward(o1.data(), inp.data(), w.data(), use_bias ? b.data() : nullptr, g, OC);
    conv2d_forward_naive(o2.data(), inp.data(), w.data(), use_bias ? b.data() : nullptr, g, OC);
    report("conv fwd", buf, relerr(o1, o2));
    Vec di1(ni, 7.f), di2(ni, -7.f), dw1(nw, 7.f), dw2(nw, -7.f), db1(OC, 7.f), db2(OC, -7.f);
    conv2d_backward(di1.data(), dw1.data(), db1.data(), dout.data(), inp.data(), w.data(), g, OC);
    conv2d_backward_naive(di2.data(), dw2.data(), db2.data(), dout.data(), inp.data(), w.data(), g, OC);
    report("conv dinp", buf, relerr(di1, di2));
    report("conv dweight", buf, relerr(dw1, dw2));
    report("conv dbias", buf, relerr(db1, db2));
    // Null outputs: each gradient alone must match too.
    Vec a(ni, 3.f), c(nw, 3.f), d(OC, 3.f);
    conv2d_backward(a.data(), nullptr, nullptr, dout.data(), inp.data(), w.data(), g, OC);
    conv2d_backward(nullptr, c.data(), nullptr, dout.data(), inp.data(), w.data(), g, OC);
    conv2d_backward(nullptr, nullptr, d.data(), dout.data(), inp.data(), w.data(), g, OC);
    report("conv dinp-only", buf, relerr(a, di2));
    report("conv dweight-only", buf, relerr(c, dw2));
    report("conv dbias-only", buf, relerr(d, db2));
}

// Dilated and grouped convolutions (the grouped GEMM, or the depthwise kernels when groups == C)
// and depthwise convolutions against the naive loops.
static void check_conv_general(const Window2d& g, int OC, int groups, int DM) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "N%d H%d W%d C%d K%dx%d S%dx%d D%dx%d P%d,%d O%dx%d OC%d G%d DM%d isa=%s T=%d",
                  g.N, g.H, g.W, g.C, g.KH, g.KW, g.SH, g.SW, g.DH, g.DW, g.PT, g.PL, g.OH, g.OW,
                  OC, groups, DM, simd_isa(), omp_get_max_threads());
    const bool dw = DM > 0;  // a depthwise case: OC = C * DM
    if (dw) OC = g.C * DM;
    const size_t ni = (size_t)g.N * g.H * g.W * g.C, no = (size_t)g.N * g.OH * g.OW * OC,
                 nw = (size_t)g.KH * g.KW * (dw ? g.C * DM : g.C / groups * OC);
    Vec inp = randv(ni), w = randv(nw), b = randv(OC), dout = randv(no);
    Vec o1(no, 7.f), o2(no, -7.f), di1(ni, 7.f), di2(ni, -7.f), dw1(nw, 7.f), dw2(nw, -7.f),
        db1(OC, 7.f), db2(OC, -7.f);
    if (dw) {
        depthwise_conv2d_forward(o1.data(), inp.data(), w.data(), b.data(), g, DM, true);
        depthwise_conv2d_forward_naive(o2.data(), inp.data(), w.data(), b.data(), g, DM, true);
        depthwise_conv2d_backward(di1.data(), dw1.data(), db1.data(), dout.data(), inp.data(), w.data(), g, DM);
        depthwise_conv2d_backward_naive(di2.data(), dw2.data(), db2.data(), dout.data(), inp.data(), w.data(), g, DM);
    } else {
        conv2d_forward(o1.data(), inp.data(), w.data(), b.data(), g, OC, true, groups);
        conv2d_forward_naive(o2.data(), inp.data(), w.data(), b.data(), g, OC, true, groups);
        conv2d_backward(di1.data(), dw1.data(), db1.data(), dout.data(), inp.data(), w.data(), g, OC, groups);
        conv2d_backward_naive(di2.data(), dw2.data(), db2.data(), dout.data(), inp.data(), w.data(), g, OC, groups);
    }
    report(dw ? "depthwise fwd" : "conv-general fwd", buf, relerr(o1, o2));
    report(dw ? "depthwise dinp" : "conv-general dinp", buf, relerr(di1, di2));
    report(dw ? "depthwise dweight" : "conv-general dweight", buf, relerr(dw1, dw2));
    report(dw ? "depthwise dbias" : "conv-general dbias", buf, relerr(db1, db2));
}

static void check_dense(int B, int IN, int OUT, bool use_bias) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "B%d IN%d OUT%d isa=%s T=%d", B, IN, OUT, simd_isa(),
                  omp_get_max_threads());
    Vec inp = randv((size_t)B * IN), w = randv((size_t)IN * OUT), b = randv(OUT),
        dout = randv((size_t)B * OUT);
    Vec o1((size_t)B * OUT, 7.f), o2((size_t)B * OUT, -7.f);
    dense_forward(o1.data(), inp.data(), w.data(), use_bias ? b.data() : nullptr, B, IN, OUT);
    dense_forward_naive(o2.data(), inp.data(), w.data(), use_bias ? b.data() : nullptr, B, IN, OUT);
    report("dense fwd", buf, relerr(o1, o2));
    Vec di1((size_t)B * IN, 7.f), di2((size_t)B * IN, -7.f), dw1((size_t)IN * OUT, 7.f),
        dw2((size_t)IN * OUT, -7.f), db1(OUT, 7.f), db2(OUT, -7.f);
    dense_backward(di1.data(), dw1.data(), db1.data(), dout.data(), inp.data(), w.data(), B, IN, OUT);
    dense_backward_naive(di2.data(), dw2.data(), db2.data(), dout.data(), inp.data(), w.data(), B, IN, OUT);
    report("dense dinp", buf, relerr(di1, di2));
    report("dense dweight", buf, relerr(dw1, dw2));
    report("dense dbias", buf, relerr(db1, db2));
    Vec a((size_t)B * IN, 3.f);
    dense_backward(a.data(), nullptr, nullptr, dout.data(), inp.data(), w.data(), B, IN, OUT);
    report("dense dinp-only", buf, relerr(a, di2));
}

// Geometry helpers: Keras 'valid' and 'same', and explicit top/left + bottom/right padding.
static Window2d valid(int N, int H, int W, int C, int KH, int KW, int SH, int SW) {
    return Window2d{N, H, W, C, KH, KW, SH, SW, 0, 0, (H - KH) / SH + 1, (W - KW) / SW + 1};
}
static Window2d same(int N, int H, int W, int C, int KH, int KW, int SH, int SW) {
    const int OH = (H + SH - 1) / SH, OW = (W + SW - 1) / SW;
    const int ph = std::max((OH - 1) * SH + KH - H, 0), pw = std::max((OW - 1) * SW + KW - W, 0);
    return Window2d{N, H, W, C, KH, KW, SH, SW, ph / 2, pw / 2, OH, OW};
}
static Window2d padded(int N, int H, int W, int C, int KH, int KW, int SH, int SW, int PT, int PB,
                       int PL, int PR) {
    return Window2d{N, H, W, C, KH, KW, SH, SW, PT, PL, (H + PT + PB - KH) / SH + 1,
                    (W + PL + PR - KW) / SW + 1};
}

static void run_checks() {
    std::vector<std::pair<Window2d, int>> cases = {
        {valid(1, 1, 1, 1, 1, 1, 1, 1), 1},
        {valid(1, 5, 5, 1, 1, 1, 1, 1), 1},
        {valid(2, 7, 6, 3, 1, 1, 2, 3), 5},
        {valid(1, 5, 5, 1, 5, 5, 1, 1), 1},      // kernel as large as the input
        {padded(1, 3, 4, 2, 5, 6, 1, 1, 1, 1, 1, 1), 3},  // kernel as large as the padded input
        {padded(2, 2, 2, 3, 4, 4, 1, 1, 1, 1, 1, 1), 7},
        {valid(3, 9, 11, 4, 3, 3, 2, 2), 17},
        {valid(2, 10, 10, 5, 3, 2, 3, 3), 33},
        {same(2, 8, 8, 3, 2, 2, 1, 1), 8},       // even kernels, 'same'
        {same(2, 9, 7, 3, 4, 4, 1, 1), 6},
        {same(2, 9, 9, 2, 4, 2, 2, 2), 16},
        {same(1, 10, 11, 3, 3, 3, 2, 2), 32},
        {same(1, 11, 10, 2, 5, 5, 3, 3), 12},
        {same(1, 7, 7, 3, 6, 6, 3, 2), 9},
        {same(3, 16, 16, 16, 3, 3, 1, 1), 64},
        {valid(2, 32, 32, 3, 3, 3, 1, 1), 32},   // CIFAR first layer, small batch
        {valid(2, 15, 15, 32, 3, 3, 1, 1), 64},  // CIFAR second layer
        {valid(1, 12, 12, 64, 5, 5, 1, 1), 100}, // K = 1600: several KC blocks
        {same(2, 9, 9, 130, 3, 3, 1, 1), 7},     // K = 1170, OC < NR
        {valid(1, 4, 300, 2, 1, 3, 1, 1), 3},    // long rows: M blocks within an image
        {padded(1, 6, 6, 3, 3, 3, 1, 2, 2, 0, 0, 2), 5},
        {padded(70, 3, 3, 1, 2, 2, 1, 1, 0, 0, 0, 0), 2},  // many images, tiny each
    };
    for (int i = 0; i < 60; ++i) {
        const int N = randi(1, 4), H = randi(1, 14), W = randi(1, 14), C = randi(1, 20);
        const int SH = randi(1, 3), SW = randi(1, 3), OC = randi(1, 40);
        const int mode = randi(0, 2);
        if (mode == 0) {
            const int KH = randi(1, H), KW = randi(1, W);
            cases.push_back({valid(N, H, W, C, KH, KW, SH, SW), OC});
        } else if (mode == 1) {
            cases.push_back({same(N, H, W, C, randi(1, 6), randi(1, 6), SH, SW), OC});
        } else {
            const int KH = randi(1, 5), KW = randi(1, 5);
            const int PT = randi(0, KH - 1), PL = randi(0, KW - 1);
            const int PB = std::max(randi(0, KH - 1), KH - H - PT), PR = std::max(randi(0, KW - 1), KW - W - PL);
            cases.push_back({padded(N, H, W, C, KH, KW, SH, SW, PT, PB, PL, PR), OC});
        }
    }
    std::vector<std::tuple<int, int, int>> dcases = {
        {1, 1, 1}, {1, 7, 3}, {3, 1, 5}, {2, 5, 1}, {64, 2304, 128}, {64, 128, 10},
        {5, 300, 17}, {100, 33, 70}, {13, 600, 1}, {1, 1000, 1000}, {257, 31, 65}};
    for (int i = 0; i < 30; ++i) dcases.push_back({randi(1, 80), randi(1, 300), randi(1, 150)});

    // (geometry with dilation, OC, groups, DM): DM > 0 is a depthwise case.
    std::vector<std::tuple<Window2d, int, int, int>> gcases;
    for (int i = 0; i < 40; ++i) {
        const int N = randi(1, 3), H = randi(1, 12), W = randi(1, 12), G = randi(1, 4);
        const int C = G * randi(1, 12), KH = randi(1, 5), KW = randi(1, 5);
        const bool dilate = randi(0, 1);
        const int S = dilate ? 1 : randi(1, 3), DH = dilate ? randi(1, 3) : 1, DW = dilate ? randi(1, 3) : 1;
        Window2d g = same(N, H, W, C, (KH - 1) * DH + 1, (KW - 1) * DW + 1, S, S);
        g.KH = KH, g.KW = KW, g.DH = DH, g.DW = DW;
        gcases.push_back({g, G * randi(1, 12), G, 0});
        gcases.push_back({g, 0, 1, i % 4 == 0 ? 2 : 1});
    }
    gcases.push_back({same(2, 32, 32, 32, 3, 3, 1, 1), 0, 1, 1});   // MobileNet-style blocks
    gcases.push_back({same(2, 16, 16, 64, 3, 3, 2, 2), 0, 1, 1});
    gcases.push_back({same(2, 8, 8, 24, 5, 5, 1, 1), 0, 1, 1});

    const char* isas[] = {"generic", "avx2", "avx512"};
    for (const char* isa : isas) {
        if (!set_simd_isa(isa)) {
            std::printf("isa %s: not runnable here, skipped\n", isa);
            continue;
        }
        for (int T : {1, 2, 3}) {
            omp_set_num_threads(T);
            int k = 0;
            for (auto& [g, oc] : cases) check_conv(g, oc, (k++) % 3 != 0);
            for (auto& [b, in, out] : dcases) check_dense(b, in, out, (k++) % 3 != 0);
            for (auto& [g, oc, groups, dm] : gcases) check_conv_general(g, oc, groups, dm);
        }
        std::printf("isa %s: %d checks so far, %d failed, worst rel err %.3g\n", isa, g_cases,
                    g_fail, g_worst);
    }
}

// ---------------------------------------------------------------- timing
template <class F>
static double best_seconds(F f, int reps) {
    f();  // warm the buffers
    double best = 1e30;
    for (int r = 0; r < reps; ++r) {
        auto t0 = std::chrono::steady_clock::now();
        f();
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return best;
}

static void bench_conv(const char* name, const Window2d& g, int OC, int reps) {
    const size_t ni = (size_t)g.N * g.H * g.W * g.C, nw = (size_t)g.KH * g.KW * g.C * OC,
                 no = (size_t)g.N * g.OH * g.OW * OC;
    Vec inp = randv(ni), w = randv(nw), b = randv(OC), dout = randv(no), out(no), di(ni), dw(nw), db(OC);
    const double fl = 2.0 * g.N * g.OH * g.OW * OC * g.KH * g.KW * g.C;
    double tf = best_seconds([&] { conv2d_forward(out.data(), inp.data(), w.data(), b.data(), g, OC); }, reps);
    double tw = best_seconds([&] { conv2d_backward(nullptr, dw.data(), db.data(), dout.data(), inp.data(), w.data(), g, OC); }, reps);
    double ti = best_seconds([&] { conv2d_backward(di.data(), nullptr, nullptr, dout.data(), inp.data(), w.data(), g, OC); }, reps);
    double tn = best_seconds([&] { conv2d_forward_naive(out.data(), inp.data(), w.data(), b.data(), g, OC); }, 1);
    std::printf("%-26s fwd %6.1f  dweight %6.1f  dinp %6.1f  (naive fwd %5.1f) GFLOP/s\n", name,
                fl / tf * 1e-9, fl / tw * 1e-9, fl / ti * 1e-9, fl / tn * 1e-9);
}

static void bench_dense(const char* name, int B, int IN, int OUT, int reps) {
    Vec inp = randv((size_t)B * IN), w = randv((size_t)IN * OUT), b = randv(OUT),
        dout = randv((size_t)B * OUT), out((size_t)B * OUT), di((size_t)B * IN), dw((size_t)IN * OUT), db(OUT);
    const double fl = 2.0 * B * IN * OUT;
    double tf = best_seconds([&] { dense_forward(out.data(), inp.data(), w.data(), b.data(), B, IN, OUT); }, reps);
    double tw = best_seconds([&] { dense_backward(nullptr, dw.data(), db.data(), dout.data(), inp.data(), w.data(), B, IN, OUT); }, reps);
    double ti = best_seconds([&] { dense_backward(di.data(), nullptr, nullptr, dout.data(), inp.data(), w.data(), B, IN, OUT); }, reps);
    std::printf("%-26s fwd %6.1f  dweight %6.1f  dinp %6.1f  GFLOP/s\n", name, fl / tf * 1e-9,
                fl / tw * 1e-9, fl / ti * 1e-9);
}

static void bench_square(int n, int reps) {
    // A plain square GEMM through dense (no bias): the kernel's ceiling.
    Vec a = randv((size_t)n * n), w = randv((size_t)n * n), o((size_t)n * n);
    double t = best_seconds([&] { dense_forward(o.data(), a.data(), w.data(), nullptr, n, n, n); }, reps);
    std::printf("%-26s %6.1f GFLOP/s\n", ("square gemm " + std::to_string(n)).c_str(), 2.0 * n * n * n / t * 1e-9);
}

// Depthwise (DM = 1) reads and writes about as many floats as it multiplies: GB/s of the
// input and output it streams say more than GFLOP/s.
static void bench_depthwise(const char* name, const Window2d& g, int reps) {
    const size_t ni = (size_t)g.N * g.H * g.W * g.C, nw = (size_t)g.KH * g.KW * g.C,
                 no = (size_t)g.N * g.OH * g.OW * g.C;
    Vec inp = randv(ni), w = randv(nw), b = randv(g.C), dout = randv(no), out(no), di(ni), dw(nw), db(g.C);
    const double bytes = 4.0 * (ni + no);
    double tf = best_seconds([&] { depthwise_conv2d_forward(out.data(), inp.data(), w.data(), b.data(), g, 1); }, reps);
    double tw = best_seconds([&] { depthwise_conv2d_backward(nullptr, dw.data(), db.data(), dout.data(), inp.data(), w.data(), g, 1); }, reps);
    double ti = best_seconds([&] { depthwise_conv2d_backward(di.data(), nullptr, nullptr, dout.data(), inp.data(), w.data(), g, 1); }, reps);
    double tn = best_seconds([&] { depthwise_conv2d_forward_naive(out.data(), inp.data(), w.data(), b.data(), g, 1); }, 1);
    std::printf("%-26s fwd %6.1f  dweight %6.1f  dinp %6.1f  (naive fwd %5.1f) GB/s\n", name,
                bytes / tf * 1e-9, bytes / tw * 1e-9, bytes / ti * 1e-9, bytes / tn * 1e-9);
}

static void run_bench(int reps) {
    for (const char* isa : {"avx2", "generic"}) {
        if (!set_simd_isa(isa)) continue;
        for (int T : {1, 2}) {
            omp_set_num_threads(T);
            std::printf("-- isa=%s threads=%d\n", simd_isa(), T);
            bench_conv("conv 32x32x3->32 3x3", valid(64, 32, 32, 3, 3, 3, 1, 1), 32, reps);
            bench_conv("conv 15x15x32->64 3x3", valid(64, 15, 15, 32, 3, 3, 1, 1), 64, reps);
            bench_dense("dense 2304->128", 64, 2304, 128, reps);
            bench_dense("dense 128->10", 64, 128, 10, reps);
            bench_square(512, reps);
            bench_depthwise("depthwise 32x32x64 3x3", same(64, 32, 32, 64, 3, 3, 1, 1), reps);
            bench_depthwise("depthwise 32x32x64 3x3 s2", same(64, 32, 32, 64, 3, 3, 2, 2), reps);
            bench_conv("pointwise 32x32x64->128", valid(64, 32, 32, 64, 1, 1, 1, 1), 128, reps);
        }
    }
}

int main(int argc, char** argv) {
    const std::string mode = argc > 1 ? argv[1] : "all";
    std::printf("simd_isa at load: %s, max threads %d\n", simd_isa(), omp_get_max_threads());
    if (mode == "check" || mode == "all") run_checks();
    if (mode == "bench" || mode == "all") run_bench(argc > 2 ? std::atoi(argv[2]) : 10);
    if (g_fail) std::printf("%d FAILED of %d\n", g_fail, g_cases);
    return g_fail ? 1 : 0;
}
