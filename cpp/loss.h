// loss.h: Keras 3's losses with sample weights and reductions (loss_weighted.cpp).
//
// A loss is a value per row (every axis of the prediction but the last, of size K), each row
// weighted and the weighted values reduced to one number. Both kernels below return
//   sum over rows r of scale * w(r) * v(r)
// and write d(that)/d(pred) into dpred (when not null), and scale * w(r) * v(r) into
// row_values[r] (when not null, for reduction='none'). w(r) is sample_weight[r / rows_per_sample]
// (1 when null), so one weight per sample covers every row of an image-shaped output. `scale`
// is the reduction (1 / rows for Keras' 'sum_over_batch_size'), worked out by the binding.
#pragma once

#include <cstdint>

namespace cnnkit {

struct LossRows {
    int64_t rows = 0;             // values of the loss: the prediction's size / K
    int K = 0;                    // the last axis, which each row's value reduces
    const float* sample_weight = nullptr;  // (rows / rows_per_sample,) or null
    int64_t rows_per_sample = 1;
    double scale = 1.0;
    float* row_values = nullptr;  // (rows,) or null
};

// Losses whose row value is the mean (KLD: the sum) over K of one function of each
// (prediction, target) pair. `param` is delta for Huber and epsilon for the clipped ones;
// `label_smoothing` moves binary targets towards 0.5 as Keras does (t (1 - s) + s / 2).
enum ElementwiseLossKind : int {
    kLossMeanSquared = 0,
    kLossMeanAbsolute = 1,
    kLossHuber = 2,
    kLossBinaryCrossentropy = 3,        // probabilities, clipped to [eps, 1 - eps]
    kLossBinaryCrossentropyLogits = 4,  // logits, through the stable log-sigmoid
    kLossKLDivergence = 5,              // both clipped to [eps, 1], summed over K
};
double elementwise_loss(float* dpred, const float* pred, const float* target, const LossRows& r,
                        int kind, float param, float label_smoothing);

// Categorical cross-entropy (focal = false) or Keras' categorical focal cross-entropy
// (focal = true: alpha (1 - p)^gamma weights each class's term) of pred (rows, K), on
// probabilities (Keras: normalised to sum 1, clipped to [eps, 1 - eps], no gradient through
// the clip) or on logits (the softmax taken here; plain cross-entropy then uses the stable
// log-softmax and no clip). Targets: soft or one-hot rows `onehot` (rows, K), or class indices
// `labels` (rows,); exactly one is non-null. Targets are smoothed as y (1 - s) + s / K. A row
// whose label equals ignore_class (when has_ignore) counts 0 with a zero gradient.
struct CategoricalLossOptions {
    bool from_logits = false;
    bool focal = false;
    float alpha = 0.25f, gamma = 2.0f;
    float label_smoothing = 0.0f;
    float eps = 1e-7f;
    bool has_ignore = false;
    int64_t ignore_class = 0;
};
double categorical_loss(float* dpred, const float* pred, const float* onehot,
                        const int64_t* labels, const LossRows& r,
                        const CategoricalLossOptions& o);

}  // namespace cnnkit
