// conv/conv2d_input_grad.cpp: the input gradient of a stride-1 convolution as a forward one.
//
// With stride 1, out[oh] = sum_dy inp[oh - PT + dy] * w[dy] (likewise along the width), so
// dinp[i] = sum_dy dout[i + PT - dy] * w[dy]: a forward convolution of dout, padded by
// KH-1-PT at the top (KW-1-PL at the left), with the kernel turned by 180 degrees and its input
// and output channels swapped (as cuDNN and oneDNN compute the "backward data" pass of a
// stride-1 convolution). Run through conv2d_forward, it takes the few-channel kernels, which
// read dout in place, instead of the GEMM into patch rows followed by a scalar scatter-add of
// every patch (col2im), which moved KH*KW times dinp's size through the caches. Used only where
// it measured faster: see the condition below.
#include "conv2d_impl.h"

namespace cnnkit {
namespace conv {

namespace {

// Stride 1, undilated, padded by no more than the kernel's size less one (so that the turned
// convolution's own padding is not negative).
bool turnable(const Window2d& g) {
    return g.SH == 1 && g.SW == 1 && g.DH == 1 && g.DW == 1 && g.PT <= g.KH - 1 &&
           g.PL <= g.KW - 1;
}

// The forward convolution that computes the input gradient: over dout (OC channels), padded by
// KH-1-PT at the top and KW-1-PL at the left, making g's input size.
Window2d turned_window(const Window2d& g, int OC) {
    Window2d back{};
    back.N = g.N;
    back.H = g.OH;
    back.W = g.OW;
    back.C = OC;
    back.KH = g.KH;
    back.KW = g.KW;
    back.SH = back.SW = 1;
    back.PT = g.KH - 1 - g.PT;
    back.PL = g.KW - 1 - g.PL;
    back.OH = g.H;
    back.OW = g.W;
    return back;
}

}  // namespace

bool winograd_input_grad(const Window2d& g, int OC) {
    // Always where the turned forward pass takes Winograd's tiles: at airbench94's 3x3 shapes
    // (64 to 256 channels) that is 1.5-2x fewer multiplications than the GEMM and its col2im.
    return turnable(g) && winograd_applies(turned_window(g, OC), g.C);
}

bool input_grad_as_forward_applies(const Window2d& g, int OC) {
    // Only where the forward convolution of dout (OC input channels, C outputs) takes the
    // few-channel kernels: measured at ResNet-20's shapes (batch 64, 2 threads, AVX2), the 16->16
    // 3x3 backward pass took 8.5 -> 7.1 ms, but through the GEMM forward the 32->32 and 64->64
    // ones ran 4-10% slower than the GEMM into patch rows with its col2im, whose packing of plain
    // rows of dout is cheaper than packing an im2col view of it. A pointwise input gradient is a
    // plain GEMM, dout * weight^T, but one whose few columns (C) make its packing of dout cost
    // as much as the multiply: as a forward pass it took 5.3 -> 2.1 ms at 32x32 32->64, 4.1 ->
    // 3.0 at 16x16 64->128 and 5.4 -> 4.8 at 128->128 (batch 64, 2 threads, AVX2 Zen 3).
    if (!few_channel_forward_applies(OC, g.C, g.KH * g.KW)) return false;
    const bool pointwise = g.KH == 1 && g.KW == 1;
    if (pointwise && !few_channel_wide(OC, g.C, 1)) return false;  // measured with AVX2 only
    // The forward pass computes every dinp pixel over all KH*KW taps, where the ones outside
    // dout read zeros: for an unpadded ('valid') convolution that is (H*W)/(OH*OW) times the
    // work, 1.33x at 15x15 -> 13x13, where it ran 10-20% slower than the GEMM. Up to 1/8 more.
    // (Not for an RGB output layer's few channels: the scatter-add it would take instead was
    // 3x slower, zeros and all.)
    if (OC > kSmallOC && (int64_t)g.H * g.W * 8 > (int64_t)g.OH * g.OW * 9) return false;
    return turnable(g);
}

void input_grad_as_forward(float* dinp, const float* dout, const float* weight, const Window2d& g,
                           int OC) {
    // weight is (KH,KW,C,OC); the turned kernel is (KH,KW,OC,C): element (KH-1-dy, KW-1-dx, oc, c)
    // of it is element (dy, dx, c, oc) of weight.
    const int64_t taps = static_cast<int64_t>(g.KH) * g.KW, C = g.C;
    float* turned = gemm::reserve(tl_turned_weight(), static_cast<std::size_t>(taps * C * OC));
    for (int64_t t = 0; t < taps; ++t) {
        const float* src = weight + t * C * OC;
        float* dst = turned + (taps - 1 - t) * OC * C;
        for (int64_t c = 0; c < C; ++c)
            for (int64_t oc = 0; oc < OC; ++oc) dst[oc * C + c] = src[c * OC + oc];
    }
    const Window2d back = turned_window(g, OC);
    conv2d_forward(dinp, dout, turned, nullptr, back, g.C, false, 1);
}

}  // namespace conv
}  // namespace cnnkit
