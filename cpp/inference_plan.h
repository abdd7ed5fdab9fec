// inference_plan.h: a model's whole inference pass as one C++ call, run depth-first.
//
// A layer-by-layer pass over a batch of 64 CIFAR images writes each 32x32x16 activation (4 MB)
// to memory and reads it back in the next layer: on a VM whose share of L3 is a few MB, ResNet-20's
// first stage ran its direct kernels at ~58 GFLOP/s against ~74 with the data in cache. A plan
// runs every layer on a few images at a time instead (a pass), so that a pass's activations stay
// in L2, and hands the passes to the threads (each one's kernels then run on it alone, as
// batch-split inference does: no parallel region per layer). The Winograd kernels are transformed
// once per run, not once per pass, and no Python runs between the layers.
//
// The ops are the inference forms of cnnkit's layers (engine/inference_plan.py builds them):
// a convolution with its BatchNormalization folded in and its residual sum and ReLU fused, a
// depthwise convolution, an elementwise sum, ReLU, max pooling, global average pooling, dense and softmax. Tensors are
// numbered; each op writes a new one (single assignment). A tensor's values for the images of a
// pass live in a slot of the worker's arena, reused once its last reader has run.
//
// Depth-first suits ops that do much work per weight. A dense layer on a pass of a few images
// reads its whole kernel for a few rows (Keras' CIFAR-10 example CNN's Dense of 512 on 2,304
// features: 4.7 MB for 4 rows; the plan ran that CNN 2x slower than layer by layer): from such
// an op on (whole_from, engine/inference_plan.py decides it), the plan runs the rest on the
// whole batch, once every pass is done, each kernel on all the threads.
//
// Contract: the constructor checks every op against the tensors' sizes and throws
// std::invalid_argument; run() trusts its arguments (the bindings check them) and throws nothing.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "cnnkit.h"
#include "conv/conv2d_impl.h"
#include "gemm.h"

namespace cnnkit {
namespace plan {

enum class Kind { Conv, Depthwise, Add, Relu, MaxPool, GlobalAvgPool, Dense, Softmax };

struct Op {
    Kind kind = Kind::Relu;
    int in = -1;    // the tensor read
    int in2 = -1;   // Add's second input, or a Conv's residual (added before the ReLU); else -1
    int out = -1;   // the tensor written
    Window2d g{};   // Conv, Depthwise, MaxPool: the window over one image (g.N: the pass's images)
    int oc = 0;     // Conv, Depthwise: output channels (Depthwise: C * multiplier); Dense: OUT
    int features = 0;  // Dense: IN; GlobalAvgPool: channels; Softmax: columns
    bool relu = false;  // Conv, Depthwise, Add, Dense: max(0, .) fused
};

// An op's weights for one run: weight (and bias, or null) as conv2d_forward / dense_forward take
// them; null for ops without weights.
struct Weights {
    const float* weight = nullptr;
    const float* bias = nullptr;
};

class Plan {
  public:
    // floats: each tensor's floats per image; input, output: the tensors of x and out;
    // whole_from: the first op run on the whole batch at once (ops.size(): none), after every
    // pass of the ops before it.
    Plan(std::vector<int64_t> floats, int input, int output, std::vector<Op> ops, int whole_from);

    const std::vector<Op>& ops() const { return ops_; }
    int64_t floats(int tensor) const { return floats_[tensor]; }
    int input() const { return input_; }
    int output() const { return output_; }
    int whole_from() const { return whole_from_; }
    // How many pass slots a worker holds, and their floats per image in all (the liveness
    // reuse); the whole-batch slots, shared.
    int slots() const { return (int)slot_floats_.size(); }
    int whole_slots() const { return (int)whole_floats_.size(); }
    int64_t arena_floats_per_image() const;
    // The Winograd path each Conv op takes (tile 0: the dispatcher's other kernels).
    conv::WinogradChoice winograd(int op) const { return wino_[op]; }

    // out (N, floats(output)) = the pass over x (N, floats(input)), `images` images at a time,
    // on the OpenMP thread count of the caller (passes shared among the threads when there are
    // at least as many passes as threads, else each pass's kernels spread over them). weights:
    // one per op. Serialised: a second caller waits.
    void run(float* out, const float* x, int64_t N, int images, const std::vector<Weights>& weights);

  private:
    // ops [first, last) on images [n0, n0 + m): the pass slots in arena, the whole-batch ones
    // at image n0 of theirs.
    void run_ops(int first, int last, std::vector<gemm::Buffer>& arena, const float* x, int64_t n0,
                 int m, const std::vector<Weights>& weights);

    std::vector<int64_t> floats_;
    int input_, output_;
    std::vector<Op> ops_;
    int whole_from_;
    std::vector<conv::WinogradChoice> wino_;  // per op
    std::vector<int64_t> prepared_at_;        // per op: offset of its prepared kernels, or -1
    std::vector<int> prepared_ops_;           // the ops with prepared kernels
    int64_t prepared_floats_ = 0;
    std::vector<int> slot_;                  // per tensor: its slot (-1: the input)
    std::vector<bool> whole_tensor_;         // per tensor: in a whole-batch slot
    std::vector<int64_t> slot_floats_;       // per pass slot: floats per image
    std::vector<int64_t> whole_floats_;      // per whole-batch slot: floats per image
    gemm::Buffer prepared_;
    std::vector<std::vector<gemm::Buffer>> arenas_;  // per worker thread, a buffer per pass slot
    std::vector<gemm::Buffer> whole_;                // a buffer per whole-batch slot
    std::mutex mutex_;
};

}  // namespace plan
}  // namespace cnnkit
