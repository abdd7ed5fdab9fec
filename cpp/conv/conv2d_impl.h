// conv/conv2d_impl.h: the 2-D convolution algorithms, one file each, and what they share.
//
// conv2d_forward / conv2d_backward (cnnkit.h, conv/conv2d.cpp) pick one of these, in the manner
// of oneDNN's ordered implementation list: the most specialised that applies, the GEMM for the
// rest, and the naive loops (conv/conv2d_naive.cpp) as the reference beside them.
//   conv2d_small_oc.cpp      OC <= 4: direct dot products on GCC vectors
//   conv2d_few_channels.cpp  C <= 16 (64 with AVX2): register tiles over the input in place
//   conv2d_gemm.cpp          the packed GEMM over an implicit im2col (gemm.h)
//   conv2d_winograd.cpp      3x3 stride 1, 24+ channels in and out, 7x7+ images: Winograd's
//                            F(2x2, 3x3), forward and weight gradient (the input gradient too,
//                            as the forward pass of the turned kernel); its passes run in
//                            conv2d_winograd_forward.cpp and conv2d_winograd_weight_grad.cpp,
//                            which also run F(4x4, 3x3) (conv2d_winograd_f4.cpp)
//   conv2d_input_grad.cpp    a stride-1 input gradient as a forward convolution
//   conv2d_grouped.cpp       groups > 1 or dilation > 1: the GEMM over a general im2col view
//   depthwise.cpp            one input channel per group: direct loops vectorised over channels
//                            (public: depthwise_conv2d_*; depthwise_naive.cpp its reference)
// conv2d_transpose.cpp builds the transposed convolution from conv2d_forward/backward.
// Internal to the library; the kernels trust their arguments as everywhere (cnnkit.h).
#pragma once
#include <cstdint>

#include "../cnnkit.h"
#include "../cpu_features.h"
#include "../gemm.h"

namespace cnnkit {
namespace conv {

constexpr int kSmallOC = 4;  // output channels up to which conv2d_small_oc.cpp runs
constexpr int kFewC = 16;        // input channels up to which conv2d_few_channels.cpp always runs
constexpr int kFewCNarrow = 32;  // ... and its forward pass where the outputs are as few
constexpr int kFewCWide = 64;    // with AVX2, up to which it runs (forward, weight gradient)
constexpr int kFewCPointwise = 128;  // ... and up to which it runs 1x1 kernels of as few outputs

// With AVX2 (the ISA it was measured on): up to kFewCWide input channels, or a 1x1 kernel of up
// to kFewCPointwise inputs and outputs. Against the GEMM (batch 64, 2 threads, Zen 3, both in
// one process, alternating): forward 1.5-1.8x faster at 3x3 32->64 and 64->64 (8x8 to 16x16
// images) and 1.1-1.9x at 1x1 32->64 to 128->128; level at 3x3 128->128 and behind (0.9x) at 1x1
// 128->256 and 256->256, where the GEMM's packing is shared by enough outputs. Weight gradient:
// 1.1-1.5x up to 64 channels and at 1x1 up to 128, 0.86x at 3x3 128->128.
// Elsewhere the earlier, narrower rule: the AVX-512 GEMM is 16 floats wide while these kernels
// are still 8 wide, and no AVX-512 machine has measured where the crossover lies.
inline bool few_channel_wide(int C, int OC, int taps) {
    return cpu::active_isa() == cpu::Isa::kAvx2 &&
           (C <= kFewCWide || (taps == 1 && C <= kFewCPointwise && OC <= kFewCPointwise));
}
// Whether the forward pass takes conv2d_few_channels.cpp: the wide rule, or up to kFewC input
// channels, or up to kFewCNarrow where the outputs are as few (ResNet-20's 32->32 layers).
inline bool few_channel_forward_applies(int C, int OC, int taps) {
    return few_channel_wide(C, OC, taps) || C <= kFewC || (C <= kFewCNarrow && OC <= kFewCNarrow);
}
// Whether the weight gradient does: the wide rule, or up to kFewC input channels.
inline bool few_channel_weight_grad_applies(int C, int OC, int taps) {
    return few_channel_wide(C, OC, taps) || C <= kFewC;
}

// Scratch of the calling thread, shared by the algorithms (one runs at a time per thread).
inline gemm::Buffer& tl_partials() { thread_local gemm::Buffer b; return b; }  // per-chunk sums
inline gemm::Buffer& tl_dpatches() { thread_local gemm::Buffer b; return b; }  // dinp's patches
inline gemm::Buffer& tl_wt() { thread_local gemm::Buffer b; return b; }        // a weight copy
// The kernel turned for input_grad_as_forward, kept apart from tl_wt, which the forward
// algorithm it calls may use.
inline gemm::Buffer& tl_turned_weight() { thread_local gemm::Buffer b; return b; }

inline gemm::Im2colView im2col_view(const float* inp, const Window2d& g) {
    return gemm::Im2colView{inp, g.H, g.W, g.C, g.KH, g.KW, g.SH, g.SW, g.PT, g.PL, g.OH, g.OW};
}

// Few output channels (OC <= kSmallOC). Any output of the backward pass may be null.
void small_oc_forward(float* out, const float* inp, const float* weight, const float* bias,
                      const Window2d& g, int OC, bool relu);
void small_oc_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                       const float* inp, const float* weight, const Window2d& g, int OC);

// The input rows that output rows oh0 .. oh1-1 of image n read, columns ow*SW - PL .. for
// ow < OW: in place when they lie inside the image (row stride W*C), else zero-padded into buf,
// which holds ((oh1-oh0-1)*SH + KH) * ((OW-1)*SW + KW) * C floats. Returns the block; *rs is
// its row stride. Output pixel (r, ow) of the block reads tap (dy, q) at (r*SH + dy)*rs +
// ow*SW*C + q. (conv2d_few_channels.cpp; the small-OC weight gradient reads rows through it too.)
const float* input_block(const float* inp, const Window2d& g, int64_t n, int oh0, int oh1,
                         float* buf, int64_t* rs);

// Few input channels (few_channel_*_applies): the forward pass and the weight gradient (either
// may be null).
// residual (N,OH,OW,OC) or null: added to each tile before the ReLU (cnnkit.h, conv2d_forward).
void few_channel_forward(float* out, const float* inp, const float* weight, const float* bias,
                         const Window2d& g, int OC, bool relu, const float* residual = nullptr);
void few_channel_weight_grad(float* dweight, float* dbias, const float* dout, const float* inp,
                             const Window2d& g, int OC);

// The GEMM path, any shape without dilation or groups.
void gemm_forward(float* out, const float* inp, const float* weight, const float* bias,
                  const Window2d& g, int OC, bool relu);
void gemm_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                   const float* inp, const float* weight, const Window2d& g, int OC);

