"""cnnkit.ops: the functional layer over the C++ kernels.

Images are (N, H, W, C) float32; conv weights (kh, kw, cin, cout) and dense weights (in, out), as
in Keras. Each function checks and normalises its arguments (cnnkit._args), converts each array
once to C-contiguous float32, and calls the kernel in cnnkit._core with the GIL released.
cnnkit.reference has the same functions in plain NumPy. Backward functions of activations take
the forward *output* y. Losses take (y_true, y_pred) in Keras' order and return
(mean loss, gradient with respect to y_pred). Augmentations take per-image parameters: one value
for the whole batch, or one per image.
"""

import numpy as np

from . import _args, _core

__all__ = [
    "conv2d_forward", "conv2d_backward", "maxpool2d_forward", "maxpool2d_backward",
    "dense_forward", "dense_backward", "upsampling2d_forward", "upsampling2d_backward",
    "relu_forward", "relu_backward", "sigmoid_forward", "sigmoid_backward",
    "softmax_forward", "softmax_backward", "softmax_cross_entropy", "mean_squared_error",
    "binary_crossentropy", "adam_update", "sgd_update",
    "flip_forward", "flip_backward", "affine_transform_forward", "affine_transform_backward",
    "crop_forward", "crop_backward", "contrast_forward", "contrast_backward",
]


# ---------------------------------------------------------------- convolution

def conv2d_forward(x, w, b=None, strides=(1, 1), padding="valid", *, _naive=False):
    """y (N, OH, OW, cout) = conv2d(x (N, H, W, cin), w (kh, kw, cin, cout)) + b (cout,)."""
    fn = "conv2d_forward"
    x = _args.float_array(x, "x", 4, fn=fn)
    w = _args.float_array(w, "w", 4, fn=fn)
    g = _args.conv_geometry(x.shape, w.shape, strides, padding, fn)
    b = _args.bias_array(b, w.shape[3], fn=fn)
    return _core.conv2d_forward(x, w, b, g.SH, g.SW, g.PT, g.PL, g.OH, g.OW, naive=_naive)


def conv2d_backward(dy, x, w, strides=(1, 1), padding="valid", *, _naive=False):
    """(dx, dw, db) of conv2d_forward, given dy, the gradient of its output."""
    fn = "conv2d_backward"
    x = _args.float_array(x, "x", 4, fn=fn)
    w = _args.float_array(w, "w", 4, fn=fn)
    g = _args.conv_geometry(x.shape, w.shape, strides, padding, fn)
    dy = _args.float_array_like(dy, "dy", (g.N, g.OH, g.OW, w.shape[3]),
                                "the output of this convolution", fn=fn)
    return _core.conv2d_backward(dy, x, w, g.SH, g.SW, g.PT, g.PL, naive=_naive)


# ---------------------------------------------------------------- pooling and upsampling

def maxpool2d_forward(x, pool_size=(2, 2), strides=None, padding="valid"):
    """y (N, OH, OW, C): the maximum of each window; strides default to pool_size."""
    fn = "maxpool2d_forward"
    x = _args.float_array(x, "x", 4, fn=fn)
    g = _args.pool_geometry(x.shape, pool_size, strides, padding, fn)
    return _core.maxpool2d_forward(x, g.KH, g.KW, g.SH, g.SW, g.PT, g.PL, g.OH, g.OW)


def maxpool2d_backward(dy, x, pool_size=(2, 2), strides=None, padding="valid"):
    """dx: each output's gradient goes to the first maximum of its window; overlaps add up."""
    fn = "maxpool2d_backward"
    x = _args.float_array(x, "x", 4, fn=fn)
    g = _args.pool_geometry(x.shape, pool_size, strides, padding, fn)
    dy = _args.float_array_like(dy, "dy", (g.N, g.OH, g.OW, g.C), "the output of this pooling", fn=fn)
    return _core.maxpool2d_backward(dy, x, g.KH, g.KW, g.SH, g.SW, g.PT, g.PL)


