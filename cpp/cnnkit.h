// cnnkit.h: plain declarations of every C++ kernel, the contract between kernels and bindings.
//
// Conventions (after llm.c): outputs first, then inputs, then sizes; gradients carry a `d` prefix.
// Images are NHWC float32, row-major and contiguous. Convolution weights are (KH, KW, C, OC),
// dense weights (IN, OUT), as in Keras. Kernels trust their arguments: the bindings check shapes,
// dtypes and sizes before calling, and nothing here throws inside an OpenMP region.
#pragma once
#include <cstdint>

namespace cnnkit {

// ---------------------------------------------------------------- convolution (conv/*.cpp)
// Geometry of a 2-D convolution or pooling window over an NHWC batch. PT/PL are the zero rows and
// columns added at the top and left; the bottom and right padding follow from OH and OW. A
// convolution's taps may be dilated: tap (kh, kw) of output (oh, ow) reads input row
// oh*SH - PT + kh*DH, column ow*SW - PL + kw*DW (pooling leaves DH = DW = 1).
struct Window2d {
    int N, H, W, C;  // input batch
    int KH, KW;      // window (kernel) size
    int SH, SW;      // strides
    int PT, PL;      // padding before the first row / column
    int OH, OW;      // output size
    int DH = 1, DW = 1;  // dilation
};

// out (N,OH,OW,OC) = conv(inp (N,H,W,C), weight (KH,KW,C/groups,OC)) + bias (OC) or no bias if
// null, then max(0, out) if relu (fused: applied to each tile as it is stored; NaN passes, as in
// relu_forward, so the result equals relu_forward of the unfused output). With groups > 1 (C and
// OC divisible by it), output channels [j*OC/groups, (j+1)*OC/groups) read only input channels
// [j*C/groups, (j+1)*C/groups).
void conv2d_forward(float* out, const float* inp, const float* weight, const float* bias,
                    const Window2d& g, int OC, bool relu = false, int groups = 1);
// dinp (N,H,W,C), dweight (KH,KW,C/groups,OC), dbias (OC) from dout (N,OH,OW,OC); any output may
// be null.
void conv2d_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                     const float* inp, const float* weight, const Window2d& g, int OC,
                     int groups = 1);
// Direct loops, the reference the fast versions are checked against.
void conv2d_forward_naive(float* out, const float* inp, const float* weight, const float* bias,
                          const Window2d& g, int OC, bool relu = false, int groups = 1);
void conv2d_backward_naive(float* dinp, float* dweight, float* dbias, const float* dout,
                           const float* inp, const float* weight, const Window2d& g, int OC,
                           int groups = 1);

// Transposed convolution (Keras' Conv2DTranspose): the input gradient of the convolution `g`
// describes, whose input (N,H,W,C) is the transposed convolution's output and whose output
// (N,OH,OW,OC) is its input; weight (KH,KW,C,OC) is Keras' (kh, kw, filters, in_channels).
// out (N,H,W,C) = conv2d's dinp for dout = inp (N,OH,OW,OC), + bias (C) or no bias if null.
void conv2d_transpose_forward(float* out, const float* inp, const float* weight,
                              const float* bias, const Window2d& g, int OC);
// dinp (N,OH,OW,OC) = conv2d_forward(dout, weight); dweight (KH,KW,C,OC) = conv2d's weight
// gradient with input dout (N,H,W,C) and output gradient inp; dbias (C). Any may be null.
void conv2d_transpose_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                               const float* inp, const float* weight, const Window2d& g, int OC);
void conv2d_transpose_forward_naive(float* out, const float* inp, const float* weight,
                                    const float* bias, const Window2d& g, int OC);
void conv2d_transpose_backward_naive(float* dinp, float* dweight, float* dbias,
                                     const float* dout, const float* inp, const float* weight,
                                     const Window2d& g, int OC);

// Depthwise convolution (Keras' DepthwiseConv2D): output channel c*DM + m (N,OH,OW,C*DM) is
// input channel c convolved with weight[:, :, c, m] (KH,KW,C,DM), + bias (C*DM) or no bias if
// null, then max(0, out) if relu. The same as conv2d with groups = C and OC = C*DM.
void depthwise_conv2d_forward(float* out, const float* inp, const float* weight,
                              const float* bias, const Window2d& g, int DM, bool relu = false);
