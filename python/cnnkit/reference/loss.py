"""cnnkit.reference: losses in plain NumPy."""
import numpy as np

from .._args import class_labels, float_array, real_number, target_array, working_dtype

__all__ = ["softmax_cross_entropy", "mean_squared_error", "binary_crossentropy"]


def _mean(values):
    # losses are accumulated in float64, as the C++ kernels return a double
    return float(np.sum(values, dtype=np.float64) / values.size)


def softmax_cross_entropy(y_true, logits):
    # logits (N,K); y_true one-hot (N,K) or class indices (N,) / (N,1) -> (loss, dlogits)
    fn = "softmax_cross_entropy"
    dtype = working_dtype(logits, y_true)
    logits = float_array(logits, "logits", 2, dtype, fn)
    onehot, indices = class_labels(y_true, logits.shape, dtype, fn)
    n, k = logits.shape
    if onehot is None:
        onehot = np.zeros((n, k), dtype)
        onehot[np.arange(n), indices] = 1
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -float(np.sum(onehot * log_softmax, dtype=np.float64)) / n
    return loss, (np.exp(log_softmax) - onehot) / dtype(n)


def mean_squared_error(y_true, y_pred):
    # mean over all elements (Keras: over the last axis, then over the batch)
    fn = "mean_squared_error"
    dtype = working_dtype(y_pred, y_true)
    y_pred = float_array(y_pred, "y_pred", dtype=dtype, fn=fn)
    y_true = target_array(y_true, y_pred.shape, dtype, fn)
    diff = y_pred - y_true
    return _mean(diff * diff), np.asarray(2 * diff / dtype(diff.size))  # 0-d stays an array


def binary_crossentropy(y_true, y_pred, epsilon=1e-7):
    # on probabilities clipped to [eps, 1 - eps] as Keras does; no gradient through the clip
    fn = "binary_crossentropy"
    dtype = working_dtype(y_pred, y_true)
    eps = dtype(real_number(epsilon, "epsilon", fn, low=0, high=0.5, include_high=False))
    y_pred = float_array(y_pred, "y_pred", dtype=dtype, fn=fn)
    t = target_array(y_true, y_pred.shape, dtype, fn)
    p = np.clip(y_pred, eps, 1 - eps)
    loss = _mean(-(t * np.log(p) + (1 - t) * np.log(1 - p)))
    clipped = (y_pred < eps) | (y_pred > 1 - eps)
    grad = np.where(clipped, 0, (p - t) / (p * (1 - p)) / dtype(p.size))
    return loss, grad.astype(dtype)


# ---------------------------------------------------------------- Keras 3's weighted losses
# Each returns (loss, dloss/dy_pred, values): the reduced loss, its gradient, and for
# reduction='none' the weighted value of each row (every axis of y_pred but the last), else
# None. sample_weight holds one weight per sample (the first axis), shared by the sample's rows.

ELEMENTWISE_KINDS = ("mean_squared_error", "mean_absolute_error", "huber", "binary_crossentropy",
                     "binary_crossentropy_from_logits", "kl_divergence")
REDUCTIONS = ("sum", "sum_over_batch_size", "mean_with_sample_weight", "none")
__all__ += ["elementwise_loss", "categorical_loss"]


def _row_weights(sample_weight, rows_shape, dtype):
    if sample_weight is None:
        return np.ones(rows_shape, dtype)
    w = np.asarray(sample_weight, dtype).reshape((-1,) + (1,) * (len(rows_shape) - 1))
    return np.broadcast_to(w, rows_shape)


def _reduce(values, w, valid, reduction, dtype):
    """(loss, the factor of each row's gradient, values or None), as Keras' reduce_values."""
    if reduction == "sum":
        divisor = 1.0
    elif reduction == "sum_over_batch_size":
        divisor = float(np.sum(valid))
    else:  # mean_with_sample_weight
        divisor = float(np.sum(w * valid))
    scale = 0.0 if divisor == 0 else 1.0 / divisor
    if reduction == "none":
        scale = 1.0
    factor = (scale * w * valid).astype(dtype)
    weighted = np.where(factor == 0, 0, factor * values)
    loss = float(np.sum(weighted, dtype=np.float64))
    return loss, factor, (weighted if reduction == "none" else None)


