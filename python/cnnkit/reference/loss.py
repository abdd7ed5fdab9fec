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