def upsampling2d_forward(x, size=(2, 2)):
    """Nearest-neighbour upsampling: y (N, H*sh, W*sw, C)."""
    fn = "upsampling2d_forward"
    sh, sw = _args.pair(size, "size", fn)
    return _core.upsampling2d_forward(_args.float_array(x, "x", 4, fn=fn), sh, sw)


def upsampling2d_backward(dy, size=(2, 2)):
    """dx (N, H, W, C): the sum of each (sh, sw) block of dy."""
    fn = "upsampling2d_backward"
    sh, sw = _args.pair(size, "size", fn)
    dy = _args.float_array(dy, "dy", 4, fn=fn)
    if dy.shape[1] % sh or dy.shape[2] % sw:
        raise ValueError(f"{fn}: dy has shape {dy.shape}, whose height and width are not "
                         f"multiples of size {(sh, sw)}")
    return _core.upsampling2d_backward(dy, sh, sw)


# ---------------------------------------------------------------- dense

def dense_forward(x, w, b=None, *, _naive=False):
    """y (N, out) = x (N, in) @ w (in, out) + b (out,)."""
    fn = "dense_forward"
    x = _args.float_array(x, "x", 2, fn=fn)
    w = _args.float_array(w, "w", 2, fn=fn)
    _args.dense_sizes(x.shape, w.shape, fn)
    return _core.dense_forward(x, w, _args.bias_array(b, w.shape[1], fn=fn), naive=_naive)


def dense_backward(dy, x, w, *, _naive=False):
    """(dx, dw, db) of dense_forward, given dy, the gradient of its output."""
    fn = "dense_backward"
    x = _args.float_array(x, "x", 2, fn=fn)
    w = _args.float_array(w, "w", 2, fn=fn)
    n, _, units = _args.dense_sizes(x.shape, w.shape, fn)
    dy = _args.float_array_like(dy, "dy", (n, units), "the output of this layer", fn=fn)
    return _core.dense_backward(dy, x, w, naive=_naive)


# ---------------------------------------------------------------- activations

def _over_last_axis(x, fn):
    if x.ndim == 0:
        raise ValueError(f"{fn}: softmax runs over the last axis, but x is a scalar")
    return x


def _activation(kernel, fn, axis=False):
    """axis: the activation runs over the last axis (softmax), so x needs one."""
    def forward(x):
        x = _args.float_array(x, "x", fn=fn)
        return kernel(_over_last_axis(x, fn) if axis else x)
    forward.__name__ = fn
    return forward


def _activation_backward(kernel, fn, axis=False):
    def backward(dy, y):
        y = _args.float_array(y, "y", fn=fn)
        dy = _args.float_array_like(dy, "dy", y.shape, "y's shape", fn=fn)
        return kernel(dy, _over_last_axis(y, fn) if axis else y)
    backward.__name__ = fn
    return backward


relu_forward = _activation(_core.relu_forward, "relu_forward")
relu_backward = _activation_backward(_core.relu_backward, "relu_backward")
sigmoid_forward = _activation(_core.sigmoid_forward, "sigmoid_forward")
sigmoid_backward = _activation_backward(_core.sigmoid_backward, "sigmoid_backward")
softmax_forward = _activation(_core.softmax_forward, "softmax_forward", axis=True)
softmax_backward = _activation_backward(_core.softmax_backward, "softmax_backward", axis=True)
relu_forward.__doc__ = "max(x, 0), elementwise."
relu_backward.__doc__ = "dy where y > 0, else 0 (y is relu's output)."
sigmoid_forward.__doc__ = "1 / (1 + exp(-x)), elementwise and stable for large |x|."
sigmoid_backward.__doc__ = "dy * y * (1 - y) (y is sigmoid's output)."
softmax_forward.__doc__ = "Softmax over the last axis."
softmax_backward.__doc__ = "y * (dy - sum(dy * y)) over the last axis (y is softmax's output)."


# ---------------------------------------------------------------- losses

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


# ---------------------------------------------------------------- optimizers (in place)