// dinp (N,H,W,C), dweight (KH,KW,C,DM), dbias (C*DM) from dout (N,OH,OW,C*DM); any may be null.
void depthwise_conv2d_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                               const float* inp, const float* weight, const Window2d& g, int DM);
void depthwise_conv2d_forward_naive(float* out, const float* inp, const float* weight,
                                    const float* bias, const Window2d& g, int DM,
                                    bool relu = false);
void depthwise_conv2d_backward_naive(float* dinp, float* dweight, float* dbias,
                                     const float* dout, const float* inp, const float* weight,
                                     const Window2d& g, int DM);

// ---------------------------------------------------------------- pooling, upsampling (pool.cpp)
// out (N,OH,OW,C) = max over each window; argmax (N,OH,OW,C) receives the winner's position
// inside its image, h * W + w (the first maximum in row-major window order); argmax may be null.
// Padded positions never win.
void maxpool2d_forward(float* out, int32_t* argmax, const float* inp, const Window2d& g);
// dinp (N,H,W,C) = 0, then each dout element is added to the input its argmax names. g.KH may be
// 0 (window unknown): then only N, H, W, C, OH, OW are read. With a known window that tiles the
// input (stride == size), argmax must name a position inside its own window.
void maxpool2d_backward(float* dinp, const float* dout, const int32_t* argmax, const Window2d& g);
// Nearest-neighbour upsampling: out (N,H*SH,W*SW,C) from inp (N,H,W,C); backward sums each block.
void upsampling2d_forward(float* out, const float* inp, int N, int H, int W, int C, int SH, int SW);
void upsampling2d_backward(float* dinp, const float* dout, int N, int H, int W, int C, int SH, int SW);

// ---------------------------------------------------------------- dense (dense.cpp)
// out (B,OUT) = inp (B,IN) @ weight (IN,OUT) + bias (OUT) or no bias if null, then max(0, out)
// if relu (fused, as in conv2d_forward).
void dense_forward(float* out, const float* inp, const float* weight, const float* bias,
                   int B, int IN, int OUT, bool relu = false);
// dinp (B,IN), dweight (IN,OUT), dbias (OUT) from dout (B,OUT); any output may be null.
void dense_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                    const float* inp, const float* weight, int B, int IN, int OUT);
void dense_forward_naive(float* out, const float* inp, const float* weight, const float* bias,
                         int B, int IN, int OUT, bool relu = false);
void dense_backward_naive(float* dinp, float* dweight, float* dbias, const float* dout,
                          const float* inp, const float* weight, int B, int IN, int OUT);

// ---------------------------------------------------------------- activations (activation.cpp)
// Elementwise over n values; backward takes the forward *output* y (as a fused layer keeps it).
void relu_forward(float* out, const float* inp, int64_t n);
void relu_backward(float* dinp, const float* dout, const float* out, int64_t n);
void sigmoid_forward(float* out, const float* inp, int64_t n);
void sigmoid_backward(float* dinp, const float* dout, const float* out, int64_t n);
// Softmax over the last axis of (rows, cols); numerically stable (max subtracted).
void softmax_forward(float* out, const float* inp, int64_t rows, int cols);
void softmax_backward(float* dinp, const float* dout, const float* out, int64_t rows, int cols);

// ---------------------------------------------------------------- losses (loss.cpp)
// Each returns the mean loss over the batch and writes its gradient with respect to the
// prediction (already divided by the batch size, so it feeds the backward pass directly).
// Softmax cross-entropy from logits (B,K): labels one-hot (B,K) in `onehot`, or class indices in
// `labels` (B); exactly one of the two is non-null. dlogits = (softmax - y) / B.
double softmax_cross_entropy(float* dlogits, const float* logits, const float* onehot,
                             const int64_t* labels, int64_t B, int K);
// Mean squared error over all n values (Keras: mean over the last axis, then over the batch).
double mean_squared_error(float* dpred, const float* pred, const float* target, int64_t n);
// Binary cross-entropy on probabilities clipped to [eps, 1 - eps] as Keras does; the gradient is
// zero where the clip is active. Mean over all n values.
double binary_crossentropy(float* dpred, const float* pred, const float* target, int64_t n,
                           float eps);

// ---------------------------------------------------------------- optimizers (optimizer.cpp)
// Keras' Adam, in place. step is the 1-based number of this update.
void adam_update(float* param, float* m, float* v, const float* grad, int64_t n, float lr,
                 float beta1, float beta2, float eps, int64_t step);
