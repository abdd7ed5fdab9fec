// activation.cpp: ReLU, sigmoid and softmax, forward and backward, on float32.
//
// Contract: plain C++17, no intrinsics; the loops are simple enough for the compiler to
// vectorise for the instruction set the build targets (expf stays scalar unless the build uses a
// vector math library). Backward passes take the forward *output*, as a fused layer keeps it.
// OpenMP splits only large arrays, by elements or by softmax rows; each output element is
// written by one thread, so results do not depend on the number of threads. Assumes IEEE float
// semantics (no -ffast-math): sigmoid relies on exp(-inf) == 0, ReLU lets NaN through.
#include "cnnkit.h"

#include <cmath>

namespace cnnkit {

namespace {
// Below this many values a parallel region costs more than it saves.
constexpr int64_t kParallelMin = 32768;
}  // namespace

void relu_forward(float* out, const float* inp, int64_t n) {
    // inp and out are (n,)
#ifdef _OPENMP
#pragma omp parallel for if (n > kParallelMin)
#endif
    for (int64_t i = 0; i < n; ++i) {
        const float x = inp[i];
        out[i] = x < 0.0f ? 0.0f : x;  // written this way a NaN passes through, as in np.maximum
    }
}

void relu_backward(float* dinp, const float* dout, const float* out, int64_t n) {
    // dinp, dout and out are (n,)
#ifdef _OPENMP
#pragma omp parallel for if (n > kParallelMin)
#endif
    for (int64_t i = 0; i < n; ++i) {
        // Load dout unconditionally: a select, not a branch, so the loop vectorises.
        const float d = dout[i];
        dinp[i] = out[i] > 0.0f ? d : 0.0f;
    }
}

void sigmoid_forward(float* out, const float* inp, int64_t n) {
    // inp and out are (n,)
#ifdef _OPENMP
#pragma omp parallel for if (n > kParallelMin)
#endif
    for (int64_t i = 0; i < n; ++i) {
        // exp of -|x| never overflows: 1/(1+e) for x >= 0, e/(1+e) for x < 0.
        const float x = inp[i];
        const float e = std::exp(-std::fabs(x));
        const float num = x >= 0.0f ? 1.0f : e;  // a select, not a branch on the sign
        out[i] = num / (1.0f + e);
    }
}

void sigmoid_backward(float* dinp, const float* dout, const float* out, int64_t n) {
    // dinp, dout and out are (n,)
#ifdef _OPENMP
#pragma omp parallel for if (n > kParallelMin)
#endif
    for (int64_t i = 0; i < n; ++i) dinp[i] = dout[i] * out[i] * (1.0f - out[i]);
}

void softmax_forward(float* out, const float* inp, int64_t rows, int cols) {
    // inp and out are (rows,cols)
#ifdef _OPENMP
#pragma omp parallel for if (rows * cols > kParallelMin)
#endif
    for (int64_t r = 0; r < rows; ++r) {
        const float* x = inp + r * cols;
        float* y = out + r * cols;
        float m = x[0];
        for (int k = 1; k < cols; ++k) m = x[k] > m ? x[k] : m;
        double sum = 0.0;  // double so that long rows lose nothing to rounding
        for (int k = 0; k < cols; ++k) {
            y[k] = std::exp(x[k] - m);
            sum += y[k];
        }
        const float inv = static_cast<float>(1.0 / sum);
        for (int k = 0; k < cols; ++k) y[k] *= inv;
    }
}

void softmax_backward(float* dinp, const float* dout, const float* out, int64_t rows, int cols) {
    // dinp, dout and out are (rows,cols)
#ifdef _OPENMP
#pragma omp parallel for if (rows * cols > kParallelMin)
#endif
    for (int64_t r = 0; r < rows; ++r) {
        const float* d = dout + r * cols;
        const float* y = out + r * cols;
        float* di = dinp + r * cols;
        double dot = 0.0;
        for (int k = 0; k < cols; ++k) dot += static_cast<double>(d[k]) * y[k];
        const float s = static_cast<float>(dot);
        for (int k = 0; k < cols; ++k) di[k] = y[k] * (d[k] - s);
    }
}

}  // namespace cnnkit