def adam_update(param, grad, m, v, step, learning_rate=0.001, beta_1=0.9, beta_2=0.999,
                epsilon=1e-7):
    """One Keras Adam step on param, m and v in place (float32, C-contiguous, writeable).

    step is the 1-based number of this update."""
    fn = "adam_update"
    grad = _args.float_array(grad, "grad", fn=fn)
    _args.inplace_arrays(grad.shape, fn=fn, param=param, m=m, v=v)
    _core.adam_update(
        param, grad, m, v, _args.positive_int(step, "step", fn),
        _args.real_number(learning_rate, "learning_rate", fn, low=0.0),
        _args.real_number(beta_1, "beta_1", fn, low=0.0, high=1.0, include_high=False),
        _args.real_number(beta_2, "beta_2", fn, low=0.0, high=1.0, include_high=False),
        _args.real_number(epsilon, "epsilon", fn, low=0.0))


def sgd_update(param, grad, velocity=None, learning_rate=0.01, momentum=0.0, nesterov=False):
    """One Keras SGD step in place; with momentum > 0 it needs a velocity array."""
    fn = "sgd_update"
    grad = _args.float_array(grad, "grad", fn=fn)
    momentum = _args.real_number(momentum, "momentum", fn, low=0.0, high=1.0)
    if momentum > 0 and velocity is None:
        raise ValueError(f"{fn}: momentum={momentum} needs a velocity array (zeros to start)")
    arrays = {"param": param} if velocity is None else {"param": param, "velocity": velocity}
    _args.inplace_arrays(grad.shape, fn=fn, **arrays)
    _core.sgd_update(param, grad, velocity if momentum > 0 else None,
                     _args.real_number(learning_rate, "learning_rate", fn, low=0.0), momentum,
                     _args.flag(nesterov, "nesterov", fn))


# ---------------------------------------------------------------- augmentation

def _flip_flags(horizontal, vertical, n, fn):
    h = _args.per_image(horizontal, n, "horizontal", bool, fn=fn)
    v = _args.per_image(vertical, n, "vertical", bool, fn=fn)
    return (h * 1 | v * 2).astype(np.uint8)


def flip_forward(x, horizontal=True, vertical=False):
    """Each image of x (N, H, W, C) mirrored left-right where `horizontal` and top-bottom where
    `vertical` (a bool for every image, or N of them)."""
    fn = "flip_forward"
    x = _args.float_array(x, "x", 4, fn=fn)
    return _core.flip_forward(x, _flip_flags(horizontal, vertical, len(x), fn))


def flip_backward(dy, horizontal=True, vertical=False):
    """dx of flip_forward: the same flips applied to dy."""
    fn = "flip_backward"
    dy = _args.float_array(dy, "dy", 4, fn=fn)
    return _core.flip_backward(dy, _flip_flags(horizontal, vertical, len(dy), fn))


def _affine_args(matrices, n, interpolation, fill_mode, fn):
    return (_args.per_image(matrices, n, "matrices", np.float32, (6,), fn),
            _args.one_of(interpolation, "interpolation", _args.INTERPOLATIONS, fn),
            _args.one_of(fill_mode, "fill_mode", _args.FILL_MODES, fn))


def affine_transform_forward(x, matrices, output_size=None, interpolation="bilinear",
                             fill_mode="reflect", fill_value=0.0, *, _naive=False):
    """y (N, OH, OW, C): output pixel (column x, row y) of image n reads x at column
    m0*x + m1*y + m2 and row m3*x + m4*y + m5, m = matrices[n] (6 numbers, or one (6,) row for
    every image), in pixel indices as Keras' affine_transform. Outside the image the input is
    extended by fill_mode: 'reflect' (d c b a | a b c d | d c b a), 'wrap' (a b c d | a b c d),
    'nearest' (a a | a b c d | d d) or 'constant' (fill_value); then sampled 'bilinear' or
    'nearest'. output_size (OH, OW) defaults to the input's."""
    fn = "affine_transform_forward"
    x = _args.float_array(x, "x", 4, fn=fn)
    oh, ow = x.shape[1:3] if output_size is None else _args.pair(output_size, "output_size", fn)
    m, interpolation, fill_mode = _affine_args(matrices, len(x), interpolation, fill_mode, fn)
    if not np.isfinite(m).all():
        raise ValueError(f"{fn}: matrices must be finite")
    fill_value = _args.real_number(fill_value, "fill_value", fn)
    return _core.affine_transform_forward(x, m, oh, ow, interpolation, fill_mode, fill_value,
                                          naive=_naive)


