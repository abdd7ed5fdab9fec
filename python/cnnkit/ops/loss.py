"""cnnkit.ops: losses, checked and converted, over the C++ kernels."""
import numpy as np

from .. import _args, _core

__all__ = ["softmax_cross_entropy", "mean_squared_error", "binary_crossentropy"]


def softmax_cross_entropy(y_true, logits):
    """(loss, dlogits): softmax and categorical cross-entropy fused; dlogits = (p - y) / N.

    y_true is one-hot (N, K) or integer class indices (N,) or (N, 1)."""
    fn = "softmax_cross_entropy"
    logits = _args.float_array(logits, "logits", 2, fn=fn)
    onehot, labels = _args.class_labels(y_true, logits.shape, fn=fn)
    return _core.softmax_cross_entropy(logits, onehot, labels)


def mean_squared_error(y_true, y_pred):
    """(loss, dy_pred): the mean of (y_pred - y_true)**2 over every element."""
    fn = "mean_squared_error"
    y_pred = _args.float_array(y_pred, "y_pred", fn=fn)
    return _core.mean_squared_error(_args.target_array(y_true, y_pred.shape, fn=fn), y_pred)


def binary_crossentropy(y_true, y_pred, epsilon=1e-7):
    """(loss, dy_pred) on probabilities clipped to [epsilon, 1 - epsilon], as Keras does."""
    fn = "binary_crossentropy"
    y_pred = _args.float_array(y_pred, "y_pred", fn=fn)
    y_true = _args.target_array(y_true, y_pred.shape, fn=fn)
    eps = _args.real_number(epsilon, "epsilon", fn, low=0.0, high=0.5, include_high=False)
    return _core.binary_crossentropy(y_true, y_pred, eps)


# ---------------------------------------------------------------- Keras 3's weighted losses
ELEMENTWISE_KINDS = {"mean_squared_error": 0, "mean_absolute_error": 1, "huber": 2,
                     "binary_crossentropy": 3, "binary_crossentropy_from_logits": 4,
                     "kl_divergence": 5}
REDUCTIONS = {"sum": 0, "sum_over_batch_size": 1, "mean_with_sample_weight": 2, "none": 3}
__all__ += ["elementwise_loss", "categorical_loss"]


def _sample_weight(sample_weight, n, fn):
    if sample_weight is None:
        return None
    w = _args.float_array(sample_weight, "sample_weight", fn=fn)
    if w.shape not in ((n,), (n, 1)):
        raise ValueError(f"{fn}: sample_weight must have shape ({n},), got {w.shape}")
    return w.reshape(n)


def _rows(a):
    return a.reshape(-1, a.shape[-1]) if a.ndim != 1 else a.reshape(-1, 1)


def elementwise_loss(y_true, y_pred, kind, param=0.0, label_smoothing=0.0, sample_weight=None,
                     reduction="sum_over_batch_size"):
    """(loss, dy_pred, values) of MSE, MAE, Huber, binary cross-entropy (probabilities or
    logits) or KL divergence, weighted per sample and reduced as Keras 3 (values: each row's
    weighted value for reduction='none', else None). See cnnkit.reference.elementwise_loss."""
    fn = "elementwise_loss"
    kind_id = _args.one_of(kind, "kind", tuple(ELEMENTWISE_KINDS), fn)
    mode = REDUCTIONS[_args.one_of(reduction, "reduction", tuple(REDUCTIONS), fn)]
    y_pred = _args.float_array(y_pred, "y_pred", fn=fn)
    y_true = _args.target_array(y_true, y_pred.shape, fn=fn)
    w = _sample_weight(sample_weight, len(y_pred), fn)
    loss, grad, values = _core.elementwise_loss(
        _rows(y_true), _rows(y_pred), ELEMENTWISE_KINDS[kind_id], float(param),
        float(label_smoothing), w, mode, True)
    return loss, grad.reshape(y_pred.shape), (None if values is None
                                              else values.reshape(y_pred.shape[:-1]))


def categorical_loss(y_true, y_pred, from_logits=False, focal=False, alpha=0.25, gamma=2.0,
                     label_smoothing=0.0, epsilon=1e-7, ignore_class=None, sample_weight=None,
                     reduction="sum_over_batch_size"):
    """(loss, dy_pred, values) of the categorical (focal) cross-entropy, as
    cnnkit.reference.categorical_loss."""
    fn = "categorical_loss"
    mode = REDUCTIONS[_args.one_of(reduction, "reduction", tuple(REDUCTIONS), fn)]
    y_pred = _args.float_array(y_pred, "y_pred", fn=fn)
    if y_pred.ndim < 2:
        raise ValueError(f"{fn}: y_pred must have a class axis, got shape {y_pred.shape}")
    t = np.asarray(y_true)
    if t.shape == y_pred.shape[:-1]:  # class indices
        onehot, labels = None, _args.c_array(t, np.int64).reshape(-1)
    else:
        onehot, labels = _rows(_args.target_array(t, y_pred.shape, fn=fn)), None
    w = _sample_weight(sample_weight, len(y_pred), fn)
    loss, grad, values = _core.categorical_loss(
        _rows(y_pred), onehot, labels, bool(from_logits), bool(focal), float(alpha),
        float(gamma), float(label_smoothing), float(epsilon), ignore_class, w, mode, True)
    return loss, grad.reshape(y_pred.shape), (None if values is None
                                              else values.reshape(y_pred.shape[:-1]))
