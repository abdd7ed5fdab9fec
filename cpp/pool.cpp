// pool.cpp: max and average pooling (windowed and global) and nearest-neighbour upsampling over
// NHWC float32 batches.
//
// Contract: plain C++17, no intrinsics; the innermost loops run over channels, which are
// contiguous in NHWC, so the compiler vectorises them with whatever instruction set the build
// targets. OpenMP parallelises outer loops only, split so that no two threads write the same
// element; results do not depend on the number of threads. Arguments are trusted (the bindings
// check them): every pooling window holds at least one real input, so an average never divides
// by zero. Assumes IEEE float semantics (no -ffast-math): the NaN rule of max pooling relies on
// v != v.
#include "cnnkit.h"

#include <algorithm>
#include <cstring>

namespace cnnkit {

namespace {

// Below this much work a parallel region costs more than it saves.
constexpr int64_t kParallelMin = 32768;

// Max over one window [h0,h1) x [w0,w1) of one image, for all C channels at once. The first
// real position seeds the result, so an all -inf window still gets a valid argmax. A later
// position replaces it only when strictly greater (ties keep the first in row-major order) or
// when it is the first NaN (a NaN anywhere makes the result NaN, as NumPy's max does).
template <bool kArgmax>
void pool_window(float* o, int32_t* a, const float* img, int h0, int h1, int w0, int w1, int W,
                 int64_t C) {
    // img is one image (H,W,C); o and a are one output position's (C,) values and winners
    const float* first = img + (static_cast<int64_t>(h0) * W + w0) * C;
    std::memcpy(o, first, sizeof(float) * C);
    if (kArgmax) std::fill(a, a + C, h0 * W + w0);
    for (int h = h0; h < h1; ++h) {
        for (int w = (h == h0 ? w0 + 1 : w0); w < w1; ++w) {
            const float* x = img + (static_cast<int64_t>(h) * W + w) * C;
            const int32_t pos = h * W + w;
            // Branch-free (bitwise |, &) with unconditional stores of selected values, so the
            // compiler vectorises across channels with compares and blends.
            for (int64_t c = 0; c < C; ++c) {
                const float v = x[c], best = o[c];
                const bool take = (v > best) | ((v != v) & (best == best));
                o[c] = take ? v : best;
                if (kArgmax) a[c] = take ? pos : a[c];
            }
        }
    }
}

template <bool kArgmax>
void maxpool2d_forward_impl(float* out, int32_t* argmax, const float* inp, const Window2d& g) {
    // inp is (N,H,W,C), out and argmax are (N,OH,OW,C)
    const int64_t C = g.C;
    // Every output row (n, oh) is written by one thread; inputs are only read.
#ifdef _OPENMP
    const int64_t work = static_cast<int64_t>(g.N) * g.OH * g.OW * C * g.KH * g.KW;
#pragma omp parallel for collapse(2) if (work > kParallelMin)
#endif
    for (int n = 0; n < g.N; ++n) {
        for (int oh = 0; oh < g.OH; ++oh) {
            const float* img = inp + static_cast<int64_t>(n) * g.H * g.W * C;
            const int hs = oh * g.SH - g.PT;
            const int h0 = std::max(hs, 0), h1 = std::min(hs + g.KH, g.H);
            for (int ow = 0; ow < g.OW; ++ow) {
                const int ws = ow * g.SW - g.PL;
                const int w0 = std::max(ws, 0), w1 = std::min(ws + g.KW, g.W);
                const int64_t off = ((static_cast<int64_t>(n) * g.OH + oh) * g.OW + ow) * C;
                pool_window<kArgmax>(out + off, kArgmax ? argmax + off : nullptr, img, h0, h1,
                                     w0, w1, g.W, C);
            }
        }
    }
}

}  // namespace

void maxpool2d_forward(float* out, int32_t* argmax, const float* inp, const Window2d& g) {
    // inp is (N,H,W,C), out and argmax are (N,OH,OW,C)
    if (argmax)
        maxpool2d_forward_impl<true>(out, argmax, inp, g);
    else
        maxpool2d_forward_impl<false>(out, nullptr, inp, g);
}

void maxpool2d_backward(float* dinp, const float* dout, const int32_t* argmax, const Window2d& g) {
    // dinp is (N,H,W,C), dout and argmax are (N,OH,OW,C)
    const int64_t C = g.C;
    const int64_t in_img = static_cast<int64_t>(g.H) * g.W * C;
    const int64_t out_img = static_cast<int64_t>(g.OH) * g.OW * C;
    if (g.KH > 0 && g.SH == g.KH && g.SW == g.KW) {
        // Windows that tile the input (the usual 2x2 stride 2): every input element belongs to
        // at most one window, so it is written once, dout where it won and 0 where it lost,
        // with a compare and select across channels: no zeroing pass, no scattered adds.
        const int hc0 = std::max(0, -g.PT), hc1 = std::min(g.H, g.OH * g.SH - g.PT);
        const int wc0 = std::max(0, -g.PL), wc1 = std::min(g.W, g.OW * g.SW - g.PL);
#ifdef _OPENMP
#pragma omp parallel for if (g.N * (in_img + out_img) > kParallelMin)
#endif
        for (int n = 0; n < g.N; ++n) {
            float* di = dinp + n * in_img;
            const int64_t row = static_cast<int64_t>(g.W) * C;
            // Input rows and columns that no window covers (valid padding's remainder).
            std::fill(di, di + hc0 * row, 0.0f);
            std::fill(di + hc1 * row, di + in_img, 0.0f);
            for (int h = hc0; h < hc1; ++h) {
                std::fill(di + h * row, di + h * row + wc0 * C, 0.0f);
                std::fill(di + h * row + wc1 * C, di + (h + 1) * row, 0.0f);
            }
            for (int oh = 0; oh < g.OH; ++oh) {
                const int h0 = std::max(oh * g.SH - g.PT, 0), h1 = std::min(oh * g.SH - g.PT + g.KH, g.H);
                for (int ow = 0; ow < g.OW; ++ow) {
                    const int w0 = std::max(ow * g.SW - g.PL, 0), w1 = std::min(ow * g.SW - g.PL + g.KW, g.W);
                    const int64_t off = n * out_img + (static_cast<int64_t>(oh) * g.OW + ow) * C;
                    const float* d = dout + off;
                    const int32_t* a = argmax + off;
                    for (int h = h0; h < h1; ++h)
                        for (int w = w0; w < w1; ++w) {
                            const int32_t pos = h * g.W + w;
                            float* x = di + static_cast<int64_t>(pos) * C;
                            for (int64_t c = 0; c < C; ++c) x[c] = a[c] == pos ? d[c] : 0.0f;
                        }
                }
            }
        }
        return;
    }
    // Overlapping windows (3x3 stride 2) send several outputs to one input, so split over
    // images only: each image's dinp is zeroed and accumulated by a single thread.
#ifdef _OPENMP
#pragma omp parallel for if (g.N * (in_img + out_img) > kParallelMin)
#endif
    for (int n = 0; n < g.N; ++n) {
        float* di = dinp + n * in_img;
        const float* d = dout + n * out_img;
        const int32_t* a = argmax + n * out_img;
        std::fill(di, di + in_img, 0.0f);
        for (int64_t p = 0; p < out_img; p += C)
            for (int64_t c = 0; c < C; ++c) di[a[p + c] * C + c] += d[p + c];
    }
}

namespace {

// The rows [h0, h1) of the input that window row `o` covers, clipped to the image: padded rows
// hold nothing, which is how 'same' average pooling leaves them out of its count.
struct Span {
    int lo, hi;
};
inline Span window_span(int o, int stride, int pad, int size, int limit) {
    const int start = o * stride - pad;
    return {std::max(start, 0), std::min(start + size, limit)};
}

}  // namespace

void avgpool2d_forward(float* out, const float* inp, const Window2d& g) {
    // inp is (N,H,W,C), out is (N,OH,OW,C)
    const int64_t C = g.C;
#ifdef _OPENMP
    const int64_t work = static_cast<int64_t>(g.N) * g.OH * g.OW * C * g.KH * g.KW;
#pragma omp parallel for collapse(2) if (work > kParallelMin)
#endif
    for (int n = 0; n < g.N; ++n) {
        for (int oh = 0; oh < g.OH; ++oh) {
            const float* img = inp + static_cast<int64_t>(n) * g.H * g.W * C;
            const Span rows = window_span(oh, g.SH, g.PT, g.KH, g.H);
            for (int ow = 0; ow < g.OW; ++ow) {
                const Span cols = window_span(ow, g.SW, g.PL, g.KW, g.W);
                float* o = out + ((static_cast<int64_t>(n) * g.OH + oh) * g.OW + ow) * C;
                // Keras (TensorFlow) divides by the real inputs of the window, not by KH*KW.
                const float inv = 1.0f / static_cast<float>((rows.hi - rows.lo) * (cols.hi - cols.lo));
                std::fill(o, o + C, 0.0f);
                for (int h = rows.lo; h < rows.hi; ++h)
                    for (int w = cols.lo; w < cols.hi; ++w) {
                        const float* x = img + (static_cast<int64_t>(h) * g.W + w) * C;
                        for (int64_t c = 0; c < C; ++c) o[c] += x[c];
                    }
                for (int64_t c = 0; c < C; ++c) o[c] *= inv;
            }
        }
    }
}

void avgpool2d_backward(float* dinp, const float* dout, const Window2d& g) {
    // dinp is (N,H,W,C), dout is (N,OH,OW,C)
    const int64_t C = g.C;
    const int64_t row = static_cast<int64_t>(g.W) * C;
    // Gathered by input row: the thread that owns row (n, h) adds the share of every output whose
    // window covers it, so overlapping windows need no atomics and each row is written by one
    // thread. Output row oh covers h when oh*SH - PT <= h < oh*SH - PT + KH.
#ifdef _OPENMP
    const int64_t work = static_cast<int64_t>(g.N) * g.OH * g.OW * C * g.KH * g.KW;
#pragma omp parallel for collapse(2) if (work > kParallelMin)
#endif
    for (int n = 0; n < g.N; ++n) {
        for (int h = 0; h < g.H; ++h) {
            float* di = dinp + (static_cast<int64_t>(n) * g.H + h) * row;
            std::fill(di, di + row, 0.0f);
            const int reach = h + g.PT - g.KH;  // the last window ending at or before h starts here
            const int oh_lo = reach < 0 ? 0 : reach / g.SH + 1;
            const int oh_hi = std::min(g.OH - 1, (h + g.PT) / g.SH);
            for (int oh = oh_lo; oh <= oh_hi; ++oh) {
                const Span rows = window_span(oh, g.SH, g.PT, g.KH, g.H);
                const float* d_row = dout + (static_cast<int64_t>(n) * g.OH + oh) * g.OW * C;
                for (int ow = 0; ow < g.OW; ++ow) {
                    const Span cols = window_span(ow, g.SW, g.PL, g.KW, g.W);
                    const float inv =
                        1.0f / static_cast<float>((rows.hi - rows.lo) * (cols.hi - cols.lo));
                    const float* d = d_row + static_cast<int64_t>(ow) * C;
                    for (int w = cols.lo; w < cols.hi; ++w) {
                        float* x = di + static_cast<int64_t>(w) * C;
                        for (int64_t c = 0; c < C; ++c) x[c] += d[c] * inv;
                    }
                }
            }
        }
    }
}

namespace {
// Channels summed together by one thread of global average pooling: 64 floats, a few vector
// registers of partial sums.
constexpr int kChannelBlock = 64;
// Positions summed into a partial sum before it joins the total: two-level summation keeps the
// rounding error near (kPositionChunk + P / kPositionChunk) ulp instead of P ulp.
constexpr int64_t kPositionChunk = 64;
}  // namespace

void global_avgpool2d_forward(float* out, const float* inp, int N, int64_t P, int C) {
    // inp is (N,P,C) (P = H*W positions), out is (N,C)
    const int blocks = (C + kChannelBlock - 1) / kChannelBlock;
    const float inv = 1.0f / static_cast<float>(P);
    // Split over images and channel blocks, so a single large image still uses every thread.
#ifdef _OPENMP
#pragma omp parallel for collapse(2) if (int64_t(N) * P * C > kParallelMin)
#endif
    for (int n = 0; n < N; ++n) {
        for (int b = 0; b < blocks; ++b) {
            const int c0 = b * kChannelBlock, cb = std::min(kChannelBlock, C - c0);
            const float* x = inp + static_cast<int64_t>(n) * P * C + c0;
            float total[kChannelBlock] = {};
            for (int64_t p0 = 0; p0 < P; p0 += kPositionChunk) {
                const int64_t p1 = std::min(P, p0 + kPositionChunk);
                float part[kChannelBlock] = {};
                for (int64_t p = p0; p < p1; ++p) {
                    const float* xp = x + p * C;
                    for (int j = 0; j < cb; ++j) part[j] += xp[j];
                }
                for (int j = 0; j < cb; ++j) total[j] += part[j];
            }
            float* o = out + static_cast<int64_t>(n) * C + c0;
            for (int j = 0; j < cb; ++j) o[j] = total[j] * inv;
        }
    }
}

void global_avgpool2d_backward(float* dinp, const float* dout, int N, int64_t P, int C) {
    // dinp is (N,P,C), dout is (N,C): every position receives dout / P.
    const float inv = 1.0f / static_cast<float>(P);
#ifdef _OPENMP
#pragma omp parallel for collapse(2) if (int64_t(N) * P * C > kParallelMin)
#endif
    for (int n = 0; n < N; ++n) {
        for (int64_t p = 0; p < P; ++p) {
            const float* d = dout + static_cast<int64_t>(n) * C;
            float* x = dinp + (static_cast<int64_t>(n) * P + p) * C;
            for (int c = 0; c < C; ++c) x[c] = d[c] * inv;
        }
    }
}

void upsampling2d_forward(float* out, const float* inp, int N, int H, int W, int C, int SH,
                          int SW) {
    // inp is (N,H,W,C), out is (N,H*SH,W*SW,C)
    const int64_t row = static_cast<int64_t>(W) * SW * C;  // one output row
    // Each input row (n, h) owns output rows h*SH .. h*SH+SH-1.
#ifdef _OPENMP
#pragma omp parallel for collapse(2) if (int64_t(N) * H * SH * row > kParallelMin)
#endif
    for (int n = 0; n < N; ++n) {
        for (int h = 0; h < H; ++h) {
            const float* x = inp + (static_cast<int64_t>(n) * H + h) * W * C;
            float* o = out + (static_cast<int64_t>(n) * H + h) * SH * row;
            // Build the first copy of the row, then duplicate it SH-1 times.
            for (int w = 0; w < W; ++w) {
                const float* src = x + static_cast<int64_t>(w) * C;
                for (int j = 0; j < SW; ++j)
                    std::memcpy(o + (static_cast<int64_t>(w) * SW + j) * C, src, sizeof(float) * C);
            }
            for (int i = 1; i < SH; ++i) std::memcpy(o + i * row, o, sizeof(float) * row);
        }
    }
}

void upsampling2d_backward(float* dinp, const float* dout, int N, int H, int W, int C, int SH,
                           int SW) {
    // dinp is (N,H,W,C), dout is (N,H*SH,W*SW,C)
    const int64_t row = static_cast<int64_t>(W) * SW * C;  // one dout row
    // Each dinp row (n, h) sums its own SH dout rows; no two threads touch the same output.
#ifdef _OPENMP
#pragma omp parallel for collapse(2) if (int64_t(N) * H * SH * row > kParallelMin)
#endif
    for (int n = 0; n < N; ++n) {
        for (int h = 0; h < H; ++h) {
            float* di = dinp + (static_cast<int64_t>(n) * H + h) * W * C;
            const float* d = dout + (static_cast<int64_t>(n) * H + h) * SH * row;
            std::fill(di, di + static_cast<int64_t>(W) * C, 0.0f);
            for (int i = 0; i < SH; ++i)
                for (int w = 0; w < W; ++w)
                    for (int j = 0; j < SW; ++j) {
                        const float* src = d + i * row + (static_cast<int64_t>(w) * SW + j) * C;
                        float* dst = di + static_cast<int64_t>(w) * C;
                        for (int64_t c = 0; c < C; ++c) dst[c] += src[c];
                    }
        }
    }
}

}  // namespace cnnkit
