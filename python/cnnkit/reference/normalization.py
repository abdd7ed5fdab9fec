"""cnnkit.reference: batch and layer normalization in plain NumPy.

Batch normalization normalises each channel (the `axis`) over every other axis; layer
normalization normalises over `axis` (one axis or several) for each position of the others.
Float64 in, float64 out (so that finite differences work). The axis helpers here are shared with
cnnkit.ops.normalization.
"""
import numbers

import numpy as np

from .._args import float_array, float_array_like, working_dtype

__all__ = ["batchnorm_forward_train", "batchnorm_forward", "batchnorm_fold", "batchnorm_backward",
           "layernorm_forward", "layernorm_backward"]


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def channel_axis(axis, ndim, fn):
    """Batch normalization's axis, an integer in [-ndim, ndim) -> the non-negative axis."""
    if not _is_int(axis):
        raise ValueError(f"{fn}: axis must be an integer, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{fn}: axis={axis} is out of range for an input of rank {ndim}")
    return int(axis) % ndim


def norm_axes(axis, ndim, fn):
    """Layer normalization's axis (an integer or a list of them) -> sorted non-negative axes."""
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    if not axes or not all(_is_int(a) for a in axes):
        raise ValueError(f"{fn}: axis must be an integer or a non-empty list of integers, got "
                         f"{axis!r}")
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"{fn}: axis={axis} is out of range for an input of rank {ndim}")
    result = sorted(int(a) % ndim for a in axes)
    if len(set(result)) != len(result):
        raise ValueError(f"{fn}: axis={axis} names an axis twice")
    return result


def _positive(value, name, fn):
    if (not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_))
            or not np.isfinite(value) or value <= 0):
        raise ValueError(f"{fn}: {name} must be a positive number, got {value!r}")
    return float(value)


def momentum_value(value, fn):
    """Keras' momentum: a number in [0, 1]."""
    if (not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_))
            or not 0 <= value <= 1):
        raise ValueError(f"{fn}: momentum must be a number in [0, 1], got {value!r}")
    return float(value)


def _vector(v, name, size, dtype, fn):
    if v is None:
        return None
    return float_array_like(v, name, (size,), f"the size of the normalised axis, {size}, so "
                            "the expected shape", dtype, fn)


def _broadcast(v, ndim, axis):
    shape = [1] * ndim
    shape[axis] = -1
    return v.reshape(shape)


def _affine(v, ndim, axis, default):
    return default if v is None else _broadcast(v, ndim, axis)


def batchnorm_forward_train(x, gamma=None, beta=None, axis=-1, epsilon=1e-3, moving_mean=None,
                            moving_variance=None, momentum=0.99, relu=False):
    """(y, mean, variance): x normalised with its own per-channel mean and (biased) variance.
    moving_mean and moving_variance, when given, are updated in place as Keras does:
    moving = moving * momentum + batch_stat * (1 - momentum). relu: y = max(y, 0) (a fused
    ReLU after the normalization)."""
    fn = "batchnorm_forward_train"
    dtype = working_dtype(x, gamma, beta)
    x = float_array(x, "x", dtype=dtype, fn=fn)
    axis = channel_axis(axis, x.ndim, fn)
    epsilon = _positive(epsilon, "epsilon", fn)
    momentum = momentum_value(momentum, fn)
    c = x.shape[axis]
    gamma, beta = _vector(gamma, "gamma", c, dtype, fn), _vector(beta, "beta", c, dtype, fn)
    others = tuple(a for a in range(x.ndim) if a != axis)
    mean = x.mean(axis=others)
    variance = ((x - _broadcast(mean, x.ndim, axis)) ** 2).mean(axis=others)
    for moving, stat in ((moving_mean, mean), (moving_variance, variance)):
        if moving is not None:
            moving[...] = moving * momentum + stat * (1 - momentum)
    y = batchnorm_forward(x, gamma, beta, mean, variance, axis, epsilon, relu)
    return y, mean, variance


