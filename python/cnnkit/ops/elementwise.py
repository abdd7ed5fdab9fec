"""cnnkit.ops: elementwise layers' ops, checked and converted, over the C++ kernels.

affine_forward is the fixed map y = x * scale + offset of Rescaling and Normalization, with
scale and offset broadcast against x as NumPy (and Keras) broadcast them. The kernel sees x as
(outer, K) rows: K covers the axes from the first one the scale varies along to the last axis,
so the common per-channel case is a contiguous pass over C values per row (affine_layout).
"""
import math

import numpy as np

from .. import _args, _core

__all__ = ["add_forward", "affine_forward", "affine_backward", "normalization_forward",
           "spatial_dropout_forward", "spatial_dropout_backward", "gaussian_noise_forward"]

# keras.backend.epsilon(): Normalization divides by max(sqrt(variance), this).
NORMALIZATION_EPSILON = 1e-7


def affine_layout(x_shape, param_shape, name="scale", fn=None):
    """(outer, block_shape) for a parameter of param_shape broadcast against x_shape: x is
    (outer, *block_shape) with block_shape = x_shape[first:], where `first` is the first axis
    the parameter varies along (the last axis for a scalar). ValueError when the parameter does
    not broadcast to x without changing x's shape."""
    x_shape, param_shape = tuple(x_shape), tuple(int(s) for s in param_shape)
    prefix = f"{fn}: " if fn else ""
    padded = (1,) * (len(x_shape) - len(param_shape)) + param_shape
    if len(param_shape) > len(x_shape) or any(p not in (1, s) for p, s in zip(padded, x_shape)):
        raise ValueError(f"{prefix}{name} of shape {param_shape} does not broadcast to the input "
                         f"of shape {x_shape}")
    varying = [d for d, p in enumerate(padded) if p != 1]
    first = varying[0] if varying else max(len(x_shape) - 1, 0)
    return math.prod(x_shape[:first]), tuple(x_shape[first:])


def expand_param(param, x_ndim, block_shape, out=None):
    """param (broadcastable, right-aligned) as a contiguous float32 array over block_shape,
    flattened: the per-K values the kernel reads. Written into `out` when given."""
    param = np.asarray(param)
    padded = param.reshape((1,) * (x_ndim - param.ndim) + param.shape)
    view = np.broadcast_to(padded[(0,) * (x_ndim - len(block_shape))], block_shape)
    if out is None:
        return _args.c_array(view, np.float32).reshape(-1)
    np.copyto(out.reshape(block_shape), view)
    return out


def _plan(x, scale, offset, fn, names=("scale", "offset")):
    scale = np.asarray(scale)
    offset = None if offset is None else np.asarray(offset)
    for name, value in zip(names, (scale, offset)):
        if value is not None and (value.dtype.kind not in "iuf" or not np.all(np.isfinite(value))):
            raise ValueError(f"{fn}: {name} must hold finite real numbers")
    shapes = [scale.shape] + ([] if offset is None else [offset.shape])
    try:
        joint = np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(f"{fn}: {names[0]} of shape {scale.shape} and {names[1]} of shape "
                         f"{offset.shape} do not broadcast together") from None
    return affine_layout(x.shape, joint, names[0] if offset is None else " and ".join(names), fn)


def affine_forward(x, scale, offset=0.0):
    """y = x * scale + offset; scale and offset are numbers or arrays broadcast against x."""
    fn = "affine_forward"
    x = _args.float_array(x, "x", fn=fn)
    outer, block = _plan(x, scale, offset, fn)
    a = expand_param(scale, x.ndim, block)
    b = expand_param(offset, x.ndim, block)
    return _core.affine_forward(x, a, b, outer, 1)


def affine_backward(dy, scale):
    """dx = dy * scale (the gradient of affine_forward with respect to x)."""
    fn = "affine_backward"
    dy = _args.float_array(dy, "dy", fn=fn)
    outer, block = _plan(dy, scale, None, fn)
    return _core.affine_backward(dy, expand_param(scale, dy.ndim, block), outer, 1)


