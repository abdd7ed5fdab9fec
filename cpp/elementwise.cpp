// elementwise.cpp: the kernels of Rescaling, Normalization, SpatialDropout2D and GaussianNoise.
//
// Plain C++17 loops the compiler vectorises (as activation.cpp). Each output element is written
// by exactly one thread and computed the same way whatever the split, so results do not depend on
// the number of threads. OpenMP splits only large arrays.
#include "cnnkit.h"

namespace cnnkit {

namespace {
// Below this many values a parallel region costs more than it saves.
constexpr int64_t kParallelMin = 32768;
}  // namespace

namespace {

// One variant per combination of shift and offset, so that the inner loops carry no test and
// vectorise; a missing shift or offset costs nothing.
template <bool Shift, bool Offset>
void affine(float* out, const float* inp, const float* shift, const float* scale,
            const float* offset, int64_t outer, int64_t channels, int64_t inner) {
    // inp and out are (outer, channels, inner); shift, scale and offset are (channels,)
    const int64_t total = outer * channels * inner;
    if (inner == 1) {
        // The channel axis is contiguous: each row is one vectorised pass over the values.
#ifdef _OPENMP
#pragma omp parallel for if (total > kParallelMin)
#endif
        for (int64_t r = 0; r < outer; ++r) {
            const float* x = inp + r * channels;
            float* y = out + r * channels;
            for (int64_t k = 0; k < channels; ++k) {
                const float v = Shift ? x[k] - shift[k] : x[k];
                y[k] = Offset ? v * scale[k] + offset[k] : v * scale[k];
            }
        }
        return;
    }
    // One set of values per run of `inner` inputs.
#ifdef _OPENMP
#pragma omp parallel for if (total > kParallelMin)
#endif
    for (int64_t r = 0; r < outer * channels; ++r) {
        const int64_t k = r % channels;
        const float c = Shift ? shift[k] : 0.0f, a = scale[k], b = Offset ? offset[k] : 0.0f;
        const float* x = inp + r * inner;
        float* y = out + r * inner;
        for (int64_t i = 0; i < inner; ++i) {
            const float v = Shift ? x[i] - c : x[i];
            y[i] = Offset ? v * a + b : v * a;
        }
    }
}

}  // namespace

void affine_forward(float* out, const float* inp, const float* shift, const float* scale,
                    const float* offset, int64_t outer, int64_t channels, int64_t inner) {
    if (shift != nullptr && offset != nullptr)
        affine<true, true>(out, inp, shift, scale, offset, outer, channels, inner);
    else if (shift != nullptr)
        affine<true, false>(out, inp, shift, scale, offset, outer, channels, inner);
    else if (offset != nullptr)
        affine<false, true>(out, inp, shift, scale, offset, outer, channels, inner);
    else
        affine<false, false>(out, inp, shift, scale, offset, outer, channels, inner);
}

void channel_mask(float* out, const float* inp, const float* mask, int64_t n, int64_t spatial,
                  int64_t channels) {
    // inp and out are (n, spatial, channels); mask is (n, channels)
    const int64_t rows = n * spatial;
#ifdef _OPENMP
#pragma omp parallel for if (rows * channels > kParallelMin)
#endif
    for (int64_t r = 0; r < rows; ++r) {
        const float* m = mask + (r / spatial) * channels;
        const float* x = inp + r * channels;
        float* y = out + r * channels;
        for (int64_t c = 0; c < channels; ++c) y[c] = x[c] * m[c];
    }
}

void add_scaled_noise(float* out, const float* inp, const float* noise, float stddev, int64_t n) {
    // inp, noise and out are (n,)
#ifdef _OPENMP
#pragma omp parallel for if (n > kParallelMin)
#endif
    for (int64_t i = 0; i < n; ++i) out[i] = inp[i] + stddev * noise[i];
}

void add_forward(float* out, const float* a, const float* b, int64_t n, bool relu) {
    // a, b and out are (n,)
    if (relu) {
#ifdef _OPENMP
#pragma omp parallel for simd if (n > kParallelMin)
#endif
        for (int64_t i = 0; i < n; ++i) {
            const float v = a[i] + b[i];
            out[i] = v < 0.0f ? 0.0f : v;
        }
    } else {
#ifdef _OPENMP
#pragma omp parallel for simd if (n > kParallelMin)
#endif
        for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
    }
}

}  // namespace cnnkit
