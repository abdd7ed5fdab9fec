// augment.cpp: data augmentation over NHWC float32 batches, each image with its own parameters:
// flips, affine resampling (translation, rotation, zoom and resizing all use it, as in Keras),
// crops and contrast, each a forward/backward pair.
//
// Contract: plain C++17, no intrinsics; inner loops run over channels. OpenMP parallelises over
// images or output rows so that every output element is written by one thread; a backward pass
// that scatters gives each image's input gradient to a single thread. No atomics; results do
// not depend on the number of threads. Arguments are trusted (the bindings check them): sizes
// positive, matrices finite, crop windows inside their image, lo <= hi.
//
// Affine sampling works in pixel indices: output pixel (x, y) (column, row) reads the input at
// x_in = m0*x + m1*y + m2, y_in = m3*x + m4*y + m5 (Keras' and TensorFlow's convention). The
// input is first extended beyond its edges by the fill mode, on the pixel grid:
//   reflect  (d c b a | a b c d | d c b a)    wrap     (a b c d | a b c d | a b c d)
//   nearest  (a a a a | a b c d | d d d d)    constant (k k k k | a b c d | k k k k)
// then sampled at (x_in, y_in): bilinear blends the 4 surrounding pixels, nearest takes the
// pixel at floor(v + 0.5) on each axis. Coordinates are computed in double.
#include "cnnkit.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace cnnkit {