def normalization_affine(mean, variance, invert=False):
    """(shift, scale, offset) of Keras' Normalization for affine_forward's kernel, computed in
    float64, with s = max(sqrt(variance), epsilon): (x - mean) * (1 / s) (Keras subtracts the
    mean first, so values equal to the mean give exact zeros however small s is), or with
    invert=True x * s + mean. None marks a part left out."""
    mean = np.asarray(mean, dtype=np.float64)
    s = np.maximum(np.sqrt(np.asarray(variance, dtype=np.float64)), NORMALIZATION_EPSILON)
    return (None, s, mean) if invert else (mean, 1.0 / s, None)


def normalization_forward(x, mean, variance, invert=False):
    """Keras' Normalization: (x - mean) / max(sqrt(variance), 1e-7), or its inverse; mean and
    variance broadcast against x."""
    fn = "normalization_forward"
    x = _args.float_array(x, "x", fn=fn)
    mean, variance = np.asarray(mean), np.asarray(variance)
    if mean.shape != variance.shape:
        raise ValueError(f"{fn}: mean has shape {mean.shape} but variance has shape "
                         f"{variance.shape}; they must match")
    if variance.dtype.kind not in "iuf" or np.any(~(variance >= 0)):
        raise ValueError(f"{fn}: variance must hold non-negative numbers")
    shift, scale, offset = normalization_affine(mean, variance, _args.flag(invert, "invert", fn))
    outer, block = _plan(x, scale, mean, fn, ("variance", "mean"))
    expand = [None if v is None else expand_param(v, x.ndim, block) for v in (shift, scale, offset)]
    return _core.affine_forward(x, expand[1], expand[2], outer, 1, shift=expand[0])


def _mask(mask, x, fn):
    n, c = x.shape[0], x.shape[-1]
    return _args.float_array_like(mask, "mask", (n, c), f"(batch, channels) of x {x.shape}", fn=fn)


def spatial_dropout_forward(x, mask):
    """y[n, ..., c] = x[n, ..., c] * mask[n, c]: whole channels of each image kept or dropped
    (mask holds 0 or 1 / (1 - rate))."""
    fn = "spatial_dropout_forward"
    x = _args.float_array(x, "x", fn=fn)
    if x.ndim < 2:
        raise ValueError(f"{fn}: x must have a batch and a channel axis, got shape {x.shape}")
    return _core.spatial_dropout_forward(x, _mask(mask, x, fn))


def spatial_dropout_backward(dy, mask):
    """dx = dy * mask[n, c], the same channels dropped as on the way forward."""
    fn = "spatial_dropout_backward"
    dy = _args.float_array(dy, "dy", fn=fn)
    if dy.ndim < 2:
        raise ValueError(f"{fn}: dy must have a batch and a channel axis, got shape {dy.shape}")
    return _core.spatial_dropout_backward(dy, _mask(mask, dy, fn))


def gaussian_noise_forward(x, noise, stddev):
    """y = x + stddev * noise, noise standard normal of x's shape (its gradient is dy itself)."""
    fn = "gaussian_noise_forward"
    x = _args.float_array(x, "x", fn=fn)
    noise = _args.float_array_like(noise, "noise", x.shape, "x's shape", fn=fn)
    stddev = _args.real_number(stddev, "stddev", fn, low=0.0)
    return _core.gaussian_noise_forward(x, noise, stddev)


def add_forward(a, b, relu=False):
    """a + b, then max(., 0) when relu (NaN passes), in one multi-threaded pass."""
    fn = "add_forward"
    a = _args.float_array(a, "a", fn=fn)
    b = _args.float_array_like(b, "b", a.shape, "a's shape", fn=fn)
    return _core.add_forward(a, b, relu=bool(relu))
