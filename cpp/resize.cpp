// resize.cpp: bilinear upsampling by integer factors over NHWC float32 batches
// (UpSampling2D(interpolation="bilinear")).
//
// Keras 3 resizes with half-pixel centres and no antialiasing: output row o samples the input at
// y = (o + 0.5) / SH - 0.5, clamped to the first row at the top edge and to the last at the
// bottom (where both taps are the last row), and likewise for columns. The innermost loops run
// over the contiguous channels. OpenMP splits over (image, row); each row written by one thread.
#include "cnnkit.h"

#include <algorithm>
#include <vector>

namespace cnnkit {

namespace {

constexpr int64_t kParallelMin = 32768;

// The two input rows (or columns) an output row samples and the weight of the second.
struct Tap {
    int i0, i1;
    float frac;
};

std::vector<Tap> bilinear_taps(int out_size, int factor, int in_size) {
    std::vector<Tap> taps(static_cast<size_t>(out_size));
    for (int o = 0; o < out_size; ++o) {
        const double y = std::max((o + 0.5) / factor - 0.5, 0.0);
        const int i0 = std::min(static_cast<int>(y), in_size - 1);
        const int i1 = std::min(i0 + 1, in_size - 1);
        // Past the last row both taps name it: give it all the weight.
        taps[static_cast<size_t>(o)] = {i0, i1, i1 == i0 ? 0.0f : static_cast<float>(y - i0)};
    }
    return taps;
}

}  // namespace

void upsampling2d_bilinear_forward(float* out, const float* inp, int N, int H, int W, int C,
                                   int SH, int SW) {
    // inp is (N,H,W,C), out is (N,H*SH,W*SW,C)
    const int OH = H * SH, OW = W * SW;
    const std::vector<Tap> ty = bilinear_taps(OH, SH, H), tx = bilinear_taps(OW, SW, W);
    const int64_t in_row = static_cast<int64_t>(W) * C, row = static_cast<int64_t>(OW) * C;
#ifdef _OPENMP
#pragma omp parallel for collapse(2) if (int64_t(N) * OH * row > kParallelMin)
#endif
    for (int n = 0; n < N; ++n) {
        for (int oh = 0; oh < OH; ++oh) {
            const Tap& y = ty[static_cast<size_t>(oh)];
            const float* img = inp + static_cast<int64_t>(n) * H * in_row;
            const float *r0 = img + y.i0 * in_row, *r1 = img + y.i1 * in_row;
            const float fy = y.frac, gy = 1.0f - fy;
            float* o = out + (static_cast<int64_t>(n) * OH + oh) * row;
            for (int ow = 0; ow < OW; ++ow) {
                const Tap& x = tx[static_cast<size_t>(ow)];
                const float fx = x.frac, gx = 1.0f - fx;
                const float *a = r0 + x.i0 * int64_t(C), *b = r0 + x.i1 * int64_t(C);
                const float *c0 = r1 + x.i0 * int64_t(C), *d = r1 + x.i1 * int64_t(C);
                float* oc = o + static_cast<int64_t>(ow) * C;
                for (int c = 0; c < C; ++c)
                    oc[c] = gy * (gx * a[c] + fx * b[c]) + fy * (gx * c0[c] + fx * d[c]);
            }
        }
    }
}

void upsampling2d_bilinear_backward(float* dinp, const float* dout, int N, int H, int W, int C,
                                    int SH, int SW) {
    // dinp is (N,H,W,C), dout is (N,H*SH,W*SW,C): the transpose of the forward sampling.
    const int OH = H * SH, OW = W * SW;
    const std::vector<Tap> ty = bilinear_taps(OH, SH, H), tx = bilinear_taps(OW, SW, W);
    const int64_t in_row = static_cast<int64_t>(W) * C, row = static_cast<int64_t>(OW) * C;
    // Gathered by input row: the output rows sampling input row h lie in [(h-1)*SH, (h+2)*SH),
    // so the thread owning row (n, h) adds their shares alone, without atomics.
#ifdef _OPENMP
#pragma omp parallel for collapse(2) if (int64_t(N) * OH * row > kParallelMin)
#endif
    for (int n = 0; n < N; ++n) {
        for (int h = 0; h < H; ++h) {
            float* di = dinp + (static_cast<int64_t>(n) * H + h) * in_row;
            std::fill(di, di + in_row, 0.0f);
            const int oh_lo = std::max(0, (h - 1) * SH), oh_hi = std::min(OH, (h + 2) * SH);
            for (int oh = oh_lo; oh < oh_hi; ++oh) {
                const Tap& y = ty[static_cast<size_t>(oh)];
                const float wy = (y.i0 == h ? 1.0f - y.frac : 0.0f) + (y.i1 == h ? y.frac : 0.0f);
                if (y.i0 != h && y.i1 != h) continue;
                const float* d_row = dout + (static_cast<int64_t>(n) * OH + oh) * row;
                for (int ow = 0; ow < OW; ++ow) {
                    const Tap& x = tx[static_cast<size_t>(ow)];
                    const float w0 = wy * (1.0f - x.frac), w1 = wy * x.frac;
                    const float* d = d_row + static_cast<int64_t>(ow) * C;
                    // Two loops: at the right edge both taps are the same column.
                    float* x0 = di + x.i0 * int64_t(C);
                    for (int c = 0; c < C; ++c) x0[c] += w0 * d[c];
                    float* x1 = di + x.i1 * int64_t(C);
                    for (int c = 0; c < C; ++c) x1[c] += w1 * d[c];
                }
            }
        }
    }
}

}  // namespace cnnkit