namespace {

// Below this much work a parallel region costs more than it saves.
constexpr int64_t kParallelMin = 32768;

// ---------------------------------------------------------------- affine sampling helpers
// The input position that position i (any integer) of the extended signal of n pixels reads;
// -1 for the constant fill.
inline int64_t extend(int64_t i, int64_t n, int fill) {
    if (i >= 0 && i < n) return i;
    switch (fill) {
        case kFillReflect: {
            const int64_t period = 2 * n;
            int64_t m = i % period;
            if (m < 0) m += period;
            return m < n ? m : period - 1 - m;
        }
        case kFillWrap: {
            const int64_t m = i % n;
            return m < 0 ? m + n : m;
        }
        case kFillNearest:
            return i < 0 ? 0 : n - 1;
        default:
            return -1;
    }
}

// The pixels that coordinate v reads along one axis, and their weights. Nearest sampling uses
// i0 only (w0 = 1).
struct Tap {
    int64_t i0, i1;
    float w0, w1;
};

// Far outside any image, so that converting a coordinate to an integer is always defined.
constexpr double kFar = 1e12;

template <bool kBilinear>
inline Tap tap(double v, int64_t n, int fill) {
    v = std::min(std::max(v, -kFar), kFar);
    if (!kBilinear) {
        const int64_t i = static_cast<int64_t>(std::floor(v + 0.5));
        return {extend(i, n, fill), -1, 1.0f, 0.0f};
    }
    const double f = std::floor(v);
    const int64_t i = static_cast<int64_t>(f);
    const float w1 = static_cast<float>(v - f);
    return {extend(i, n, fill), extend(i + 1, n, fill), 1.0f - w1, w1};
}

// One output pixel o (C,) from img (H,W,C) at taps ty (rows) and tx (columns).
template <bool kBilinear>
inline void sample(float* o, const float* img, int64_t W, int64_t C, const Tap& ty, const Tap& tx,
                   float fill) {
    if (!kBilinear) {
        if (ty.i0 < 0 || tx.i0 < 0) {
            std::fill(o, o + C, fill);
        } else {
            const float* p = img + (ty.i0 * W + tx.i0) * C;
            for (int64_t c = 0; c < C; ++c) o[c] = p[c];
        }
        return;
    }
    const float wy0 = ty.w0, wy1 = ty.w1, wx0 = tx.w0, wx1 = tx.w1;
    if (ty.i0 >= 0 && ty.i1 >= 0 && tx.i0 >= 0 && tx.i1 >= 0) {  // all four inside: no fill
        const float* p00 = img + (ty.i0 * W + tx.i0) * C;
        const float* p01 = img + (ty.i0 * W + tx.i1) * C;
        const float* p10 = img + (ty.i1 * W + tx.i0) * C;
        const float* p11 = img + (ty.i1 * W + tx.i1) * C;
        for (int64_t c = 0; c < C; ++c)
            o[c] = wy0 * (wx0 * p00[c] + wx1 * p01[c]) + wy1 * (wx0 * p10[c] + wx1 * p11[c]);
        return;
    }
    const auto at = [&](int64_t iy, int64_t ix) {
        return iy >= 0 && ix >= 0 ? img + (iy * W + ix) * C : nullptr;
    };
    const float *p00 = at(ty.i0, tx.i0), *p01 = at(ty.i0, tx.i1);
    const float *p10 = at(ty.i1, tx.i0), *p11 = at(ty.i1, tx.i1);
    for (int64_t c = 0; c < C; ++c) {
        const float a = p00 ? p00[c] : fill, b = p01 ? p01[c] : fill;
        const float d = p10 ? p10[c] : fill, e = p11 ? p11[c] : fill;
        o[c] = wy0 * (wx0 * a + wx1 * b) + wy1 * (wx0 * d + wx1 * e);
    }
}

// The transpose of sample: adds the weighted gradient g (C,) to the pixels the taps read.
// Constant-fill taps read no pixel, so they get nothing.
template <bool kBilinear>
inline void scatter(float* dimg, const float* g, int64_t W, int64_t C, const Tap& ty,
                    const Tap& tx) {
    const auto add = [&](int64_t iy, int64_t ix, float w) {
        if (iy < 0 || ix < 0) return;
        float* p = dimg + (iy * W + ix) * C;
        for (int64_t c = 0; c < C; ++c) p[c] += w * g[c];
    };
    if (!kBilinear) {
        add(ty.i0, tx.i0, 1.0f);
        return;
    }
    add(ty.i0, tx.i0, ty.w0 * tx.w0);
    add(ty.i0, tx.i1, ty.w0 * tx.w1);
    add(ty.i1, tx.i0, ty.w1 * tx.w0);
    add(ty.i1, tx.i1, ty.w1 * tx.w1);
}

// Every output pixel computes its own coordinates: any matrix (rotation, shear). Also the
// reference the separable path is checked against.
template <bool kBilinear>
void affine_general(float* out, const float* inp, const float* matrices, const AffineGeometry& g,
                    int fill, float fill_value) {
    // inp is (N,H,W,C), out is (N,OH,OW,C), matrices is (N,6)
    const int64_t C = g.C, in_img = static_cast<int64_t>(g.H) * g.W * C;
#ifdef _OPENMP
#pragma omp parallel for collapse(2) if (int64_t(g.N) * g.OH * g.OW * C > kParallelMin)
#endif
    for (int n = 0; n < g.N; ++n) {
        for (int oy = 0; oy < g.OH; ++oy) {
            const float* m = matrices + 6 * static_cast<int64_t>(n);
            const double x0 = double(m[1]) * oy + m[2], y0 = double(m[4]) * oy + m[5];
            float* o = out + ((static_cast<int64_t>(n) * g.OH + oy) * g.OW) * C;
            for (int ox = 0; ox < g.OW; ++ox, o += C) {
                const Tap tx = tap<kBilinear>(double(m[0]) * ox + x0, g.W, fill);
                const Tap ty = tap<kBilinear>(double(m[3]) * ox + y0, g.H, fill);
                sample<kBilinear>(o, inp + n * in_img, g.W, C, ty, tx, fill_value);
            }
        }
    }
}

// Axis-aligned matrices (m1 = m3 = 0: translation, zoom, resizing): a column's taps are the same
// on every row, so they are computed once per image, and a row's once per row.
template <bool kBilinear>
void affine_separable(float* out, const float* inp, const float* matrices, const AffineGeometry& g,
                      int fill, float fill_value) {
    // inp is (N,H,W,C), out is (N,OH,OW,C), matrices is (N,6) with m1 = m3 = 0
    const int64_t C = g.C, in_img = static_cast<int64_t>(g.H) * g.W * C;
    std::vector<Tap> columns(static_cast<size_t>(g.N) * g.OW);
    for (int n = 0; n < g.N; ++n) {
        const float* m = matrices + 6 * static_cast<int64_t>(n);
        Tap* column = columns.data() + static_cast<size_t>(n) * g.OW;
        for (int ox = 0; ox < g.OW; ++ox)
            column[ox] = tap<kBilinear>(double(m[0]) * ox + m[2], g.W, fill);
    }
#ifdef _OPENMP
#pragma omp parallel for collapse(2) if (int64_t(g.N) * g.OH * g.OW * C > kParallelMin)
#endif
    for (int n = 0; n < g.N; ++n) {
        for (int oy = 0; oy < g.OH; ++oy) {
            const float* m = matrices + 6 * static_cast<int64_t>(n);
            const Tap ty = tap<kBilinear>(double(m[4]) * oy + m[5], g.H, fill);
            const Tap* tx = columns.data() + static_cast<size_t>(n) * g.OW;
            float* o = out + ((static_cast<int64_t>(n) * g.OH + oy) * g.OW) * C;
            for (int ox = 0; ox < g.OW; ++ox, o += C)
                sample<kBilinear>(o, inp + n * in_img, g.W, C, ty, tx[ox], fill_value);
        }
    }
}

template <bool kBilinear>
void affine_backward_impl(float* dinp, const float* dout, const float* matrices,
                          const AffineGeometry& g, int fill) {
    // dinp is (N,H,W,C), dout is (N,OH,OW,C), matrices is (N,6)
    const int64_t C = g.C, in_img = static_cast<int64_t>(g.H) * g.W * C;
    const int64_t out_img = static_cast<int64_t>(g.OH) * g.OW * C;
    // One thread per image: its gradient is zeroed and accumulated by that thread alone.
#ifdef _OPENMP
#pragma omp parallel for if (int64_t(g.N) * (in_img + out_img) > kParallelMin)
#endif
    for (int n = 0; n < g.N; ++n) {
        const float* m = matrices + 6 * static_cast<int64_t>(n);
        float* di = dinp + n * in_img;
        std::fill(di, di + in_img, 0.0f);
        const float* d = dout + n * out_img;
        for (int oy = 0; oy < g.OH; ++oy) {
            const double x0 = double(m[1]) * oy + m[2], y0 = double(m[4]) * oy + m[5];
            for (int ox = 0; ox < g.OW; ++ox, d += C) {
                const Tap tx = tap<kBilinear>(double(m[0]) * ox + x0, g.W, fill);
                const Tap ty = tap<kBilinear>(double(m[3]) * ox + y0, g.H, fill);
                scatter<kBilinear>(di, d, g.W, C, ty, tx);
            }
        }
    }
}

}  // namespace