def _relu(y, relu, fn):
    if not isinstance(relu, (bool, np.bool_)):
        raise TypeError(f"{fn}: relu must be True or False, got {relu!r}")
    # np.maximum lets a NaN through, as the kernels' relu does
    return np.maximum(y, 0) if relu else y


def batchnorm_forward(x, gamma, beta, mean, variance, axis=-1, epsilon=1e-3, relu=False):
    """Inference: x normalised with the given per-channel statistics (the moving ones); relu:
    then max(., 0) (a fused ReLU)."""
    fn = "batchnorm_forward"
    dtype = working_dtype(x, gamma, beta, mean, variance)
    x = float_array(x, "x", dtype=dtype, fn=fn)
    axis = channel_axis(axis, x.ndim, fn)
    epsilon = _positive(epsilon, "epsilon", fn)
    c = x.shape[axis]
    gamma, beta = _vector(gamma, "gamma", c, dtype, fn), _vector(beta, "beta", c, dtype, fn)
    mean = _vector(mean, "mean", c, dtype, fn)
    variance = _vector(variance, "variance", c, dtype, fn)
    inv = 1 / np.sqrt(variance + epsilon)
    scale = inv if gamma is None else inv * gamma
    shift = -mean * scale + (0 if beta is None else beta)
    return _relu(x * _broadcast(scale, x.ndim, axis) + _broadcast(shift, x.ndim, axis), relu, fn)


def batchnorm_fold(kernel, bias, gamma, beta, mean, variance, epsilon=1e-3):
    """(kernel', bias') of a linear layer followed by an inference BatchNormalization, as one
    layer: scale = gamma * (1 / sqrt(variance + epsilon)) (Keras' order), kernel' = kernel *
    scale along its trailing output channels (the last axis; a depthwise kernel's last two),
    bias' = (bias - mean) * scale + beta. bias, gamma, beta may be None (0, 1, 0)."""
    fn = "batchnorm_fold"
    dtype = working_dtype(kernel, bias, gamma, beta, mean, variance)
    kernel = float_array(kernel, "kernel", dtype=dtype, fn=fn)
    mean = float_array(mean, "mean", 1, dtype=dtype, fn=fn)
    c = mean.shape[0]
    if c == 0 or kernel.ndim < 1 or (kernel.shape[-1] != c and (
            kernel.ndim < 2 or kernel.shape[-2] * kernel.shape[-1] != c)):
        raise ValueError(f"{fn}: kernel of shape {kernel.shape} does not end in {c} output "
                         f"channels")
    variance = _vector(variance, "variance", c, dtype, fn)
    bias, gamma = _vector(bias, "bias", c, dtype, fn), _vector(gamma, "gamma", c, dtype, fn)
    beta = _vector(beta, "beta", c, dtype, fn)
    epsilon = _positive(epsilon, "epsilon", fn)
    scale = 1 / np.sqrt(variance + dtype(epsilon))
    if gamma is not None:
        scale = scale * gamma
    folded = (kernel.reshape(-1, c) * scale).reshape(kernel.shape)
    shift = (-mean if bias is None else bias - mean) * scale
    return folded, shift if beta is None else shift + beta


def batchnorm_backward(dy, x, mean, variance, gamma=None, axis=-1, epsilon=1e-3, training=True,
                       y=None):
    """(dx, dgamma, dbeta). training=True: mean and variance are x's own batch statistics, and
    the gradient flows through them; training=False: they are constants (the moving ones).
    y: the output of a forward pass with relu=True; dy is then the gradient of that output,
    taken as 0 where y <= 0 (the ReLU's gradient)."""
    fn = "batchnorm_backward"
    dtype = working_dtype(dy, x, mean, variance, gamma)
    x = float_array(x, "x", dtype=dtype, fn=fn)
    dy = float_array_like(dy, "dy", x.shape, "x's shape", dtype, fn)
    if y is not None:
        y = float_array_like(y, "y", x.shape, "x's shape", dtype, fn)
        dy = np.where(y > 0, dy, 0)
    axis = channel_axis(axis, x.ndim, fn)
    epsilon = _positive(epsilon, "epsilon", fn)
    c = x.shape[axis]
    gamma = _vector(gamma, "gamma", c, dtype, fn)
    mean = _vector(mean, "mean", c, dtype, fn)
    variance = _vector(variance, "variance", c, dtype, fn)
    others = tuple(a for a in range(x.ndim) if a != axis)
    inv = 1 / np.sqrt(variance + epsilon)
    xhat = (x - _broadcast(mean, x.ndim, axis)) * _broadcast(inv, x.ndim, axis)
    dbeta = dy.sum(axis=others)
    dgamma = (dy * xhat).sum(axis=others)
    scale = _broadcast(inv if gamma is None else inv * gamma, x.ndim, axis)
    if not training:
        return dy * scale, dgamma, dbeta
    n = x.size // c
    dx = scale * (dy - _broadcast(dbeta, x.ndim, axis) / n
                  - xhat * _broadcast(dgamma, x.ndim, axis) / n)
    return dx, dgamma, dbeta


