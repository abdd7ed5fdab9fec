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
// [j*C/groups, (j+1)*C/groups). residual (N,OH,OW,OC), when not null, is added before the ReLU:
// out = max(0, conv + bias + residual), a ResNet block's sum and ReLU fused into its last
// convolution at inference (in the tiles' epilogue where the direct kernels run, else one more
// pass). residual may not share memory with out.
void conv2d_forward(float* out, const float* inp, const float* weight, const float* bias,
                    const Window2d& g, int OC, bool relu = false, int groups = 1,
                    const float* residual = nullptr);
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

// Average pooling: out (N,OH,OW,C) = the mean of each window's real inputs (padded positions are
// left out of the count, as Keras' padding='same' does). Backward: dinp (N,H,W,C) receives each
// dout element divided by its window's count, summed where windows overlap.
void avgpool2d_forward(float* out, const float* inp, const Window2d& g);
void avgpool2d_backward(float* dinp, const float* dout, const Window2d& g);
// Global average pooling over the P = H*W positions of inp (N,P,C): out (N,C); backward spreads
// dout / P over every position.
void global_avgpool2d_forward(float* out, const float* inp, int N, int64_t P, int C);
void global_avgpool2d_backward(float* dinp, const float* dout, int N, int64_t P, int C);

// ---------------------------------------------------------------- padding, cropping (pad_crop.cpp)
// out (N,H+PT+PB,W+PL+PR,C) = inp (N,H,W,C) surrounded by zero rows/columns (top, bottom, left,
// right): ZeroPadding2D's forward and Cropping2D's backward.
void pad2d(float* out, const float* inp, int N, int H, int W, int C, int PT, int PB, int PL, int PR);
// out (N,OH,OW,C) = rows CT.., columns CL.. of inp (N,H,W,C) (CT+OH <= H, CL+OW <= W):
// Cropping2D's forward and ZeroPadding2D's backward.
void crop2d(float* out, const float* inp, int N, int H, int W, int C, int CT, int CL, int OH, int OW);

// ---------------------------------------------------------------- bilinear upsampling (resize.cpp)
// out (N,H*SH,W*SW,C) = inp (N,H,W,C) resized bilinearly as Keras 3 does (half-pixel centres, no
// antialias, edges clamped); backward applies the transpose to dout.
void upsampling2d_bilinear_forward(float* out, const float* inp, int N, int H, int W, int C,
                                   int SH, int SW);
void upsampling2d_bilinear_backward(float* dinp, const float* dout, int N, int H, int W, int C,
                                    int SH, int SW);

// ---------------------------------------------------------------- image resizing (image_resize.cpp)
// out (OH,OW,C) float32 = one image inp (H,W,C), uint8 or float32, resized as
// tf.image.resize(method="bilinear", antialias=False) does (half-pixel centres, float32
// arithmetic in TF's order). Single-threaded: decoding workers call it, one image each.
template <class T>
void resize_bilinear_image(float* out, const T* inp, int H, int W, int C, int OH, int OW);

// ---------------------------------------------------------------- machine probes (machine_probe.cpp)
// bench/peak.py's yardsticks. fma_probe: every kernel thread runs `iterations` rounds of
// fma_probe_chains(isa) independent vector FMAs of fma_probe_lanes(isa) floats on registers only
// (isa: a cpu::Isa value the CPU runs); returns a sum that keeps the work alive.
// copy_probe: dst[0:n] = src[0:n] over the kernel threads (a STREAM copy).
float fma_probe(int isa, int64_t iterations, float a, float b);
int fma_probe_lanes(int isa);
int fma_probe_chains(int isa);
void copy_probe(float* dst, const float* src, int64_t n);

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
// Elementwise over n values, as keras.activations. The backward pass of each takes what its
// derivative needs: the forward *output* `out` (relu, sigmoid, tanh, exponential, and below
// softmax, log_softmax), or the forward *input* `inp` (all the others). A NaN input gives NaN.
void relu_forward(float* out, const float* inp, int64_t n);
void relu_backward(float* dinp, const float* dout, const float* out, int64_t n);
// Keras' relu with arguments: clip(x > threshold ? x : 0, 0, max_value) minus
// negative_slope * max(threshold - x, 0); max_value = +inf for none (then no clip at 0 either).
// leaky_relu is (slope, inf, 0), relu6 is (0, 6, 0).
void relu_general_forward(float* out, const float* inp, int64_t n, float negative_slope,
                          float max_value, float threshold);
void relu_general_backward(float* dinp, const float* dout, const float* inp, int64_t n,
                           float negative_slope, float max_value, float threshold);
void sigmoid_forward(float* out, const float* inp, int64_t n);
void sigmoid_backward(float* dinp, const float* dout, const float* out, int64_t n);
void tanh_forward(float* out, const float* inp, int64_t n);
void tanh_backward(float* dinp, const float* dout, const float* out, int64_t n);
void exponential_forward(float* out, const float* inp, int64_t n);
void exponential_backward(float* dinp, const float* dout, const float* out, int64_t n);
// x Phi(x) (erf form), or with approximate the tanh form 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3))).
void gelu_forward(float* out, const float* inp, int64_t n, bool approximate);
void gelu_backward(float* dinp, const float* dout, const float* inp, int64_t n, bool approximate);
void silu_forward(float* out, const float* inp, int64_t n);  // x sigmoid(x), also called swish
void silu_backward(float* dinp, const float* dout, const float* inp, int64_t n);
// scale * (x >= 0 ? x : alpha (e^x - 1)); elu has scale 1, selu its fixed alpha and scale.
void elu_forward(float* out, const float* inp, int64_t n, float alpha, float scale);
void elu_backward(float* dinp, const float* dout, const float* inp, int64_t n, float alpha,
                  float scale);