// Keras' SGD: plain when velocity is null, else momentum (optionally Nesterov), in place.
void sgd_update(float* param, float* velocity, const float* grad, int64_t n, float lr,
                float momentum, bool nesterov);
// Whether none of the n values is NaN or infinite: the trainer's check of the gradients before
// an update, so that a step that went non-finite leaves the weights as they were.
bool all_finite(const float* x, int64_t n);

// ---------------------------------------------------------------- augmentation (augment.cpp)
// Per-image parameters: every image of a batch gets its own flip, matrix, window or factor.
enum FlipFlags : uint8_t { kFlipHorizontal = 1, kFlipVertical = 2 };  // left-right, top-bottom
// out (N,H,W,C) = inp with each image n mirrored as flags[n] says; backward is the same flip.
void flip_forward(float* out, const float* inp, const uint8_t* flags, int N, int H, int W, int C);
void flip_backward(float* dinp, const float* dout, const uint8_t* flags, int N, int H, int W, int C);

// Affine resampling (translation, rotation, zoom, resizing). Output pixel (x, y) (column, row) of
// image n reads the input at x_in = m0*x + m1*y + m2, y_in = m3*x + m4*y + m5, where m is
// matrices[6n .. 6n+5], in pixel indices; the input is extended beyond its edges by `fill`.
enum Interpolation : int { kInterpolationBilinear = 0, kInterpolationNearest = 1 };
enum FillMode : int { kFillReflect = 0, kFillWrap = 1, kFillNearest = 2, kFillConstant = 3 };
struct AffineGeometry {
    int N, H, W, C;  // input batch
    int OH, OW;      // output size
};
// out (N,OH,OW,C) from inp (N,H,W,C); fill_value is read by kFillConstant only. Axis-aligned
// matrices (m1 = m3 = 0) take a faster path; the naive version computes every pixel alone.
void affine_transform_forward(float* out, const float* inp, const float* matrices,
                              const AffineGeometry& g, int interpolation, int fill, float fill_value);
void affine_transform_forward_naive(float* out, const float* inp, const float* matrices,
                                    const AffineGeometry& g, int interpolation, int fill,
                                    float fill_value);
// dinp (N,H,W,C), the transpose of the sampling applied to dout (N,OH,OW,C).
void affine_transform_backward(float* dinp, const float* dout, const float* matrices,
                               const AffineGeometry& g, int interpolation, int fill);

// out (N,OH,OW,C) = the OHxOW window of each image whose top-left corner is (offsets[2n],
// offsets[2n+1]) (row, column), inside inp (N,H,W,C); backward puts dout back, zeros elsewhere.
void crop_forward(float* out, const float* inp, const int32_t* offsets, int N, int H, int W, int C,
                  int OH, int OW);
void crop_backward(float* dinp, const float* dout, const int32_t* offsets, int N, int H, int W,
                   int C, int OH, int OW);

// Contrast over (N,P,C) (P = H*W pixels): out = clip((x - mean) * factors[n] + mean, lo, hi),
// with each image's per-channel mean. Backward takes the forward input (lo <= hi).
void contrast_forward(float* out, const float* inp, const float* factors, float lo, float hi,
                      int N, int64_t P, int C);
void contrast_backward(float* dinp, const float* dout, const float* inp, const float* factors,
                       float lo, float hi, int N, int64_t P, int C);

// ---------------------------------------------------------------- runtime (runtime.cpp)
bool openmp_enabled();
int get_num_threads();
void set_num_threads(int n);
// Makes the calling OS thread use the count set_num_threads chose: OpenMP keeps it per thread,
// and Python may call the kernels from any thread. The bindings call it before every kernel.
void adopt_num_threads();

// The instruction set the micro-kernels use (cpu_features.cpp): "avx512", "avx2" or "generic".
// Chosen at load time from the CPU (and the CNNKIT_ISA environment variable, which may only lower
// it); set_simd_isa returns false, changing nothing, for a name this CPU or build cannot run.
const char* simd_isa();
bool set_simd_isa(const char* name);

}  // namespace cnnkit

// Newer op families declare their kernels in a header each, under the same conventions.
#include "normalization.h"  // BatchNormalization, LayerNormalization
#include "elementwise.h"    // Rescaling, Normalization, SpatialDropout2D, GaussianNoise
