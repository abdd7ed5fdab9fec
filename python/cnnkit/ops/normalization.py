"""cnnkit.ops: batch and layer normalization, checked and converted, over the C++ kernels.

Same signatures as cnnkit.reference.normalization. Batch normalization runs on any single axis
of an input of rank >= 1 (the kernels see it as (outer, C, inner)); layer normalization over
trailing axes runs in place of the data, over other axes on a transposed copy.
"""
import numpy as np

from .. import _args, _core
from ..reference.normalization import _positive, channel_axis, momentum_value, norm_axes

__all__ = ["batchnorm_forward_train", "batchnorm_forward", "batchnorm_backward",
           "layernorm_forward", "layernorm_backward"]


def _vector(v, name, size, fn):
    if v is None:
        return None
    return _args.float_array_like(v, name, (size,), f"the size of the normalised axis, {size}, "
                                  "so the expected shape", fn=fn)


def batchnorm_forward_train(x, gamma=None, beta=None, axis=-1, epsilon=1e-3, moving_mean=None,
                            moving_variance=None, momentum=0.99, relu=False):
    """(y, mean, variance): x normalised with its own per-channel mean and (biased) variance.
    moving_mean and moving_variance (float32 arrays), when given, are updated in place:
    moving = moving * momentum + batch_stat * (1 - momentum). relu: y = max(y, 0) as it is
    stored (a fused ReLU)."""
    fn = "batchnorm_forward_train"
    x = _args.float_array(x, "x", fn=fn)
    axis = channel_axis(axis, x.ndim, fn)
    epsilon = _positive(epsilon, "epsilon", fn)
    momentum = momentum_value(momentum, fn)
    c = x.shape[axis]
    gamma, beta = _vector(gamma, "gamma", c, fn), _vector(beta, "beta", c, fn)
    moving = {name: a for name, a in (("moving_mean", moving_mean),
                                      ("moving_variance", moving_variance)) if a is not None}
    if moving:
        _args.inplace_arrays((c,), fn=fn, **moving)
    relu = _args.flag(relu, "relu", fn)
    y, mean, var, _ = _core.batchnorm_forward_train(x, gamma, beta, moving_mean, moving_variance,
                                                    axis, epsilon, momentum, relu)
    return y, mean, var


def batchnorm_forward(x, gamma, beta, mean, variance, axis=-1, epsilon=1e-3, relu=False):
    """Inference: x normalised with the given per-channel statistics (the moving ones); relu:
    then max(., 0) (a fused ReLU)."""
    fn = "batchnorm_forward"
    x = _args.float_array(x, "x", fn=fn)
    axis = channel_axis(axis, x.ndim, fn)
    epsilon = _positive(epsilon, "epsilon", fn)
    c = x.shape[axis]
    gamma, beta = _vector(gamma, "gamma", c, fn), _vector(beta, "beta", c, fn)
    mean, variance = _vector(mean, "mean", c, fn), _vector(variance, "variance", c, fn)
    relu = _args.flag(relu, "relu", fn)
    return _core.batchnorm_forward_infer(x, gamma, beta, mean, variance, axis, epsilon, relu)[0]


def batchnorm_backward(dy, x, mean, variance, gamma=None, axis=-1, epsilon=1e-3, training=True,
                       y=None):
    """(dx, dgamma, dbeta). training=True: mean and variance are x's own batch statistics and
    the gradient flows through them; training=False: they are constants (the moving ones).
    y: the output of a forward pass with relu=True; dy is then the gradient of that output,
    masked where y <= 0 inside the kernel's own passes."""
    fn = "batchnorm_backward"
    x = _args.float_array(x, "x", fn=fn)
    dy = _args.float_array_like(dy, "dy", x.shape, "x's shape", fn=fn)
    if y is not None:
        y = _args.float_array_like(y, "y", x.shape, "x's shape", fn=fn)
    axis = channel_axis(axis, x.ndim, fn)
    epsilon = _positive(epsilon, "epsilon", fn)
    c = x.shape[axis]
    gamma = _vector(gamma, "gamma", c, fn)
    mean, variance = _vector(mean, "mean", c, fn), _vector(variance, "variance", c, fn)
    invstd = (1 / np.sqrt(variance.astype(np.float64) + epsilon)).astype(np.float32)
    return _core.batchnorm_backward(dy, x, mean, invstd, gamma, axis, _args.flag(training,
                                    "training", fn), y)


def trailing(axes, ndim):
    """Whether the sorted axes are the last len(axes) axes (no transpose needed)."""
    return axes == list(range(ndim - len(axes), ndim))


def to_trailing(x, axes):
    """x with `axes` moved last (a C-contiguous copy), and the permutation back."""
    others = [a for a in range(x.ndim) if a not in axes]
    order = others + list(axes)
    return np.ascontiguousarray(x.transpose(order)), np.argsort(order)


def _norm_weight(v, name, x, axes, fn):
    if v is None:
        return None
    shape = tuple(x.shape[a] for a in axes)
    v = _args.float_array_like(v, name, shape, "the normalised axes' sizes", fn=fn)
    return v.reshape(-1)


def layernorm_forward(x, gamma=None, beta=None, axis=-1, epsilon=1e-3, rms_scaling=False):
    """x normalised over `axis` (an integer or a list of them) for each position of the other
    axes, then * gamma + beta (shaped by those axes). rms_scaling: x * gamma / sqrt(variance
    + epsilon), the mean not subtracted and beta unused (Keras' deprecated flag)."""
    fn = "layernorm_forward"
    x = _args.float_array(x, "x", fn=fn)
    axes = norm_axes(axis, x.ndim, fn)
    epsilon = _positive(epsilon, "epsilon", fn)
    rms = _args.flag(rms_scaling, "rms_scaling", fn)
    gamma = _norm_weight(gamma, "gamma", x, axes, fn)
    beta = None if rms else _norm_weight(beta, "beta", x, axes, fn)
    if trailing(axes, x.ndim):
        return _core.layernorm_forward(x, gamma, beta, len(axes), epsilon, not rms)[0]
    xt, back = to_trailing(x, axes)
    y = _core.layernorm_forward(xt, gamma, beta, len(axes), epsilon, not rms)[0]
    return np.ascontiguousarray(y.transpose(back))


def layernorm_backward(dy, x, gamma=None, axis=-1, epsilon=1e-3, rms_scaling=False):
    """(dx, dgamma, dbeta) of layernorm_forward (dgamma, dbeta shaped by the axes)."""
    fn = "layernorm_backward"
    x = _args.float_array(x, "x", fn=fn)
    dy = _args.float_array_like(dy, "dy", x.shape, "x's shape", fn=fn)
    axes = norm_axes(axis, x.ndim, fn)
    epsilon = _positive(epsilon, "epsilon", fn)
    rms = _args.flag(rms_scaling, "rms_scaling", fn)
    gamma = _norm_weight(gamma, "gamma", x, axes, fn)
    shape = tuple(x.shape[a] for a in axes)
    moved = not trailing(axes, x.ndim)
    if moved:
        x, back = to_trailing(x, axes)
        dy, _ = to_trailing(dy, axes)
    _, mean, invstd = _core.layernorm_forward(x, gamma, None, len(axes), epsilon, not rms)
    dx, dgamma, dbeta = _core.layernorm_backward(dy, x, mean, invstd, gamma, len(axes), not rms)
    if moved:
        dx = np.ascontiguousarray(dx.transpose(back))
    return dx, dgamma.reshape(shape), dbeta.reshape(shape)