void selu_forward(float* out, const float* inp, int64_t n);
void selu_backward(float* dinp, const float* dout, const float* inp, int64_t n);
void softplus_forward(float* out, const float* inp, int64_t n);  // log(1 + e^x)
void softplus_backward(float* dinp, const float* dout, const float* inp, int64_t n);
void softsign_forward(float* out, const float* inp, int64_t n);  // x / (1 + |x|)
void softsign_backward(float* dinp, const float* dout, const float* inp, int64_t n);
void hard_sigmoid_forward(float* out, const float* inp, int64_t n);  // clip(x / 6 + 1/2, 0, 1)
void hard_sigmoid_backward(float* dinp, const float* dout, const float* inp, int64_t n);
void hard_silu_forward(float* out, const float* inp, int64_t n);  // x hard_sigmoid(x)
void hard_silu_backward(float* dinp, const float* dout, const float* inp, int64_t n);
void mish_forward(float* out, const float* inp, int64_t n);  // x tanh(softplus(x))
void mish_backward(float* dinp, const float* dout, const float* inp, int64_t n);
// Softmax over the last axis of (rows, cols); numerically stable (max subtracted).
void softmax_forward(float* out, const float* inp, int64_t rows, int cols);
void softmax_backward(float* dinp, const float* dout, const float* out, int64_t rows, int cols);
// Softmax and log-softmax over the middle axis of (outer, axis, inner): any axis of an array.
void softmax_axis_forward(float* out, const float* inp, int64_t outer, int axis, int64_t inner);
void softmax_axis_backward(float* dinp, const float* dout, const float* out, int64_t outer, int axis,
                           int64_t inner);
void log_softmax_forward(float* out, const float* inp, int64_t outer, int axis, int64_t inner);
void log_softmax_backward(float* dinp, const float* dout, const float* out, int64_t outer, int axis,
                          int64_t inner);
// PReLU: out = x < 0 ? alpha * x : x, alpha broadcast over the batch and the shared axes. Each
// sample (the input without its batch axis) is described by up to 8 dims, adjacent shared or
// unshared axes merged, with alpha's stride along each (0 for a shared one); alpha (alpha_size)
// is contiguous. dalpha (alpha_size) = the sum of dout * min(x, 0) over the batch and the
// shared axes; dinp or dalpha may be null.
struct PReluGeometry {
    int64_t N;
    int ndim;
    int64_t dims[8];
    int64_t alpha_strides[8];
    int64_t alpha_size;
};
void prelu_forward(float* out, const float* inp, const float* alpha, const PReluGeometry& g);
void prelu_backward(float* dinp, float* dalpha, const float* dout, const float* inp,
                    const float* alpha, const PReluGeometry& g);

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

// ---------------------------------------------------------------- optimizers: see optimizer.h
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
// The calling OS thread's own count, above set_num_threads' (0: none). A model's batch-split
// inference (engine/split_inference.py) runs a slice of the batch on each of its threads, and
// each thread's kernels on that thread alone.
void set_local_num_threads(int n);

// The instruction set the micro-kernels use (cpu_features.cpp): "avx512", "avx2" or "generic".
// Chosen at load time from the CPU (and the CNNKIT_ISA environment variable, which may only lower
// it); set_simd_isa returns false, changing nothing, for a name this CPU or build cannot run.
const char* simd_isa();
bool set_simd_isa(const char* name);

// Whether 3x3 stride-1 convolutions take Winograd's F(2x2, 3x3) or F(4x4, 3x3) where they
// measured faster (conv/conv2d_winograd.cpp: 24+ channels, 7x7+ images); on by default, off to
// compare them with the direct paths.
void set_winograd(bool enabled);
bool winograd_enabled();
// Which tile size Winograd takes: 0 (the default) each where it measured faster (F(4x4, 3x3)
// almost everywhere, conv/conv2d_impl.h), or 2 (F(2x2, 3x3)) or 4 (F(4x4, 3x3)) for
// every pass of every 3x3 stride-1 undilated convolution with a 2x2 output or more, whatever its
// channels, to compare them; another value means 0.
void set_winograd_tile(int m);
int winograd_tile();
// Whether Winograd's forward pass may take its unpacked driver for few channels
// (conv/conv2d_winograd_fused.cpp) where it measured faster: on by default, off to run the packed
// GEMMs everywhere and compare the two.
void set_winograd_fused(bool enabled);
bool winograd_fused_enabled();

}  // namespace cnnkit

// Newer op families declare their kernels in a header each, under the same conventions.
#include "normalization.h"  // BatchNormalization, LayerNormalization
#include "elementwise.h"    // Rescaling, Normalization, SpatialDropout2D, GaussianNoise
#include "optimizer.h"      // SGD, RMSprop, Adam(W), Adagrad, Nadam, Adamax
#include "loss.h"           // Keras 3 losses with sample weights and reductions