// The input gradient of a stride-1, undilated convolution of few output channels (pointwise
// ones too, with AVX2) as the forward convolution of dout with the kernel turned
// (conv/conv2d_input_grad.cpp).
bool input_grad_as_forward_applies(const Window2d& g, int OC);
// Whether the turned forward pass would take Winograd's F(2x2, 3x3) (winograd_applies).
bool winograd_input_grad(const Window2d& g, int OC);
void input_grad_as_forward(float* dinp, const float* dout, const float* weight, const Window2d& g,
                           int OC);

// 3x3, stride 1, undilated, ungrouped, at least kWinogradMinChannels input and output channels,
// a tile grid overhanging the output by at most a third, while set_winograd(true) (the
// default): Winograd's F(2x2, 3x3) (conv/conv2d_winograd.cpp). The weight gradient also needs
// kWinogradWeightGradMinOC outputs. F(4x4, 3x3) (conv/conv2d_winograd_f4.cpp) takes the shapes
// of these whose 4x4 tiles make fewer products than the 2x2 ones, with at most
// kWinogradF4MaxChannels channels in and out together. set_winograd_tile (cnnkit.h) may force
// either tile size. F(4x4)'s forward pass of few channels (64 in and out together, or 128 on
// outputs up to 8x8) runs unpacked on AVX2 (conv/conv2d_winograd_fused.cpp), same outputs.
constexpr int kWinogradMinChannels = 24;
// In an inference plan's cache-resident passes (winograd_choice), from 16 in and out.
constexpr int kWinogradHotMinChannels = 16;
constexpr int kWinogradWeightGradMinOC = 64;
constexpr int kWinogradF4MaxChannels = 512;
bool winograd_applies(const Window2d& g, int OC);
// The output tile side the forward pass takes: 2 (F(2x2, 3x3)), 4 (F(4x4, 3x3)), or 0 where
// neither applies; the same for the weight gradient.
int winograd_output_tile(const Window2d& g, int OC);
int winograd_weight_grad_tile(const Window2d& g, int OC);
bool winograd_weight_grad_applies(const Window2d& g, int OC);
// residual (N,OH,OW,OC) or null: added before the ReLU, as few_channel_forward does.
void winograd_forward(float* out, const float* inp, const float* weight, const float* bias,
                      const Window2d& g, int OC, bool relu, const float* residual);
// The forward pass chosen once for many calls of one shape (N aside) and its kernels made
// ready once: an inference plan's passes (inference_plan.cpp). tile 0: no Winograd.
// in_cache: the calls' activations stay in cache (a plan's few images a pass), where F(4x4)
// unpacked also beats the direct kernels on 16 channels in and out (see winograd_choice).
struct WinogradChoice {
    int tile = 0;
    bool fused = false;  // the unpacked driver
};
WinogradChoice winograd_choice(const Window2d& g, int OC, bool in_cache);
int64_t winograd_prepared_floats(WinogradChoice c, const Window2d& g, int OC);
void winograd_prepare(float* dst, WinogradChoice c, const float* weight, const Window2d& g, int OC);
void winograd_forward_prepared(float* out, const float* inp, const float* prepared,
                               WinogradChoice c, const float* bias, const Window2d& g, int OC,
                               bool relu, const float* residual);
// Either output may be null.
void winograd_weight_grad(float* dweight, float* dbias, const float* dout, const float* inp,
                          const Window2d& g, int OC);

// Groups > 1 or dilation > 1 (C and OC divisible by groups).
void grouped_forward(float* out, const float* inp, const float* weight, const float* bias,
                     const Window2d& g, int OC, bool relu, int groups);
void grouped_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                      const float* inp, const float* weight, const Window2d& g, int OC,
                      int groups);

// Depthwise (one input channel per group, DM outputs each): conv/depthwise.cpp. The fast
// version runs DM = 1 and leaves DM > 1 to the naive loops (conv/depthwise_naive.cpp).

}  // namespace conv
}  // namespace cnnkit
