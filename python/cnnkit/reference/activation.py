"""cnnkit.reference: activations in plain NumPy (float64 in, float64 out).

Each activation has <name>_forward(x, ...) and <name>_backward(dy, saved, ...), where `saved` is
what the C++ kernel's backward takes: the forward output y (relu, sigmoid, tanh, exponential,
softmax, log_softmax) or the forward input x (the others). Formulas are Keras' (keras.activations),
written to stay accurate in float64 where the naive form would cancel or overflow.
"""
import math

import numpy as np

from .._args import float_array, float_array_like, working_dtype

__all__ = ["relu_forward", "relu_backward", "relu_general_forward", "relu_general_backward",
           "leaky_relu_forward", "leaky_relu_backward", "relu6_forward", "relu6_backward",
           "sigmoid_forward", "sigmoid_backward", "tanh_forward", "tanh_backward",
           "exponential_forward", "exponential_backward", "gelu_forward", "gelu_backward",
           "silu_forward", "silu_backward", "elu_forward", "elu_backward", "selu_forward",
           "selu_backward", "softplus_forward", "softplus_backward", "softsign_forward",
           "softsign_backward", "hard_sigmoid_forward", "hard_sigmoid_backward",
           "hard_silu_forward", "hard_silu_backward", "mish_forward", "mish_backward",
           "softmax_forward", "softmax_backward", "log_softmax_forward", "log_softmax_backward",
           "prelu_forward", "prelu_backward"]

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_GELU_CUBIC = 0.044715
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


def _input(x, fn):
    return float_array(x, "x", dtype=working_dtype(x), fn=fn)


def _with_grad(dy, saved, name, fn):
    """saved (x or y) and dy of the same shape, for an activation's backward pass."""
    dtype = working_dtype(dy, saved)
    saved = float_array(saved, name, dtype=dtype, fn=fn)
    what = "y (the forward output)" if name == "y" else "x (the forward input)"
    dy = float_array_like(dy, "dy", saved.shape, what, dtype, fn)
    return dy, saved


def _out(a, dtype):
    return np.asarray(a, dtype=dtype)  # ufuncs turn a 0-d array into a scalar


def _sigmoid(x):
    e = np.exp(-np.abs(x))  # never overflows, unlike exp(-x) for very negative x
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


_erfc = np.vectorize(math.erfc, otypes=[np.float64])


# ---------------------------------------------------------------- relu and its family

def relu_forward(x):
    x = _input(x, "relu_forward")
    return _out(np.maximum(x, 0), x.dtype)


def relu_backward(dy, y):
    dy, y = _with_grad(dy, y, "y", "relu_backward")
    return np.where(y > 0, dy, 0).astype(y.dtype)