// ---------------------------------------------------------------- flips
void flip_forward(float* out, const float* inp, const uint8_t* flags, int N, int H, int W, int C) {
    // inp and out are (N,H,W,C); flags is (N,): bit 0 mirrors left-right, bit 1 top-bottom
    const int64_t row = static_cast<int64_t>(W) * C;
#ifdef _OPENMP
#pragma omp parallel for collapse(2) if (int64_t(N) * H * row > kParallelMin)
#endif
    for (int n = 0; n < N; ++n) {
        for (int h = 0; h < H; ++h) {
            const int src_h = (flags[n] & kFlipVertical) ? H - 1 - h : h;
            const float* x = inp + (static_cast<int64_t>(n) * H + src_h) * row;
            float* o = out + (static_cast<int64_t>(n) * H + h) * row;
            if (!(flags[n] & kFlipHorizontal)) {
                std::memcpy(o, x, sizeof(float) * row);
                continue;
            }
            for (int w = 0; w < W; ++w) {
                const float* p = x + static_cast<int64_t>(W - 1 - w) * C;
                for (int64_t c = 0; c < C; ++c) o[static_cast<int64_t>(w) * C + c] = p[c];
            }
        }
    }
}

void flip_backward(float* dinp, const float* dout, const uint8_t* flags, int N, int H, int W,
                   int C) {
    // dinp and dout are (N,H,W,C): a flip is its own inverse and its own transpose
    flip_forward(dinp, dout, flags, N, H, W, C);
}

// ---------------------------------------------------------------- affine transforms
void affine_transform_forward(float* out, const float* inp, const float* matrices,
                              const AffineGeometry& g, int interpolation, int fill,
                              float fill_value) {
    // inp is (N,H,W,C), out is (N,OH,OW,C), matrices is (N,6)
    bool axis_aligned = true;
    for (int64_t i = 0; i < g.N; ++i)
        axis_aligned &= matrices[6 * i + 1] == 0.0f && matrices[6 * i + 3] == 0.0f;
    const bool bilinear = interpolation == kInterpolationBilinear;
    const auto kernel = axis_aligned ? (bilinear ? affine_separable<true> : affine_separable<false>)
                                     : (bilinear ? affine_general<true> : affine_general<false>);
    kernel(out, inp, matrices, g, fill, fill_value);
}

void affine_transform_forward_naive(float* out, const float* inp, const float* matrices,
                                    const AffineGeometry& g, int interpolation, int fill,
                                    float fill_value) {
    // inp is (N,H,W,C), out is (N,OH,OW,C), matrices is (N,6)
    if (interpolation == kInterpolationBilinear)
        affine_general<true>(out, inp, matrices, g, fill, fill_value);
    else
        affine_general<false>(out, inp, matrices, g, fill, fill_value);
}

void affine_transform_backward(float* dinp, const float* dout, const float* matrices,
                               const AffineGeometry& g, int interpolation, int fill) {
    // dinp is (N,H,W,C), dout is (N,OH,OW,C), matrices is (N,6)
    if (interpolation == kInterpolationBilinear)
        affine_backward_impl<true>(dinp, dout, matrices, g, fill);
    else
        affine_backward_impl<false>(dinp, dout, matrices, g, fill);
}

