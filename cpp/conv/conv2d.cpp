// conv/conv2d.cpp: which convolution algorithm runs (conv/conv2d_impl.h lists them).
//
// Most specialised first: few output channels, then few input channels (forward and weight
// gradient; its input gradient takes the GEMM), then the packed GEMM for everything else.
#include "conv2d_impl.h"

namespace cnnkit {

void conv2d_forward(float* out, const float* inp, const float* weight, const float* bias,
                    const Window2d& g, int OC, bool relu) {
    // inp is (N,H,W,C), weight is (KH,KW,C,OC), bias is (OC) or null, out is (N,OH,OW,OC)
    if (OC <= conv::kSmallOC) return conv::small_oc_forward(out, inp, weight, bias, g, OC, relu);
    if (g.C <= conv::kFewC) return conv::few_channel_forward(out, inp, weight, bias, g, OC, relu);
    conv::gemm_forward(out, inp, weight, bias, g, OC, relu);
}

void conv2d_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                     const float* inp, const float* weight, const Window2d& g, int OC) {
    // dout is (N,OH,OW,OC), inp and dinp (N,H,W,C), weight and dweight (KH,KW,C,OC), dbias (OC)
    if (OC <= conv::kSmallOC)
        return conv::small_oc_backward(dinp, dweight, dbias, dout, inp, weight, g, OC);
    if (g.C <= conv::kFewC && (dweight || dbias)) {
        conv::few_channel_weight_grad(dweight, dbias, dout, inp, g, OC);
        dweight = dbias = nullptr;
    }
    if (dinp || dweight || dbias) conv::gemm_backward(dinp, dweight, dbias, dout, inp, weight, g, OC);
}

}  // namespace cnnkit