def elementwise_loss(y_true, y_pred, kind, param=0.0, label_smoothing=0.0, sample_weight=None,
                     reduction="sum_over_batch_size"):
    """MSE, MAE, Huber (param: delta), binary cross-entropy on probabilities (param: epsilon)
    or logits, KL divergence (param: epsilon); each row's value is the mean over the last axis
    (KLD: the sum), as in Keras 3."""
    fn = "elementwise_loss"
    dtype = working_dtype(y_pred, y_true)
    y_pred = float_array(y_pred, "y_pred", dtype=dtype, fn=fn)
    t = target_array(y_true, y_pred.shape, dtype, fn)
    p, s, a = y_pred, dtype(label_smoothing), dtype(param)
    e = p - t
    if kind == "mean_squared_error":
        v, d = e * e, 2 * e
    elif kind == "mean_absolute_error":
        v, d = np.abs(e), np.sign(e)
    elif kind == "huber":
        small = np.abs(e) <= a
        v = np.where(small, 0.5 * e * e, a * np.abs(e) - 0.5 * a * a)
        d = np.where(small, e, a * np.sign(e))
    elif kind == "binary_crossentropy":
        t = t * (1 - s) + 0.5 * s
        c = np.clip(p, a, 1 - a)
        v = -(t * np.log(c) + (1 - t) * np.log(1 - c))
        d = np.where((p > a) & (p < 1 - a), (c - t) / (c * (1 - c)), 0)
    elif kind == "binary_crossentropy_from_logits":
        t = t * (1 - s) + 0.5 * s
        v = np.maximum(p, 0) - t * p + np.log1p(np.exp(-np.abs(p)))
        d = 1 / (1 + np.exp(-p)) - t
    elif kind == "kl_divergence":
        tc, pc = np.clip(t, a, 1), np.clip(p, a, 1)
        v, d = tc * np.log(tc / pc), np.where((p > a) & (p < 1), -tc / pc, 0)
    else:
        raise ValueError(f"{fn}: kind must be one of {ELEMENTWISE_KINDS}, got {kind!r}")
    k = p.shape[-1]
    per_k = 1 if kind == "kl_divergence" else 1 / k
    rows = v.sum(axis=-1) * per_k
    w = _row_weights(sample_weight, rows.shape, dtype)
    loss, factor, values = _reduce(rows, w, np.ones(rows.shape, bool), reduction, dtype)
    return loss, (factor[..., None] * per_k * d).astype(dtype), values


def categorical_loss(y_true, y_pred, from_logits=False, focal=False, alpha=0.25, gamma=2.0,
                     label_smoothing=0.0, epsilon=1e-7, ignore_class=None, sample_weight=None,
                     reduction="sum_over_batch_size"):
    """Categorical (focal) cross-entropy of y_pred (..., K), on probabilities or logits; y_true
    one-hot / soft of y_pred's shape, or integer class indices of shape y_pred.shape[:-1]."""
    fn = "categorical_loss"
    dtype = working_dtype(y_pred)
    x = float_array(y_pred, "y_pred", dtype=dtype, fn=fn)
    k = x.shape[-1]
    y_true = np.asarray(y_true)
    valid = np.ones(x.shape[:-1], bool)
    if y_true.shape == x.shape[:-1]:  # class indices
        labels = y_true.astype(np.int64)
        if ignore_class is not None:
            valid = labels != ignore_class
            labels = np.where(valid, labels, 0)
        y = np.eye(k, dtype=dtype)[labels]
    else:
        y = target_array(y_true, x.shape, dtype, fn)
    s = dtype(label_smoothing)
    y = y * (1 - s) + s / k
    if from_logits:
        z = x - x.max(axis=-1, keepdims=True)
        q = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
        log_softmax = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    else:
        total = x.sum(axis=-1, keepdims=True)
        q = x / total
    if from_logits and not focal:
        v = -np.sum(np.where(y != 0, y * log_softmax, 0), axis=-1)
        dx = q * y.sum(axis=-1, keepdims=True) - y
    else:
        lo, hi = dtype(np.float32(epsilon)), 1 - dtype(np.float32(epsilon))
        c = np.clip(q, lo, hi)
        q32 = q.astype(np.float32)
        inside = (q32 > np.float32(epsilon)) & (q32 < 1 - np.float32(epsilon))
        logc = np.log(c)
        if focal:
            mod = (1 - c) ** gamma
            dmod = gamma * (1 - c) ** (gamma - 1) if gamma else 0 * c
            terms = -alpha * y * mod * logc
            g = alpha * y * (dmod * logc - mod / c)
        else:
            terms, g = -y * logc, -y / c
        v = np.sum(np.where(y != 0, terms, 0), axis=-1)
        g = np.where(inside & (y != 0), g, 0)
        gq = np.sum(g * q, axis=-1, keepdims=True)
        dx = q * (g - gq) if from_logits else (g - gq) / total
    w = _row_weights(sample_weight, v.shape, dtype)
    v = np.where(valid, v, 0)
    loss, factor, values = _reduce(v, w, valid, reduction, dtype)
    return loss, (factor[..., None] * dx).astype(dtype), values
