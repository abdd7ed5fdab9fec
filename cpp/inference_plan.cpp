// inference_plan.cpp: checking a plan's ops, assigning arena slots, and running it (see the header).
#include "inference_plan.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "elementwise.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace cnnkit {
namespace plan {
namespace {

[[noreturn]] void fail(std::size_t i, const std::string& why) {
    throw std::invalid_argument("inference plan op " + std::to_string(i) + ": " + why);
}

int64_t window_in(const Window2d& g) { return (int64_t)g.H * g.W * g.C; }

// The per-image sizes an op reads and writes, checked against its tensors.
void check_op(std::size_t i, const Op& op, const std::vector<int64_t>& floats) {
    const int64_t in = floats[op.in], out = floats[op.out];
    const int64_t in2 = op.in2 >= 0 ? floats[op.in2] : -1;
    auto positive = [&](const Window2d& g) {
        if (g.H < 1 || g.W < 1 || g.C < 1 || g.KH < 1 || g.KW < 1 || g.SH < 1 || g.SW < 1 ||
            g.OH < 1 || g.OW < 1 || g.DH < 1 || g.DW < 1 || g.PT < 0 || g.PL < 0 ||
            g.PT >= (g.KH - 1) * g.DH + 1 || g.PL >= (g.KW - 1) * g.DW + 1)
            fail(i, "bad window");
        // Every output's window starts inside the padded input (as the bindings' conv_window).
        if ((int64_t)(g.OH - 1) * g.SH - g.PT > g.H - 1 || (int64_t)(g.OW - 1) * g.SW - g.PL > g.W - 1)
            fail(i, "the output is larger than the window allows");
    };
    switch (op.kind) {
        case Kind::Conv:
            positive(op.g);
            if (op.oc < 1) fail(i, "no output channels");
            if (in != window_in(op.g) || out != (int64_t)op.g.OH * op.g.OW * op.oc)
                fail(i, "tensor sizes do not match the convolution");
            if (op.in2 >= 0 && in2 != out) fail(i, "the residual is not the output's size");
            break;
        case Kind::Depthwise:
            positive(op.g);
            if (op.oc < 1 || op.oc % op.g.C != 0) fail(i, "output channels not a multiple of the input's");
            if (in != window_in(op.g) || out != (int64_t)op.g.OH * op.g.OW * op.oc || op.in2 >= 0)
                fail(i, "tensor sizes do not match the convolution");
            break;
        case Kind::MaxPool:
            positive(op.g);
            if (in != window_in(op.g) || out != (int64_t)op.g.OH * op.g.OW * op.g.C || op.in2 >= 0)
                fail(i, "tensor sizes do not match the pooling");
            break;
        case Kind::Add:
            if (op.in2 < 0 || in != out || in2 != out) fail(i, "an add needs two inputs of its output's size");
            break;
        case Kind::Relu:
            if (in != out || op.in2 >= 0) fail(i, "relu keeps its input's size");
            break;
        case Kind::GlobalAvgPool:
            if (op.features < 1 || in % op.features != 0 || out != op.features || op.in2 >= 0)
                fail(i, "tensor sizes do not match the pooling");
            break;
        case Kind::Dense:
            if (op.features < 1 || op.oc < 1 || in != op.features || out != op.oc || op.in2 >= 0)
                fail(i, "tensor sizes do not match the dense layer");
            break;
        case Kind::Softmax:
            if (op.features < 1 || in != out || in % op.features != 0 || op.in2 >= 0)
                fail(i, "tensor sizes do not match the softmax");
            break;
    }
}

}  // namespace

Plan::Plan(std::vector<int64_t> floats, int input, int output, std::vector<Op> ops, int whole_from)
    : floats_(std::move(floats)), input_(input), output_(output), ops_(std::move(ops)),
      whole_from_(whole_from) {
    const int T = (int)floats_.size();
    if (input < 0 || input >= T || output < 0 || output >= T)
        throw std::invalid_argument("inference plan: input or output is not a tensor");
    for (int64_t f : floats_)
        if (f < 1) throw std::invalid_argument("inference plan: a tensor of no floats");
    std::vector<int> made(T, -2);  // the op writing each tensor; -1 for the input
    made[input] = -1;
    std::vector<int> last(T, -1);  // the last op reading each tensor
    for (std::size_t i = 0; i < ops_.size(); ++i) {
        const Op& op = ops_[i];
        if (op.in < 0 || op.in >= T || op.out < 0 || op.out >= T || op.in2 < -1 || op.in2 >= T)
            fail(i, "a tensor number is out of range");
        if (made[op.in] == -2 || (op.in2 >= 0 && made[op.in2] == -2))
            fail(i, "reads a tensor no earlier op wrote");
        if (made[op.out] != -2) fail(i, "writes a tensor written before");
        if (op.out == op.in || op.out == op.in2) fail(i, "writes its own input");
        check_op(i, op, floats_);
        made[op.out] = (int)i;
        last[op.in] = (int)i;
        if (op.in2 >= 0) last[op.in2] = (int)i;
    }
    if (made[output] == -2) throw std::invalid_argument("inference plan: no op writes the output");

    if (whole_from_ < 0 || whole_from_ > (int)ops_.size())
        throw std::invalid_argument("inference plan: whole_from is not an op index or the op count");

    // Where each tensor lives: the input in x; a tensor written by a pass op and read only by
    // pass ops in the worker's pass slots; the others (read by a whole-batch op, or the output
    // of one) in whole-batch slots. Each set of slots is reused by liveness: an op's output
    // takes a slot freed before the op (never one of its inputs'); the plan's output keeps its
    // own to the end.
    std::vector<bool> whole(T, false);
    for (std::size_t i = whole_from_; i < ops_.size(); ++i)
        for (int t : {ops_[i].in, ops_[i].in2, ops_[i].out})
            if (t >= 0 && t != input_) whole[t] = true;
    slot_.assign(T, -1);
    auto assign = [&](int t, std::vector<int>& free_slots, std::vector<int64_t>& slot_floats) {
        int s;
        if (!free_slots.empty()) {
            // The free slot closest in size: fewer slots grow.
            auto best = free_slots.begin();
            for (auto it = free_slots.begin(); it != free_slots.end(); ++it)
                if (std::abs(slot_floats[*it] - floats_[t]) < std::abs(slot_floats[*best] - floats_[t]))
                    best = it;
            s = *best;
            free_slots.erase(best);
            slot_floats[s] = std::max(slot_floats[s], floats_[t]);
        } else {
            s = (int)slot_floats.size();
            slot_floats.push_back(floats_[t]);
        }
        slot_[t] = s;
    };
    auto release = [&](std::size_t i, std::vector<int>& free_slots, bool in_whole) {
        const Op& op = ops_[i];
        for (int r : {op.in, op.in2, op.out})
            if (r >= 0 && r != input_ && r != output_ && whole[r] == in_whole && last[r] <= (int)i &&
                std::find(free_slots.begin(), free_slots.end(), slot_[r]) == free_slots.end())
                free_slots.push_back(slot_[r]);
    };
    whole_tensor_ = whole;
    std::vector<int> free_pass, free_whole;
    for (std::size_t i = 0; i < ops_.size(); ++i) {
        const int t = ops_[i].out;
        if (whole[t])
            assign(t, free_whole, whole_floats_);
        else
            assign(t, free_pass, slot_floats_);
        // A pass op's tensors read by whole-batch ops stay until those have run.
        if ((int)i >= whole_from_) release(i, free_whole, true);
        release(i, free_pass, false);
    }

    // The Winograd path of each convolution, its kernels' room in prepared_.
    wino_.resize(ops_.size());
    prepared_at_.assign(ops_.size(), -1);
    for (std::size_t i = 0; i < ops_.size(); ++i) {
        const Op& op = ops_[i];
        if (op.kind != Kind::Conv) continue;
        Window2d g = op.g;
        g.N = 1;
        wino_[i] = conv::winograd_choice(g, op.oc, true);
        if (wino_[i].tile) {
            prepared_ops_.push_back((int)i);
            prepared_at_[i] = prepared_floats_;
            // Rounded to whole cache lines: each one's kernels start aligned.
            prepared_floats_ += gemm::round_up(conv::winograd_prepared_floats(wino_[i], g, op.oc), 16);
        }
    }
}

int64_t Plan::arena_floats_per_image() const {
    int64_t total = 0;
    for (int64_t f : slot_floats_) total += f;
    return total;
}

void Plan::run_ops(int first, int last, std::vector<gemm::Buffer>& arena, const float* x,
                   int64_t n0, int m, const std::vector<Weights>& weights) {
    auto at = [&](int t) -> float* {
        if (t == input_) return const_cast<float*>(x) + n0 * floats_[t];  // read only
        if (whole_tensor_[t]) return whole_[slot_[t]].data() + n0 * floats_[t];
        return arena[slot_[t]].data();
    };
    for (int i = first; i < last; ++i) {
        const Op& op = ops_[i];
        const float* in = at(op.in);
        const float* in2 = op.in2 >= 0 ? at(op.in2) : nullptr;
        float* y = at(op.out);
        const int64_t n = (int64_t)m * floats_[op.out];
        switch (op.kind) {
            case Kind::Conv: {
                Window2d g = op.g;
                g.N = m;
                if (wino_[i].tile)
                    conv::winograd_forward_prepared(y, in, prepared_.data() + prepared_at_[i],
                                                    wino_[i], weights[i].bias, g, op.oc, op.relu, in2);
                else
                    conv2d_forward(y, in, weights[i].weight, weights[i].bias, g, op.oc, op.relu, 1, in2);
                break;
            }
            case Kind::Depthwise: {
                Window2d g = op.g;
                g.N = m;
                depthwise_conv2d_forward(y, in, weights[i].weight, weights[i].bias, g,
                                         op.oc / op.g.C, op.relu);
                break;
            }
            case Kind::Add: add_forward(y, in, in2, n, op.relu); break;
            case Kind::Relu: relu_forward(y, in, n); break;
            case Kind::MaxPool: {
                Window2d g = op.g;
                g.N = m;
                maxpool2d_forward(y, nullptr, in, g);
                break;
            }
            case Kind::GlobalAvgPool:
                global_avgpool2d_forward(y, in, m, floats_[op.in] / op.features, op.features);
                break;
            case Kind::Dense:
                dense_forward(y, in, weights[i].weight, weights[i].bias, m, op.features, op.oc, op.relu);
                break;
            case Kind::Softmax: softmax_forward(y, in, n / op.features, op.features); break;
        }
    }
}

void Plan::run(float* out, const float* x, int64_t N, int images, const std::vector<Weights>& weights) {
    std::lock_guard<std::mutex> hold(mutex_);
    if (N <= 0) return;
    images = (int)std::max<int64_t>(1, std::min<int64_t>(images, N));
    prepared_.resize((std::size_t)prepared_floats_);
    auto prepare = [&](int i) {
        Window2d g = ops_[i].g;
        g.N = 1;
        conv::winograd_prepare(prepared_.data() + prepared_at_[i], wino_[i], weights[i].weight, g,
                               ops_[i].oc);
    };
    const int64_t preparing = (int64_t)prepared_ops_.size();
#ifdef _OPENMP
    // The kernels, one op a thread (most transforms are single-threaded): at 2 threads a serial
    // loop was some 2% of ResNet-20's call at batch 64.
    const int prepare_threads = (int)std::min<int64_t>(omp_get_max_threads(), preparing);
    if (prepare_threads > 1) {
#pragma omp parallel num_threads(prepare_threads)
        {
            omp_set_num_threads(1);
#pragma omp for schedule(dynamic, 1)
            for (int64_t k = 0; k < preparing; ++k) prepare(prepared_ops_[k]);
        }
    } else
#endif
    {
        for (int64_t k = 0; k < preparing; ++k) prepare(prepared_ops_[k]);
    }
    whole_.resize(whole_floats_.size());
    for (std::size_t s = 0; s < whole_floats_.size(); ++s)
        gemm::reserve(whole_[s], (std::size_t)(N * whole_floats_[s]));
    const int64_t passes = (N + images - 1) / images;
#ifdef _OPENMP
    const int threads = (int)std::min<int64_t>(omp_get_max_threads(), passes);
#else
    const int threads = 1;
#endif
    if ((int)arenas_.size() < std::max(threads, 1)) arenas_.resize(std::max(threads, 1));
    for (int w = 0; w < threads; ++w) {
        arenas_[w].resize(slot_floats_.size());
        for (std::size_t s = 0; s < slot_floats_.size(); ++s)
            gemm::reserve(arenas_[w][s], (std::size_t)(images * slot_floats_[s]));
    }
    const int64_t out_floats = floats_[output_];
    // One pass: the pass ops on images [n0, n0 + m), then the output, if a pass op wrote it.
    auto pass = [&](std::vector<gemm::Buffer>& arena, int64_t n0) {
        const int m = (int)std::min<int64_t>(images, N - n0);
        run_ops(0, whole_from_, arena, x, n0, m, weights);
        if (!whole_tensor_[output_])
            std::memcpy(out + n0 * out_floats, arena[slot_[output_]].data(),
                        sizeof(float) * (std::size_t)(m * out_floats));
    };
    if (whole_from_ > 0) {
        if (threads <= 1) {  // one worker: each pass's kernels on all the caller's threads
            for (int64_t p = 0; p < passes; ++p) pass(arenas_[0], p * images);
        } else {
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
            {
                // This thread's kernels run on it alone: their parallel regions get one thread.
                omp_set_num_threads(1);
                std::vector<gemm::Buffer>& arena = arenas_[omp_get_thread_num()];
#pragma omp for schedule(dynamic, 1)
                for (int64_t p = 0; p < passes; ++p) pass(arena, p * images);
            }
#endif
        }
    }
    // The whole batch, each kernel on all the threads.
    if (whole_from_ < (int)ops_.size()) run_ops(whole_from_, (int)ops_.size(), arenas_[0], x, 0, (int)N, weights);
    if (whole_tensor_[output_])
        std::memcpy(out, whole_[slot_[output_]].data(), sizeof(float) * (std::size_t)(N * out_floats));
}

}  // namespace plan
}  // namespace cnnkit
