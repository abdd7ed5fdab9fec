// bind_loss.cpp: the Python bindings of losses: softmax cross-entropy, mean squared error, binary cross-entropy (cpp/loss.cpp).
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

}  // namespace

void bind_loss(py::module_& m) {
    m.def("softmax_cross_entropy", &softmax_cross_entropy, nc("logits"), opt("onehot"), opt("labels"),
          out("out"));
    m.def("mean_squared_error", &mean_squared_error, nc("y_true"), nc("y_pred"), out("out"));
    m.def("binary_crossentropy", &binary_crossentropy, nc("y_true"), nc("y_pred"), "epsilon"_a,
          out("out"));
}

}  // namespace cnnkit_bind