def relu_general_forward(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Keras' relu with arguments: clip(x > threshold ? x : 0, 0, max_value) -
    negative_slope * max(threshold - x, 0); the clip at 0 only with a max_value."""
    x = _input(x, "relu_general_forward")
    a = np.where(x <= threshold, 0, x)  # NaN passes
    if max_value is not None:
        a = np.minimum(np.maximum(a, 0), max_value)
    return _out(a - negative_slope * np.maximum(threshold - x, 0), x.dtype)


def relu_general_backward(dy, x, negative_slope=0.0, max_value=None, threshold=0.0):
    dy, x = _with_grad(dy, x, "x", "relu_general_backward")
    passes = x > threshold
    if max_value is not None:
        passes &= (x > 0) & (x < max_value)
    slope = passes.astype(x.dtype) + np.where(x < threshold, negative_slope, 0)
    return _out(dy * slope, x.dtype)


def leaky_relu_forward(x, negative_slope=0.2):
    return relu_general_forward(x, negative_slope=negative_slope)


def leaky_relu_backward(dy, x, negative_slope=0.2):
    return relu_general_backward(dy, x, negative_slope=negative_slope)


def relu6_forward(x):
    return relu_general_forward(x, max_value=6.0)


def relu6_backward(dy, x):
    return relu_general_backward(dy, x, max_value=6.0)


# ---------------------------------------------------------------- functions of y

def sigmoid_forward(x):
    x = _input(x, "sigmoid_forward")
    return _sigmoid(x).astype(x.dtype)


def sigmoid_backward(dy, y):
    dy, y = _with_grad(dy, y, "y", "sigmoid_backward")
    return _out(dy * y * (1 - y), y.dtype)


def tanh_forward(x):
    x = _input(x, "tanh_forward")
    return _out(np.tanh(x), x.dtype)


def tanh_backward(dy, y):
    dy, y = _with_grad(dy, y, "y", "tanh_backward")
    return _out(dy * (1 - y * y), y.dtype)


def exponential_forward(x):
    x = _input(x, "exponential_forward")
    with np.errstate(over="ignore"):
        return _out(np.exp(x), x.dtype)


def exponential_backward(dy, y):
    dy, y = _with_grad(dy, y, "y", "exponential_backward")
    return _out(dy * y, y.dtype)


# ---------------------------------------------------------------- smooth functions of x

def _gelu_u(x):
    return _SQRT_2_OVER_PI * (x + _GELU_CUBIC * x ** 3)


def gelu_forward(x, approximate=False):
    """x Phi(x) (erf form) or, approximate, 0.5 x (1 + tanh(u)) == x sigmoid(2u)."""
    x = _input(x, "gelu_forward")
    with np.errstate(over="ignore", invalid="ignore"):
        if approximate:
            return _out(x * _sigmoid(2 * _gelu_u(x)), x.dtype)
        return _out(x * 0.5 * _erfc(-x / math.sqrt(2)), x.dtype)


def gelu_backward(dy, x, approximate=False):
    dy, x = _with_grad(dy, x, "x", "gelu_backward")
    with np.errstate(over="ignore", invalid="ignore"):
        if approximate:
            # Past |x| = 12 the x s (1 - s) term is below 1e-60: clamped, the slope of an
            # infinite x is its limit (0 or 1), not inf * 0.
            c = np.clip(x, -12, 12)
            s = _sigmoid(2 * _gelu_u(c))
            du = _SQRT_2_OVER_PI * (1 + 3 * _GELU_CUBIC * c * c)
            slope = s + c * s * (1 - s) * 2 * du
        else:
            slope = 0.5 * _erfc(-x / math.sqrt(2)) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return _out(dy * slope, x.dtype)


def silu_forward(x):
    x = _input(x, "silu_forward")
    with np.errstate(invalid="ignore"):
        return _out(x * _sigmoid(x), x.dtype)


def silu_backward(dy, x):
    dy, x = _with_grad(dy, x, "x", "silu_backward")
    s = _sigmoid(x)
    with np.errstate(invalid="ignore"):
        return _out(dy * s * (1 + x * (1 - s)), x.dtype)


def elu_forward(x, alpha=1.0):
    x = _input(x, "elu_forward")
    return _out(np.where(x >= 0, x, alpha * np.expm1(np.minimum(x, 0))), x.dtype)


def elu_backward(dy, x, alpha=1.0):
    dy, x = _with_grad(dy, x, "x", "elu_backward")
    return _out(dy * np.where(x >= 0, 1, alpha * np.exp(np.minimum(x, 0))), x.dtype)


def selu_forward(x):
    return SELU_SCALE * elu_forward(x, SELU_ALPHA)


def selu_backward(dy, x):
    return SELU_SCALE * elu_backward(dy, x, SELU_ALPHA)


def softplus_forward(x):
    x = _input(x, "softplus_forward")
    return _out(np.logaddexp(x, 0), x.dtype)


def softplus_backward(dy, x):
    dy, x = _with_grad(dy, x, "x", "softplus_backward")
    return _out(dy * _sigmoid(x), x.dtype)


def softsign_forward(x):
    x = _input(x, "softsign_forward")
    with np.errstate(invalid="ignore"):
        return _out(x / (1 + np.abs(x)), x.dtype)


def softsign_backward(dy, x):
    dy, x = _with_grad(dy, x, "x", "softsign_backward")
    return _out(dy / (1 + np.abs(x)) ** 2, x.dtype)


def _hard_sigmoid(x):
    return np.minimum(np.maximum(x / 6 + 0.5, 0), 1)


def _hard_sigmoid_slope(x):
    return np.where((x > -3) & (x < 3), 1 / 6, 0)


def hard_sigmoid_forward(x):
    """Keras 3's hard_sigmoid: clip(x / 6 + 1/2, 0, 1) == relu6(x + 3) / 6."""
    x = _input(x, "hard_sigmoid_forward")
    return _out(_hard_sigmoid(x), x.dtype)


def hard_sigmoid_backward(dy, x):
    dy, x = _with_grad(dy, x, "x", "hard_sigmoid_backward")
    return _out(dy * _hard_sigmoid_slope(x), x.dtype)


def hard_silu_forward(x):
    x = _input(x, "hard_silu_forward")
    with np.errstate(invalid="ignore"):
        return _out(x * _hard_sigmoid(x), x.dtype)


def hard_silu_backward(dy, x):
    dy, x = _with_grad(dy, x, "x", "hard_silu_backward")
    return _out(dy * (_hard_sigmoid(x) + x * _hard_sigmoid_slope(x)), x.dtype)


def mish_forward(x):
    x = _input(x, "mish_forward")
    with np.errstate(invalid="ignore"):
        return _out(x * np.tanh(np.logaddexp(x, 0)), x.dtype)


def mish_backward(dy, x):
    dy, x = _with_grad(dy, x, "x", "mish_backward")
    t = np.tanh(np.logaddexp(x, 0))
    with np.errstate(invalid="ignore"):
        return _out(dy * (t + x * (1 - t * t) * _sigmoid(x)), x.dtype)


# ---------------------------------------------------------------- softmax, log_softmax

def _axis(x, axis, fn):
    if x.ndim == 0:
        raise ValueError(f"{fn}: softmax runs over an axis, but x is a scalar")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"{fn}: axis {axis} is out of range for an array of rank {x.ndim}")
    return axis