def _layer_stats(x, axes):
    mean = x.mean(axis=tuple(axes), keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=tuple(axes), keepdims=True)
    return mean, variance


def _norm_weight(v, name, x, axes, dtype, fn):
    """gamma or beta, shaped by the normalised axes, broadcast against x."""
    if v is None:
        return None
    shape = tuple(x.shape[a] for a in axes)
    v = float_array_like(v, name, shape, "the normalised axes' sizes", dtype, fn)
    full = [1] * x.ndim
    for a in axes:
        full[a] = x.shape[a]
    return v.reshape(full)


def layernorm_forward(x, gamma=None, beta=None, axis=-1, epsilon=1e-3, rms_scaling=False):
    """x normalised over `axis` (an integer or a list of them) for each position of the other
    axes, then * gamma + beta (shaped by those axes). rms_scaling (Keras' deprecated flag):
    x * gamma / sqrt(variance + epsilon), the mean not subtracted and beta unused."""
    fn = "layernorm_forward"
    dtype = working_dtype(x, gamma, beta)
    x = float_array(x, "x", dtype=dtype, fn=fn)
    axes = norm_axes(axis, x.ndim, fn)
    epsilon = _positive(epsilon, "epsilon", fn)
    gamma = _norm_weight(gamma, "gamma", x, axes, dtype, fn)
    beta = _norm_weight(beta, "beta", x, axes, dtype, fn)
    mean, variance = _layer_stats(x, axes)
    y = (x if rms_scaling else x - mean) / np.sqrt(variance + epsilon)
    if gamma is not None:
        y = y * gamma
    if beta is not None and not rms_scaling:
        y = y + beta
    return y


def layernorm_backward(dy, x, gamma=None, axis=-1, epsilon=1e-3, rms_scaling=False):
    """(dx, dgamma, dbeta) of layernorm_forward (dgamma, dbeta shaped by the axes)."""
    fn = "layernorm_backward"
    dtype = working_dtype(dy, x, gamma)
    x = float_array(x, "x", dtype=dtype, fn=fn)
    dy = float_array_like(dy, "dy", x.shape, "x's shape", dtype, fn)
    axes = norm_axes(axis, x.ndim, fn)
    epsilon = _positive(epsilon, "epsilon", fn)
    shape = tuple(x.shape[a] for a in axes)
    gamma = _norm_weight(gamma, "gamma", x, axes, dtype, fn)
    mean, variance = _layer_stats(x, axes)
    r = 1 / np.sqrt(variance + epsilon)
    u = x if rms_scaling else x - mean
    d = tuple(axes)
    count = int(np.prod(shape))
    others = tuple(a for a in range(x.ndim) if a not in axes)
    dgamma = (dy * u * r).sum(axis=others).reshape(shape)
    dbeta = dy.sum(axis=others).reshape(shape)
    g = dy if gamma is None else dy * gamma
    centred = 0 if rms_scaling else g.mean(axis=d, keepdims=True)
    dx = r * (g - centred) - r ** 3 * (x - mean) * (g * u).sum(axis=d, keepdims=True) / count
    return dx, dgamma, dbeta
