"""cnnkit.reference: activations in plain NumPy."""
import numpy as np

from .._args import float_array, float_array_like, working_dtype

__all__ = ["relu_forward", "relu_backward", "sigmoid_forward", "sigmoid_backward",
           "softmax_forward", "softmax_backward"]


def _output_and_grad(dy, y, fn):
    """The forward output y and dy of the same shape, for an activation's backward pass."""
    dtype = working_dtype(dy, y)
    y = float_array(y, "y", dtype=dtype, fn=fn)
    dy = float_array_like(dy, "dy", y.shape, "y (the forward output)", dtype, fn)
    return dy, y


def relu_forward(x):
    x = float_array(x, "x", dtype=working_dtype(x), fn="relu_forward")
    return np.asarray(np.maximum(x, 0))  # asarray: ufuncs turn a 0-d array into a scalar


def relu_backward(dy, y):
    dy, y = _output_and_grad(dy, y, "relu_backward")
    return np.where(y > 0, dy, 0).astype(y.dtype)


def sigmoid_forward(x):
    x = float_array(x, "x", dtype=working_dtype(x), fn="sigmoid_forward")
    e = np.exp(-np.abs(x))  # never overflows, unlike exp(-x) for very negative x
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def sigmoid_backward(dy, y):
    dy, y = _output_and_grad(dy, y, "sigmoid_backward")
    return np.asarray(dy * y * (1 - y))


def _at_least_1d(x, fn):
    if x.ndim == 0:
        raise ValueError(f"{fn}: softmax runs over the last axis, but x is a scalar")
    return x


def softmax_forward(x):
    # softmax over the last axis, with the max subtracted so that exp never overflows
    fn = "softmax_forward"
    x = _at_least_1d(float_array(x, "x", dtype=working_dtype(x), fn=fn), fn)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_backward(dy, y):
    fn = "softmax_backward"
    dy, y = _output_and_grad(dy, y, fn)
    _at_least_1d(y, fn)
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))
