// pad_crop.cpp: zero padding and cropping of the rows and columns of NHWC float32 batches
// (ZeroPadding2D, Cropping2D). Each is the other's gradient.
//
// Rows of an NHWC image are contiguous (W*C floats), so both kernels copy whole rows with memcpy.
// OpenMP splits over (image, output row); every output row is written by one thread. Arguments
// are trusted (the bindings check them).
#include "cnnkit.h"

#include <algorithm>
#include <cstring>

namespace cnnkit {

namespace {
// Below this many floats written a parallel region costs more than it saves.
constexpr int64_t kParallelMin = 32768;
}  // namespace

void pad2d(float* out, const float* inp, int N, int H, int W, int C, int PT, int PB, int PL,
           int PR) {
    // inp is (N,H,W,C), out is (N,H+PT+PB,W+PL+PR,C)
    const int OH = H + PT + PB;
    const int64_t in_row = static_cast<int64_t>(W) * C;
    const int64_t row = static_cast<int64_t>(W + PL + PR) * C;
    const int64_t left = static_cast<int64_t>(PL) * C;
#ifdef _OPENMP
#pragma omp parallel for collapse(2) if (int64_t(N) * OH * row > kParallelMin)
#endif
    for (int n = 0; n < N; ++n) {
        for (int oh = 0; oh < OH; ++oh) {
            float* o = out + (static_cast<int64_t>(n) * OH + oh) * row;
            const int h = oh - PT;
            if (h < 0 || h >= H) {
                std::fill(o, o + row, 0.0f);
                continue;
            }
            std::fill(o, o + left, 0.0f);
            std::memcpy(o + left, inp + (static_cast<int64_t>(n) * H + h) * in_row,
                        sizeof(float) * in_row);
            std::fill(o + left + in_row, o + row, 0.0f);
        }
    }
}

void crop2d(float* out, const float* inp, int N, int H, int W, int C, int CT, int CL, int OH,
            int OW) {
    // inp is (N,H,W,C), out is (N,OH,OW,C): rows CT .. CT+OH-1, columns CL .. CL+OW-1
    const int64_t row = static_cast<int64_t>(OW) * C;
#ifdef _OPENMP
#pragma omp parallel for collapse(2) if (int64_t(N) * OH * row > kParallelMin)
#endif
    for (int n = 0; n < N; ++n) {
        for (int oh = 0; oh < OH; ++oh) {
            const float* x = inp + ((static_cast<int64_t>(n) * H + oh + CT) * W + CL) * C;
            std::memcpy(out + (static_cast<int64_t>(n) * OH + oh) * row, x, sizeof(float) * row);
        }
    }
}

}  // namespace cnnkit
