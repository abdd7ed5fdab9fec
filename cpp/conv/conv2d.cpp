// conv/conv2d.cpp: which convolution algorithm runs (conv/conv2d_impl.h lists them).
//
// Most specialised first: depthwise-shaped groups (one input channel each) take the depthwise
// kernels; other groups and dilated taps the grouped GEMM; then few output channels, few input
// channels (forward and weight gradient), and the packed GEMM for everything else. A stride-1
// input gradient (after the first two cases) runs as a forward convolution where that forward
// takes the few-channel kernels (an RGB output layer's too: its own scatter-add was 3x slower),
// or Winograd's F(2x2, 3x3), which also takes the 3x3 stride-1 forward passes and weight
// gradients it measured faster on (conv/conv2d_winograd.cpp), ahead of the few-channel ones.
#include "../elementwise.h"
#include "conv2d_impl.h"

namespace cnnkit {
namespace {

bool general(const Window2d& g, int groups) { return groups > 1 || g.DH > 1 || g.DW > 1; }
// Groups of one input channel: weight (KH,KW,1,OC) is depthwise's (KH,KW,C,OC/C), in memory too.
bool depthwise(const Window2d& g, int groups) { return groups > 1 && groups == g.C; }

}  // namespace

void conv2d_forward(float* out, const float* inp, const float* weight, const float* bias,
                    const Window2d& g, int OC, bool relu, int groups, const float* residual) {
    // inp is (N,H,W,C), weight is (KH,KW,C/groups,OC), bias is (OC) or null, out is (N,OH,OW,OC)
    if (residual) {
        if (!depthwise(g, groups) && !general(g, groups) && conv::winograd_applies(g, OC))
            return conv::winograd_forward(out, inp, weight, bias, g, OC, relu, residual);
        if (!depthwise(g, groups) && !general(g, groups) && OC > conv::kSmallOC &&
            conv::few_channel_forward_applies(g.C, OC, g.KH * g.KW))
            return conv::few_channel_forward(out, inp, weight, bias, g, OC, relu, residual);
        // Elsewhere the sum (and the ReLU) take a pass of their own over the output.
        conv2d_forward(out, inp, weight, bias, g, OC, false, groups);
        return add_forward(out, out, residual, (int64_t)g.N * g.OH * g.OW * OC, relu);
    }
    if (depthwise(g, groups))
        return depthwise_conv2d_forward(out, inp, weight, bias, g, OC / g.C, relu);
    if (general(g, groups)) return conv::grouped_forward(out, inp, weight, bias, g, OC, relu, groups);
    if (OC <= conv::kSmallOC) return conv::small_oc_forward(out, inp, weight, bias, g, OC, relu);
    if (conv::winograd_applies(g, OC))
        return conv::winograd_forward(out, inp, weight, bias, g, OC, relu, nullptr);
    if (conv::few_channel_forward_applies(g.C, OC, g.KH * g.KW))
        return conv::few_channel_forward(out, inp, weight, bias, g, OC, relu);
    conv::gemm_forward(out, inp, weight, bias, g, OC, relu);
}

void conv2d_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                     const float* inp, const float* weight, const Window2d& g, int OC, int groups) {
    // dout is (N,OH,OW,OC), inp and dinp (N,H,W,C), weight and dweight (KH,KW,C/groups,OC),
    // dbias (OC)
    if (depthwise(g, groups))
        return depthwise_conv2d_backward(dinp, dweight, dbias, dout, inp, weight, g, OC / g.C);
    if (general(g, groups))
        return conv::grouped_backward(dinp, dweight, dbias, dout, inp, weight, g, OC, groups);
    if (dinp && (conv::input_grad_as_forward_applies(g, OC) || conv::winograd_input_grad(g, OC))) {
        conv::input_grad_as_forward(dinp, dout, weight, g, OC);
        dinp = nullptr;
    }
    if ((dweight || dbias) && conv::winograd_weight_grad_applies(g, OC)) {
        conv::winograd_weight_grad(dweight, dbias, dout, inp, g, OC);
        dweight = dbias = nullptr;
    }
    if (OC <= conv::kSmallOC)
        return conv::small_oc_backward(dinp, dweight, dbias, dout, inp, weight, g, OC);
    if (conv::few_channel_weight_grad_applies(g.C, OC, g.KH * g.KW) && (dweight || dbias)) {
        conv::few_channel_weight_grad(dweight, dbias, dout, inp, g, OC);
        dweight = dbias = nullptr;
    }
    if (dinp || dweight || dbias) conv::gemm_backward(dinp, dweight, dbias, dout, inp, weight, g, OC);
}

}  // namespace cnnkit