def affine_transform_backward(dy, matrices, input_size, interpolation="bilinear",
                              fill_mode="reflect"):
    """dx (N, H, W, C) of affine_transform_forward for an input of input_size (H, W): each
    output's gradient goes back to the pixels it was sampled from, with the same weights (the
    constant fill gets none)."""
    fn = "affine_transform_backward"
    dy = _args.float_array(dy, "dy", 4, fn=fn)
    h, w = _args.pair(input_size, "input_size", fn)
    m, interpolation, fill_mode = _affine_args(matrices, len(dy), interpolation, fill_mode, fn)
    if not np.isfinite(m).all():
        raise ValueError(f"{fn}: matrices must be finite")
    return _core.affine_transform_backward(dy, m, h, w, interpolation, fill_mode)


def _crop_offsets(offsets, n, image, window, fn):
    offsets = _args.per_image(offsets, n, "offsets", np.int32, (2,), fn)
    (h, w), (oh, ow) = image, window
    if oh > h or ow > w:
        raise ValueError(f"{fn}: the {oh}x{ow} window is larger than the {h}x{w} image")
    bad = (offsets < 0) | (offsets > np.array([h - oh, w - ow]))
    if bad.any():
        i = int(np.argwhere(bad.any(axis=1))[0, 0])
        raise ValueError(f"{fn}: offsets {tuple(offsets[i])} of image {i} put the {oh}x{ow} "
                         f"window outside the {h}x{w} image (top in [0, {h - oh}], left in "
                         f"[0, {w - ow}])")
    return offsets


def crop_forward(x, offsets, size):
    """y (N, OH, OW, C): the size (OH, OW) window of each image whose top-left corner is at
    offsets (top row, left column), one pair for every image or N of them."""
    fn = "crop_forward"
    x = _args.float_array(x, "x", 4, fn=fn)
    oh, ow = _args.pair(size, "size", fn)
    offsets = _crop_offsets(offsets, len(x), x.shape[1:3], (oh, ow), fn)
    return _core.crop_forward(x, offsets, oh, ow)


def crop_backward(dy, offsets, input_size):
    """dx (N, H, W, C) of crop_forward: dy inside each window, zeros elsewhere."""
    fn = "crop_backward"
    dy = _args.float_array(dy, "dy", 4, fn=fn)
    h, w = _args.pair(input_size, "input_size", fn)
    offsets = _crop_offsets(offsets, len(dy), (h, w), dy.shape[1:3], fn)
    return _core.crop_backward(dy, offsets, h, w)


def contrast_forward(x, factors, value_range=(0, 255)):
    """clip((x - mean) * factor + mean, *value_range), with each image's per-channel mean and
    factor (one for every image, or N of them), as Keras' RandomContrast."""
    fn = "contrast_forward"
    x = _args.float_array(x, "x", 4, fn=fn)
    lo, hi = _args.value_range(value_range, fn)
    return _core.contrast_forward(x, _args.per_image(factors, len(x), "factors", np.float32, fn=fn),
                                  lo, hi)


def contrast_backward(dy, x, factors, value_range=(0, 255)):
    """dx of contrast_forward: the gradient where the clip is inactive, through the mean too."""
    fn = "contrast_backward"
    x = _args.float_array(x, "x", 4, fn=fn)
    dy = _args.float_array_like(dy, "dy", x.shape, "x's shape", fn=fn)
    lo, hi = _args.value_range(value_range, fn)
    return _core.contrast_backward(dy, x, _args.per_image(factors, len(x), "factors", np.float32,
                                                          fn=fn), lo, hi)
