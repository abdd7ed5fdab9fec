"""cnnkit.reference: elementwise layers' ops in plain NumPy (float64 in, float64 out)."""
import numpy as np

from .._args import flag, float_array, float_array_like, real_number, working_dtype

__all__ = ["add_forward", "affine_forward", "affine_backward", "normalization_forward",
           "spatial_dropout_forward", "spatial_dropout_backward", "gaussian_noise_forward"]

EPSILON = 1e-7  # keras.backend.epsilon()


def _broadcast_check(param, shape, name, fn):
    try:
        joint = np.broadcast_shapes(np.shape(param), shape)
    except ValueError:
        joint = None
    if joint != tuple(shape):
        raise ValueError(f"{fn}: {name} of shape {np.shape(param)} does not broadcast to the "
                         f"input of shape {tuple(shape)}")


def affine_forward(x, scale, offset=0.0):
    fn = "affine_forward"
    dtype = working_dtype(x, scale, offset)
    x = float_array(x, "x", dtype=dtype, fn=fn)
    _broadcast_check(scale, x.shape, "scale", fn)
    _broadcast_check(offset, x.shape, "offset", fn)
    return np.asarray(x * np.asarray(scale, dtype) + np.asarray(offset, dtype), dtype)


def affine_backward(dy, scale):
    fn = "affine_backward"
    dtype = working_dtype(dy, scale)
    dy = float_array(dy, "dy", dtype=dtype, fn=fn)
    _broadcast_check(scale, dy.shape, "scale", fn)
    return np.asarray(dy * np.asarray(scale, dtype), dtype)


def normalization_forward(x, mean, variance, invert=False):
    # Keras' own formula, not the affine form the kernel uses.
    fn = "normalization_forward"
    dtype = working_dtype(x, mean, variance)
    x = float_array(x, "x", dtype=dtype, fn=fn)
    mean, variance = np.asarray(mean, dtype), np.asarray(variance, dtype)
    if mean.shape != variance.shape:
        raise ValueError(f"{fn}: mean has shape {mean.shape} but variance has shape "
                         f"{variance.shape}; they must match")
    if np.any(variance < 0):
        raise ValueError(f"{fn}: variance must not be negative")
    _broadcast_check(mean, x.shape, "mean", fn)
    s = np.maximum(np.sqrt(variance), EPSILON)
    y = mean + x * s if flag(invert, "invert", fn) else (x - mean) / s
    return np.asarray(y, dtype)


def _mask_of(mask, x, dtype, fn):
    if x.ndim < 2:
        raise ValueError(f"{fn}: the input must have a batch and a channel axis, got shape {x.shape}")
    n, c = x.shape[0], x.shape[-1]
    mask = float_array_like(mask, "mask", (n, c), f"(batch, channels) of {x.shape}", dtype, fn)
    return mask.reshape((n,) + (1,) * (x.ndim - 2) + (c,))


def spatial_dropout_forward(x, mask):
    fn = "spatial_dropout_forward"
    dtype = working_dtype(x, mask)
    x = float_array(x, "x", dtype=dtype, fn=fn)
    return x * _mask_of(mask, x, dtype, fn)


def spatial_dropout_backward(dy, mask):
    fn = "spatial_dropout_backward"
    dtype = working_dtype(dy, mask)
    dy = float_array(dy, "dy", dtype=dtype, fn=fn)
    return dy * _mask_of(mask, dy, dtype, fn)


def gaussian_noise_forward(x, noise, stddev):
    fn = "gaussian_noise_forward"
    dtype = working_dtype(x, noise)
    x = float_array(x, "x", dtype=dtype, fn=fn)
    noise = float_array_like(noise, "noise", x.shape, "x's shape", dtype, fn)
    return x + real_number(stddev, "stddev", fn, low=0.0) * noise


def add_forward(a, b, relu=False):
    """a + b, then max(., 0) when relu (a NaN passes): Add of two inputs of one shape, with a
    fused ReLU. Its gradient is dy for each input (masked where the output is 0, with relu)."""
    fn = "add_forward"
    dtype = working_dtype(a, b)
    a = float_array(a, "a", dtype=dtype, fn=fn)
    b = float_array_like(b, "b", a.shape, "a's shape", dtype, fn)
    y = a + b
    return np.where(y < 0, np.zeros((), dtype), y) if relu else y
