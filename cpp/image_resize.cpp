// image_resize.cpp: one decoded image (H,W,C), uint8 or float32, resized bilinearly to float32
// as tf.image.resize(method="bilinear", antialias=False) does: what image_dataset_from_directory
// and load_img-free pipelines apply to every file (cnnkit/utils/_decode.py).
//
// TF's arithmetic, in float32 as TF computes it, so the pixels match Keras' to rounding: output
// row o samples the input at y = (o + 0.5) * (H / OH) - 0.5; the taps are max(floor(y), 0) and
// min(ceil(y), H - 1), the weight y - floor(y); columns likewise. Each output pixel is
// top + (bottom - top) * wy, with top = tl + (tr - tl) * wx (TF's order of operations).
// A single image per call and no OpenMP: the callers are decoding worker threads, one image
// each, and an image is too small to split (a 180x180 photo takes some tens of microseconds).
#include "cnnkit.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace cnnkit {

namespace {

struct ImageTap {
    int64_t lower, upper;  // element offsets of the two taps (index * stride)
    float lerp;
};

std::vector<ImageTap> image_taps(int in_size, int out_size, int64_t stride) {
    std::vector<ImageTap> taps(static_cast<size_t>(out_size));
    const float scale = static_cast<float>(in_size) / static_cast<float>(out_size);
    for (int o = 0; o < out_size; ++o) {
        const float centre = (static_cast<float>(o) + 0.5f) * scale - 0.5f;
        const float floor = std::floor(centre);
        const int lower = std::max(static_cast<int>(floor), 0);
        const int upper = std::min(static_cast<int>(std::ceil(centre)), in_size - 1);
        taps[static_cast<size_t>(o)] = {lower * stride, upper * stride, centre - floor};
    }
    return taps;
}


// One input row interpolated along the width: out[ow*C + c] = l + (r - l) * wx, TF's `top` (or
// `bottom`) for every output column. kC > 0 is the channel count known at compile time (1, 3,
// 4: grayscale, RGB, RGBA), so the channel loop unrolls; kC == 0 reads it from C.
template <class T, int kC>
void lerp_row(float* out, const T* row, const std::vector<ImageTap>& tx, int C) {
    if (kC > 0) C = kC;
    for (const ImageTap& x : tx) {
        const T *l = row + x.lower, *r = row + x.upper;
        for (int c = 0; c < C; ++c)
            out[c] = static_cast<float>(l[c]) + (static_cast<float>(r[c]) - static_cast<float>(l[c])) * x.lerp;
        out += C;
    }
}

// Separable, as TF's kernel is in effect: each input row an output row needs is interpolated
// along the width once (kept while the next output row needs it too: a shrink or an
// enlargement walks the rows in order), then the two rows are blended along the height, a
// contiguous loop the compiler vectorises. Every value is rounded exactly as the direct formula
// rounds it, so the result is bit-identical to the reference.
template <class T, int kC>
void resize_rows(float* out, const T* inp, int H, int W, int C, int OH, int OW) {
    const int64_t row = static_cast<int64_t>(W) * C, out_row = static_cast<int64_t>(OW) * C;
    const std::vector<ImageTap> ty = image_taps(H, OH, row), tx = image_taps(W, OW, C);
    std::vector<float> rows(static_cast<size_t>(2 * out_row));
    float *upper = rows.data(), *lower = rows.data() + out_row;  // the two rows at hand
    int64_t upper_at = -1, lower_at = -1;                        // their input offsets
    for (int oh = 0; oh < OH; ++oh) {
        const ImageTap& y = ty[static_cast<size_t>(oh)];
        if (upper_at != y.lower) {
            if (lower_at == y.lower) {
                std::swap(upper, lower);
                std::swap(upper_at, lower_at);
            } else {
                lerp_row<T, kC>(upper, inp + y.lower, tx, C);
                upper_at = y.lower;
            }
        }
        if (lower_at != y.upper) {
            lerp_row<T, kC>(lower, inp + y.upper, tx, C);
            lower_at = y.upper;
        }
        float* o = out + static_cast<int64_t>(oh) * out_row;
        const float wy = y.lerp;
        for (int64_t i = 0; i < out_row; ++i) o[i] = upper[i] + (lower[i] - upper[i]) * wy;
    }
}

}  // namespace

template <class T>
void resize_bilinear_image(float* out, const T* inp, int H, int W, int C, int OH, int OW) {
    switch (C) {
        case 1: return resize_rows<T, 1>(out, inp, H, W, C, OH, OW);
        case 3: return resize_rows<T, 3>(out, inp, H, W, C, OH, OW);
        case 4: return resize_rows<T, 4>(out, inp, H, W, C, OH, OW);
        default: return resize_rows<T, 0>(out, inp, H, W, C, OH, OW);
    }
}

template void resize_bilinear_image<uint8_t>(float*, const uint8_t*, int, int, int, int, int);
template void resize_bilinear_image<float>(float*, const float*, int, int, int, int, int);

}  // namespace cnnkit