// ---------------------------------------------------------------- crops
void crop_forward(float* out, const float* inp, const int32_t* offsets, int N, int H, int W, int C,
                  int OH, int OW) {
    // inp is (N,H,W,C), out is (N,OH,OW,C), offsets is (N,2): each window's top row, left column
    const int64_t row = static_cast<int64_t>(OW) * C;
#ifdef _OPENMP
#pragma omp parallel for collapse(2) if (int64_t(N) * OH * row > kParallelMin)
#endif
    for (int n = 0; n < N; ++n) {
        for (int oy = 0; oy < OH; ++oy) {
            const int64_t top = offsets[2 * n], left = offsets[2 * n + 1];
            const float* x = inp + ((static_cast<int64_t>(n) * H + top + oy) * W + left) * C;
            std::memcpy(out + (static_cast<int64_t>(n) * OH + oy) * row, x, sizeof(float) * row);
        }
    }
}

void crop_backward(float* dinp, const float* dout, const int32_t* offsets, int N, int H, int W,
                   int C, int OH, int OW) {
    // dinp is (N,H,W,C), dout is (N,OH,OW,C), offsets is (N,2)
    const int64_t in_img = static_cast<int64_t>(H) * W * C, row = static_cast<int64_t>(OW) * C;
#ifdef _OPENMP
#pragma omp parallel for if (int64_t(N) * in_img > kParallelMin)
#endif
    for (int n = 0; n < N; ++n) {
        float* di = dinp + n * in_img;
        std::fill(di, di + in_img, 0.0f);
        const int64_t top = offsets[2 * n], left = offsets[2 * n + 1];
        for (int oy = 0; oy < OH; ++oy)
            std::memcpy(di + ((top + oy) * W + left) * C,
                        dout + (static_cast<int64_t>(n) * OH + oy) * row, sizeof(float) * row);
    }
}

// ---------------------------------------------------------------- contrast
namespace {

// Contrast before the clip: (x - mean) * f + mean, written as f*x + (1-f)*mean, exact for f = 1.
inline float contrast(float f, float x, double mean) {
    return f * x + static_cast<float>((1.0 - f) * mean);
}

// The mean of each channel of one image img (P,C) into mean (C,), accumulated in double.
void channel_means(double* mean, const float* img, int64_t P, int64_t C) {
    std::fill(mean, mean + C, 0.0);
    for (int64_t p = 0; p < P; ++p)
        for (int64_t c = 0; c < C; ++c) mean[c] += img[p * C + c];
    for (int64_t c = 0; c < C; ++c) mean[c] /= static_cast<double>(P);
}

}  // namespace

void contrast_forward(float* out, const float* inp, const float* factors, float lo, float hi,
                      int N, int64_t P, int C) {
    // inp and out are (N,P,C) with P = H*W pixels; factors is (N,)
    const int64_t img = P * C;
#ifdef _OPENMP
#pragma omp parallel for if (int64_t(N) * img > kParallelMin)
#endif
    for (int n = 0; n < N; ++n) {
        std::vector<double> mean(static_cast<size_t>(C));
        const float* x = inp + n * img;
        float* o = out + n * img;
        channel_means(mean.data(), x, P, C);
        const float f = factors[n];
        for (int64_t p = 0; p < P; ++p)
            for (int64_t c = 0; c < C; ++c)
                o[p * C + c] = std::min(std::max(contrast(f, x[p * C + c], mean[c]), lo), hi);
    }
}

void contrast_backward(float* dinp, const float* dout, const float* inp, const float* factors,
                       float lo, float hi, int N, int64_t P, int C) {
    // dinp, dout and inp are (N,P,C); factors is (N,). With z = f*x + (1-f)*mean before the
    // clip, dx = f*g + (1-f) * mean(g) per channel, where g is dout where lo <= z <= hi, else 0.
    const int64_t img = P * C;
#ifdef _OPENMP
#pragma omp parallel for if (int64_t(N) * img > kParallelMin)
#endif
    for (int n = 0; n < N; ++n) {
        std::vector<double> mean(static_cast<size_t>(C)), gsum(static_cast<size_t>(C), 0.0);
        const float *x = inp + n * img, *d = dout + n * img;
        float* di = dinp + n * img;
        channel_means(mean.data(), x, P, C);
        const float f = factors[n];
        for (int64_t p = 0; p < P; ++p)
            for (int64_t c = 0; c < C; ++c) {
                const float z = contrast(f, x[p * C + c], mean[c]);
                const float g = (z >= lo && z <= hi) ? d[p * C + c] : 0.0f;
                di[p * C + c] = f * g;
                gsum[c] += g;
            }
        for (int64_t p = 0; p < P; ++p)
            for (int64_t c = 0; c < C; ++c)
                di[p * C + c] += static_cast<float>((1.0 - f) * gsum[c] / static_cast<double>(P));
    }
}

}  // namespace cnnkit