def softmax_forward(x, axis=-1):
    # the max subtracted so that exp never overflows
    fn = "softmax_forward"
    x = _input(x, fn)
    axis = _axis(x, axis, fn)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def softmax_backward(dy, y, axis=-1):
    fn = "softmax_backward"
    dy, y = _with_grad(dy, y, "y", fn)
    axis = _axis(y, axis, fn)
    return y * (dy - (dy * y).sum(axis=axis, keepdims=True))


def log_softmax_forward(x, axis=-1):
    fn = "log_softmax_forward"
    x = _input(x, fn)
    axis = _axis(x, axis, fn)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def log_softmax_backward(dy, y, axis=-1):
    fn = "log_softmax_backward"
    dy, y = _with_grad(dy, y, "y", fn)
    axis = _axis(y, axis, fn)
    return dy - np.exp(y) * dy.sum(axis=axis, keepdims=True)


# ---------------------------------------------------------------- PReLU

def _prelu_alpha(x, alpha, fn):
    alpha = float_array(alpha, "alpha", dtype=x.dtype, fn=fn)
    if x.ndim < 2 or alpha.ndim != x.ndim - 1 or any(
            a not in (1, s) for a, s in zip(alpha.shape, x.shape[1:])):
        raise ValueError(f"{fn}: alpha must have x's shape without the batch axis (size 1 along "
                         f"shared axes), got alpha {alpha.shape} for x {x.shape}")
    return alpha


def prelu_forward(x, alpha):
    """Keras' PReLU: relu(x) - alpha * relu(-x), alpha broadcast over the batch and the
    axes where it has size 1."""
    fn = "prelu_forward"
    x = _input(x, fn)
    alpha = _prelu_alpha(x, alpha, fn)
    return _out(np.where(x < 0, alpha * x, x), x.dtype)


def prelu_backward(dy, x, alpha):
    """(dx, dalpha): dalpha sums dy * min(x, 0) over the batch and the shared axes."""
    fn = "prelu_backward"
    dy, x = _with_grad(dy, x, "x", fn)
    alpha = _prelu_alpha(x, alpha, fn)
    dx = dy * np.where(x > 0, 1, np.where(x < 0, alpha, 0))
    contribution = dy * np.minimum(x, 0)
    shared = (0,) + tuple(i + 1 for i, (a, s) in enumerate(zip(alpha.shape, x.shape[1:]))
                          if a == 1 and s != 1)
    dalpha = contribution.sum(axis=shared, keepdims=True)[0].reshape(alpha.shape)
    return _out(dx, x.dtype), _out(dalpha, x.dtype)
