// bind_loss.cpp: the Python bindings of losses: softmax cross-entropy, mean squared error,
// binary cross-entropy (cpp/loss.cpp), and Keras 3's weighted, reduced losses (cpp/loss.h).
#include "check.h"

namespace cnnkit_bind {
namespace {

py::tuple softmax_cross_entropy(const farray& logits, const std::optional<farray>& onehot,
                                const std::optional<larray>& labels, const py::object& out_) {
    require_ndim(logits, 2, "logits");
    require(onehot.has_value() != labels.has_value(), "give exactly one of onehot and labels");
    const int64_t batch = as_int(logits.shape(0), "batch size");
    const int k = as_int(logits.shape(1), "classes");
    if (onehot) require_shape(*onehot, {batch, k}, "y_true");
    if (labels) {
        require_shape(*labels, {batch}, "y_true");
        const int64_t* l = aligned(*labels, "labels");
        for (int64_t i = 0; i < batch; ++i)
            if (l[i] < 0 || l[i] >= k)  // the message is built only for a bad label
                throw py::value_error("label " + std::to_string(l[i]) + " is outside [0, " +
                                      std::to_string(k) + ")");
    }
    farray dlogits = onehot ? output(out_, {batch, k}, "out", {{"logits", logits}, {"onehot", *onehot}})
                            : output(out_, {batch, k}, "out", {{"logits", logits}, {"labels", *labels}});
    float* pd = dlogits.mutable_data();
    const float *pl = aligned(logits, "logits"), *po = onehot ? aligned(*onehot, "onehot") : nullptr;
    const int64_t* pi = labels ? aligned(*labels, "labels") : nullptr;
    double loss;
    without_gil([&] { loss = cnnkit::softmax_cross_entropy(pd, pl, po, pi, batch, k); });
    return py::make_tuple(loss, dlogits);
}

py::tuple mean_squared_error(const farray& y_true, const farray& y_pred, const py::object& out_) {
    require_shape(y_true, shape_of(y_pred), "y_true");
    require(y_pred.size() > 0, "y_pred is empty");
    farray grad = output(out_, shape_of(y_pred), "out", {{"y_true", y_true}, {"y_pred", y_pred}});
    float* pg = grad.mutable_data();
    const float *pp = aligned(y_pred, "y_pred"), *pt = aligned(y_true, "y_true");
    const int64_t n = y_pred.size();
    double loss;
    without_gil([&] { loss = cnnkit::mean_squared_error(pg, pp, pt, n); });
    return py::make_tuple(loss, grad);
}

py::tuple binary_crossentropy(const farray& y_true, const farray& y_pred, float eps,
                              const py::object& out_) {
    require_shape(y_true, shape_of(y_pred), "y_true");
    require(y_pred.size() > 0, "y_pred is empty");
    require(eps >= 0.0f && eps < 0.5f, "epsilon must be in [0, 0.5)");
    farray grad = output(out_, shape_of(y_pred), "out", {{"y_true", y_true}, {"y_pred", y_pred}});
    float* pg = grad.mutable_data();
    const float *pp = aligned(y_pred, "y_pred"), *pt = aligned(y_true, "y_true");
    const int64_t n = y_pred.size();
    double loss;
    without_gil([&] { loss = cnnkit::binary_crossentropy(pg, pp, pt, n, eps); });
    return py::make_tuple(loss, grad);
}

// Keras 3's reductions, as cnnkit.losses numbers them.
enum Reduction : int { kSum = 0, kSumOverBatchSize = 1, kMeanWithSampleWeight = 2, kNone = 3 };

// The rows of pred (rows, K), their weights and the reduction's scale. `valid` says whether a
// row counts (an ignored class does not): Keras divides 'sum_over_batch_size' by the rows
// that count, and 'mean_with_sample_weight' by their summed weights; a zero divisor gives a
// zero loss (Keras' divide_no_nan).
template <class Valid>
cnnkit::LossRows loss_rows(const farray& pred, const std::optional<farray>& sample_weight,
                           int reduction, const Valid& valid) {
    require_ndim(pred, 2, "y_pred");
    require(reduction >= kSum && reduction <= kNone, "reduction must be 0, 1, 2 or 3");
    cnnkit::LossRows r;
    r.rows = pred.shape(0);
    r.K = as_int(pred.shape(1), "the last axis");
    require(r.rows > 0, "y_pred is empty");
    if (sample_weight) {
        require_ndim(*sample_weight, 1, "sample_weight");
        const int64_t n = sample_weight->shape(0);
        require(n > 0 && r.rows % n == 0, "sample_weight has " + std::to_string(n) +
                " values, which do not divide the " + std::to_string(r.rows) + " rows of y_pred");
        r.sample_weight = aligned(*sample_weight, "sample_weight");
        r.rows_per_sample = r.rows / n;
    }
    double divisor = 1.0;
    if (reduction == kSumOverBatchSize || reduction == kMeanWithSampleWeight) {
        divisor = 0.0;
        for (int64_t i = 0; i < r.rows; ++i)
            if (valid(i))
                divisor += reduction == kMeanWithSampleWeight && r.sample_weight
                               ? r.sample_weight[i / r.rows_per_sample] : 1.0;
    }
    r.scale = divisor == 0.0 ? 0.0 : 1.0 / divisor;
    return r;
}

// (loss, gradient or None, per-row values or None): the values for reduction 'none'.
template <class Kernel>
py::tuple run_loss(cnnkit::LossRows r, const farray& pred, bool need_grad, int reduction,
                   const py::object& out_, const py::object& values_out_,
                   std::initializer_list<Input> inputs, const Kernel& kernel) {
    py::object grad = py::none(), values = py::none();
    float* pg = nullptr;
    if (need_grad) {
        farray g = output(out_, shape_of(pred), "out", inputs);
        pg = g.mutable_data();
        grad = g;
    } else {
        require(out_.is_none(), "out must be None when need_grad is False");
    }
    if (reduction == kNone || !values_out_.is_none()) {
        farray v = output(values_out_, {static_cast<py::ssize_t>(r.rows)}, "values_out", inputs);
        r.row_values = v.mutable_data();
        values = v;
    }
    double loss;
    without_gil([&] { loss = kernel(pg, r); });
    return py::make_tuple(loss, grad, values);
}

py::tuple elementwise_loss(const farray& y_true, const farray& y_pred, int kind, float param,
                           float label_smoothing, const std::optional<farray>& sample_weight,
                           int reduction, bool need_grad, const py::object& out_,
                           const py::object& values_out_) {
    require(kind >= cnnkit::kLossMeanSquared && kind <= cnnkit::kLossKLDivergence,
            "unknown loss kind " + std::to_string(kind));
    require(std::isfinite(param) && param >= 0.0f, "the loss parameter must be finite and >= 0");
    require(label_smoothing >= 0.0f && label_smoothing <= 1.0f, "label_smoothing must be in [0, 1]");
    require_shape(y_true, shape_of(y_pred), "y_true");
    auto r = loss_rows(y_pred, sample_weight, reduction, [](int64_t) { return true; });
    const float *pp = aligned(y_pred, "y_pred"), *pt = aligned(y_true, "y_true");
    return run_loss(r, y_pred, need_grad, reduction, out_, values_out_,
                    {{"y_true", y_true}, {"y_pred", y_pred}},
                    [&](float* pg, const cnnkit::LossRows& rows) {
                        return cnnkit::elementwise_loss(pg, pp, pt, rows, kind, param,
                                                        label_smoothing);
                    });
}

py::tuple categorical_loss(const farray& y_pred, const std::optional<farray>& onehot,
                           const std::optional<larray>& labels, bool from_logits, bool focal,
                           float alpha, float gamma, float label_smoothing, float epsilon,
                           const std::optional<int64_t>& ignore_class,
                           const std::optional<farray>& sample_weight, int reduction,
                           bool need_grad, const py::object& out_, const py::object& values_out_) {
    require_ndim(y_pred, 2, "y_pred");
    require(onehot.has_value() != labels.has_value(), "give exactly one of onehot and labels");
    require(!ignore_class || labels, "ignore_class needs class indices (labels)");
    require(std::isfinite(alpha) && std::isfinite(gamma) && gamma >= 0.0f,
            "alpha must be finite and gamma finite and >= 0");
    require(label_smoothing >= 0.0f && label_smoothing <= 1.0f, "label_smoothing must be in [0, 1]");
    require(epsilon > 0.0f && epsilon < 0.5f, "epsilon must be in (0, 0.5)");
    const int64_t rows = y_pred.shape(0);
    const int k = as_int(y_pred.shape(1), "classes");
    const int64_t* pl = nullptr;
    if (onehot) require_shape(*onehot, {rows, k}, "y_true");
    if (labels) {
        require_shape(*labels, {rows}, "y_true");
        pl = aligned(*labels, "labels");
        for (int64_t i = 0; i < rows; ++i)
            if ((pl[i] < 0 || pl[i] >= k) && !(ignore_class && pl[i] == *ignore_class))
                throw py::value_error("label " + std::to_string(pl[i]) + " is outside [0, " +
                                      std::to_string(k) + ")");
    }
    cnnkit::CategoricalLossOptions o;
    o.from_logits = from_logits, o.focal = focal, o.alpha = alpha, o.gamma = gamma;
    o.label_smoothing = label_smoothing, o.eps = epsilon;
    o.has_ignore = ignore_class.has_value();
    o.ignore_class = ignore_class.value_or(0);
    auto r = loss_rows(y_pred, sample_weight, reduction,
                       [&](int64_t i) { return !(o.has_ignore && pl[i] == o.ignore_class); });
    const float *pp = aligned(y_pred, "y_pred"), *po = onehot ? aligned(*onehot, "onehot") : nullptr;
    auto kernel = [&](float* pg, const cnnkit::LossRows& rr) {
        return cnnkit::categorical_loss(pg, pp, po, pl, rr, o);
    };
    if (onehot)
        return run_loss(r, y_pred, need_grad, reduction, out_, values_out_,
                        {{"y_pred", y_pred}, {"onehot", *onehot}}, kernel);
    return run_loss(r, y_pred, need_grad, reduction, out_, values_out_,
                    {{"y_pred", y_pred}, {"labels", *labels}}, kernel);
}

}  // namespace

void bind_loss(py::module_& m) {
    m.def("softmax_cross_entropy", &softmax_cross_entropy, nc("logits"), opt("onehot"), opt("labels"),
          out("out"));
    m.def("mean_squared_error", &mean_squared_error, nc("y_true"), nc("y_pred"), out("out"));
    m.def("binary_crossentropy", &binary_crossentropy, nc("y_true"), nc("y_pred"), "epsilon"_a,
          out("out"));
    m.def("elementwise_loss", &elementwise_loss, nc("y_true"), nc("y_pred"), "kind"_a, "param"_a,
          "label_smoothing"_a, opt("sample_weight"), "reduction"_a, "need_grad"_a, out("out"),
          out("values_out"));
    m.def("categorical_loss", &categorical_loss, nc("y_pred"), opt("onehot"), opt("labels"),
          "from_logits"_a, "focal"_a, "alpha"_a, "gamma"_a, "label_smoothing"_a, "epsilon"_a,
          py::arg("ignore_class").none(true), opt("sample_weight"), "reduction"_a, "need_grad"_a,
          out("out"), out("values_out"));
}

}  // namespace cnnkit_bind
