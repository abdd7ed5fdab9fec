// dense.cpp: fully connected layer, out = inp @ weight + bias, forward and backward.
//
// The fast versions are GEMMs on the packed kernels of gemm.h (whichever micro-kernel simd_isa()
// names); the naive versions are the direct loops, kept as the reference and fallback.
// OpenMP: parallel for over outer loops only, each output element written by one thread.
#include <algorithm>

#include "cnnkit.h"
#include "gemm.h"

namespace cnnkit {

void dense_forward(float* out, const float* inp, const float* weight, const float* bias,
                   int B, int IN, int OUT, bool relu) {
    // inp is (B,IN), weight is (IN,OUT), bias is (OUT) or null, out is (B,OUT)
    // gemm_parallel splits the batch rows, and the columns too when the batch is small.
    gemm::gemm_parallel(B, OUT, IN, gemm::MatView{inp, IN}, false, gemm::MatView{weight, OUT},
                        false, out, OUT, false, bias, relu);
}

void dense_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                    const float* inp, const float* weight, int B, int IN, int OUT) {
    // dout is (B,OUT), inp and dinp (B,IN), weight and dweight (IN,OUT), dbias (OUT)
    if (dweight)  // inp^T * dout, split over the IN rows
        gemm::gemm_parallel(IN, OUT, B, gemm::MatView{inp, IN}, true, gemm::MatView{dout, OUT},
                            false, dweight, OUT, false, nullptr);
    if (dinp)  // dout * weight^T, split over the batch rows
        gemm::gemm_parallel(B, IN, OUT, gemm::MatView{dout, OUT}, false,
                            gemm::MatView{weight, OUT}, true, dinp, IN, false, nullptr);
    if (dbias) {
        // Column sums, split over column blocks so each dbias entry has one writer.
        constexpr int CB = 64;
        const int nblk = (OUT + CB - 1) / CB;
#pragma omp parallel for schedule(static) if ((int64_t)B * OUT > 65536)
        for (int jb = 0; jb < nblk; ++jb) {
            const int j0 = jb * CB, j1 = std::min(OUT, j0 + CB);
            std::fill(dbias + j0, dbias + j1, 0.f);
            for (int b = 0; b < B; ++b) {
                const float* d = dout + (int64_t)b * OUT;
                for (int j = j0; j < j1; ++j) dbias[j] += d[j];
            }
        }
    }
}

void dense_forward_naive(float* out, const float* inp, const float* weight, const float* bias,
                         int B, int IN, int OUT, bool relu) {
    // inp is (B,IN), weight is (IN,OUT), bias is (OUT) or null, out is (B,OUT)
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; ++b) {
        float* o = out + (int64_t)b * OUT;
        for (int j = 0; j < OUT; ++j) o[j] = bias ? bias[j] : 0.f;
        for (int i = 0; i < IN; ++i) {
            const float x = inp[(int64_t)b * IN + i];
            const float* w = weight + (int64_t)i * OUT;
            for (int j = 0; j < OUT; ++j) o[j] += x * w[j];
        }
    }
    if (relu) relu_forward(out, out, (int64_t)B * OUT);  // the reference: unfused, in place
}

void dense_backward_naive(float* dinp, float* dweight, float* dbias, const float* dout,
                          const float* inp, const float* weight, int B, int IN, int OUT) {
    // dout is (B,OUT), inp and dinp (B,IN), weight and dweight (IN,OUT), dbias (OUT)
    if (dinp) {
#pragma omp parallel for schedule(static)
        for (int b = 0; b < B; ++b) {
            const float* d = dout + (int64_t)b * OUT;
            for (int i = 0; i < IN; ++i) {
                const float* w = weight + (int64_t)i * OUT;
                float s = 0.f;
                for (int j = 0; j < OUT; ++j) s += d[j] * w[j];
                dinp[(int64_t)b * IN + i] = s;
            }
        }
    }
    if (dweight) {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < IN; ++i) {
            float* dw = dweight + (int64_t)i * OUT;
            std::fill(dw, dw + OUT, 0.f);
            for (int b = 0; b < B; ++b) {
                const float x = inp[(int64_t)b * IN + i];
                const float* d = dout + (int64_t)b * OUT;
                for (int j = 0; j < OUT; ++j) dw[j] += x * d[j];
            }
        }
    }
    if (dbias) {
        std::fill(dbias, dbias + OUT, 0.f);
        for (int b = 0; b < B; ++b)
            for (int j = 0; j < OUT; ++j) dbias[j] += dout[(int64_t)b * OUT + j];
    }
}

}  // namespace cnnkit
