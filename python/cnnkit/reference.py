"""The functional API of cnnkit in plain NumPy: the yardstick the C++ kernels are tested and
benchmarked against.

Written for clarity, not speed: window operations loop over the kernel offsets (kh, kw) and do
the rest with whole-array NumPy. Same signatures, geometry and argument checks as cnnkit.ops
(both use cnnkit._args). Computes in float64 when given float64 (so that finite differences
work) and in float32 otherwise.
"""
import math

import numpy as np

from ._args import (FILL_MODES, INTERPOLATIONS, bias_array, class_labels, conv_geometry,
                    dense_sizes, flag, float_array, float_array_like, inplace_arrays, one_of, pair,
                    per_image, pool_geometry, positive_int, real_number, target_array,
                    working_dtype)
from ._args import value_range as value_range_pair

INPLACE_DTYPES = (np.float32, np.float64)


# ---------------------------------------------------------------- window helpers

def _pad(x, g, value):
    """x (N,H,W,C) padded with `value`: PT/PL rows/columns before, and after as many as the
    last window needs (none, or cropped away in effect, when 'valid' leaves rows unused)."""
    bottom = max((g.OH - 1) * g.SH + g.KH - g.H - g.PT, 0)
    right = max((g.OW - 1) * g.SW + g.KW - g.W - g.PL, 0)
    return np.pad(x, ((0, 0), (g.PT, bottom), (g.PL, right), (0, 0)), constant_values=value)


def _offsets(g):
    """The (i, j) offsets inside a window, in row-major window order."""
    return [(i, j) for i in range(g.KH) for j in range(g.KW)]


def _tap(g, i, j):
    """Index of the padded-input elements that window offset (i, j) sees, one per output
    pixel: a (N, OH, OW, C) strided view."""
    rows = slice(i, i + (g.OH - 1) * g.SH + 1, g.SH)
    cols = slice(j, j + (g.OW - 1) * g.SW + 1, g.SW)
    return np.s_[:, rows, cols, :]


def _unpad(xp, g):
    return np.ascontiguousarray(xp[:, g.PT:g.PT + g.H, g.PL:g.PL + g.W, :])


# ---------------------------------------------------------------- convolution

def conv2d_forward(x, w, b=None, strides=(1, 1), padding="valid"):
    # x (N,H,W,C), w (KH,KW,C,OC), b (OC) -> y (N,OH,OW,OC)
    fn = "conv2d_forward"
    dtype = working_dtype(x, w, b)
    x = float_array(x, "x", 4, dtype, fn)
    w = float_array(w, "w", 4, dtype, fn)
    g = conv_geometry(x.shape, w.shape, strides, padding, fn)
    b = bias_array(b, w.shape[3], dtype, fn)
    xp = _pad(x, g, 0)
    y = np.zeros((g.N * g.OH * g.OW, w.shape[3]), dtype)
    for i, j in _offsets(g):
        y += xp[_tap(g, i, j)].reshape(-1, g.C) @ w[i, j]
    if b is not None:
        y += b
    return y.reshape(g.N, g.OH, g.OW, -1)


def conv2d_backward(dy, x, w, strides=(1, 1), padding="valid"):
    # dy (N,OH,OW,OC), x (N,H,W,C), w (KH,KW,C,OC) -> dx, dw, db
    fn = "conv2d_backward"
    dtype = working_dtype(dy, x, w)
    x = float_array(x, "x", 4, dtype, fn)
    w = float_array(w, "w", 4, dtype, fn)
    g = conv_geometry(x.shape, w.shape, strides, padding, fn)
    oc = w.shape[3]
    dy = float_array_like(dy, "dy", (g.N, g.OH, g.OW, oc), "the output of this convolution",
                          dtype, fn).reshape(-1, oc)
    xp = _pad(x, g, 0)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for i, j in _offsets(g):
        tap = _tap(g, i, j)
        dw[i, j] = xp[tap].reshape(-1, g.C).T @ dy
        dxp[tap] += (dy @ w[i, j].T).reshape(g.N, g.OH, g.OW, g.C)
    return _unpad(dxp, g), dw, dy.sum(axis=0)


# ---------------------------------------------------------------- pooling and upsampling

def _pool_winners(xp, g):
    """The max of each window and which offset (its index in _offsets) holds it. A later
    offset takes over only when strictly greater, so ties go to the first maximum. A NaN
    takes over from a number and then stays (the first NaN wins), so that a NaN input shows
    in the output as in NumPy's max and PyTorch's pooling, instead of vanishing."""
    best = np.full((g.N, g.OH, g.OW, g.C), -np.inf, xp.dtype)
    winner = np.zeros(best.shape, np.int64)
    for k, (i, j) in enumerate(_offsets(g)):
        candidate = xp[_tap(g, i, j)]
        better = (candidate > best) | (np.isnan(candidate) & ~np.isnan(best))
        best = np.where(better, candidate, best)
        winner[better] = k
    return best, winner


def maxpool2d_forward(x, pool_size=(2, 2), strides=None, padding="valid"):
    # x (N,H,W,C) -> y (N,OH,OW,C)
    fn = "maxpool2d_forward"
    x = float_array(x, "x", 4, working_dtype(x), fn)
    g = pool_geometry(x.shape, pool_size, strides, padding, fn)
    y, _ = _pool_winners(_pad(x, g, -np.inf), g)  # padding never wins
    return y


def maxpool2d_backward(dy, x, pool_size=(2, 2), strides=None, padding="valid"):
    # dy (N,OH,OW,C), x (N,H,W,C) -> dx (N,H,W,C): each dy goes to its window's first maximum,
    # summed where windows overlap.
    fn = "maxpool2d_backward"
    dtype = working_dtype(dy, x)
    x = float_array(x, "x", 4, dtype, fn)
    g = pool_geometry(x.shape, pool_size, strides, padding, fn)
    dy = float_array_like(dy, "dy", (g.N, g.OH, g.OW, g.C), "the output of this pooling",
                          dtype, fn)
    xp = _pad(x, g, -np.inf)
    _, winner = _pool_winners(xp, g)
    dxp = np.zeros_like(xp)
    for k, (i, j) in enumerate(_offsets(g)):
        dxp[_tap(g, i, j)] += np.where(winner == k, dy, 0)
    return _unpad(dxp, g)


def upsampling2d_forward(x, size=(2, 2)):
    # x (N,H,W,C) -> y (N,H*SH,W*SW,C), each pixel repeated into an SH x SW block
    fn = "upsampling2d_forward"
    sh, sw = pair(size, "size", fn)
    x = float_array(x, "x", 4, working_dtype(x), fn)
    return x.repeat(sh, axis=1).repeat(sw, axis=2)


def upsampling2d_backward(dy, size=(2, 2)):
    # dy (N,H*SH,W*SW,C) -> dx (N,H,W,C), the sum of each block
    fn = "upsampling2d_backward"
    sh, sw = pair(size, "size", fn)
    dy = float_array(dy, "dy", 4, working_dtype(dy), fn)
    n, h, w, c = dy.shape
    if h % sh or w % sw:
        raise ValueError(f"{fn}: dy has shape {dy.shape}, whose height and width are not "
                         f"multiples of size {(sh, sw)}")
    return dy.reshape(n, h // sh, sh, w // sw, sw, c).sum(axis=(2, 4))


# ---------------------------------------------------------------- dense

def dense_forward(x, w, b=None):
    # x (B,IN), w (IN,OUT), b (OUT) -> y (B,OUT)
    fn = "dense_forward"
    dtype = working_dtype(x, w, b)
    x = float_array(x, "x", 2, dtype, fn)
    w = float_array(w, "w", 2, dtype, fn)
    _, _, units = dense_sizes(x.shape, w.shape, fn)
    b = bias_array(b, units, dtype, fn)
    y = x @ w
    return y if b is None else y + b


def dense_backward(dy, x, w):
    # dy (B,OUT), x (B,IN), w (IN,OUT) -> dx, dw, db
    fn = "dense_backward"
    dtype = working_dtype(dy, x, w)
    x = float_array(x, "x", 2, dtype, fn)
    w = float_array(w, "w", 2, dtype, fn)
    batch, _, units = dense_sizes(x.shape, w.shape, fn)
    dy = float_array_like(dy, "dy", (batch, units), "the output of this layer", dtype, fn)
    return dy @ w.T, x.T @ dy, dy.sum(axis=0)


# ---------------------------------------------------------------- activations

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


# ---------------------------------------------------------------- losses

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


# ---------------------------------------------------------------- optimizers (in place)

def adam_update(param, grad, m, v, step, learning_rate=0.001, beta_1=0.9, beta_2=0.999,
                epsilon=1e-7):
    # Keras 3's Adam; step is the 1-based number of this update.
    fn = "adam_update"
    grad = float_array(grad, "grad", dtype=working_dtype(param), fn=fn)
    inplace_arrays(grad.shape, INPLACE_DTYPES, fn, param=param, m=m, v=v)
    step = positive_int(step, "step", fn)
    lr = real_number(learning_rate, "learning_rate", fn, low=0)
    b1 = real_number(beta_1, "beta_1", fn, low=0, high=1, include_high=False)
    b2 = real_number(beta_2, "beta_2", fn, low=0, high=1, include_high=False)
    eps = real_number(epsilon, "epsilon", fn, low=0)
    alpha = lr * math.sqrt(1 - b2**step) / (1 - b1**step)
    m += (grad - m) * (1 - b1)
    v += (grad * grad - v) * (1 - b2)
    param -= alpha * m / (np.sqrt(v) + eps)


def sgd_update(param, grad, velocity=None, learning_rate=0.01, momentum=0.0, nesterov=False):
    # Keras' SGD: plain without a velocity; with one, momentum (optionally Nesterov).
    fn = "sgd_update"
    grad = float_array(grad, "grad", dtype=working_dtype(param), fn=fn)
    lr = real_number(learning_rate, "learning_rate", fn, low=0)
    momentum = real_number(momentum, "momentum", fn, low=0, high=1)
    nesterov = flag(nesterov, "nesterov", fn)
    if velocity is None:
        if momentum > 0:
            raise ValueError(f"{fn}: momentum={momentum} needs a velocity array")
        inplace_arrays(grad.shape, INPLACE_DTYPES, fn, param=param)
        param -= lr * grad
        return
    inplace_arrays(grad.shape, INPLACE_DTYPES, fn, param=param, velocity=velocity)
    velocity *= momentum
    velocity -= lr * grad
    if nesterov:
        param += momentum * velocity - lr * grad
    else:
        param += velocity


# ---------------------------------------------------------------- augmentation

def _flags(horizontal, vertical, n, fn):
    return (per_image(horizontal, n, "horizontal", bool, fn=fn),
            per_image(vertical, n, "vertical", bool, fn=fn))


def flip_forward(x, horizontal=True, vertical=False):
    fn = "flip_forward"
    x = float_array(x, "x", 4, working_dtype(x), fn)
    h, v = _flags(horizontal, vertical, len(x), fn)
    y = x.copy()
    y[h] = y[h][:, :, ::-1]
    y[v] = y[v][:, ::-1]
    return y


def flip_backward(dy, horizontal=True, vertical=False):
    return flip_forward(dy, horizontal, vertical)


def _extend(i, n, fill_mode):
    """The input index that position i of the extended signal of n pixels reads (-1: the
    constant fill), straight from the definitions of the fill modes."""
    if fill_mode == "reflect":  # d c b a | a b c d | d c b a: period 2n, mirrored halves
        m = np.mod(i, 2 * n)
        return np.where(m < n, m, 2 * n - 1 - m)
    if fill_mode == "wrap":
        return np.mod(i, n)
    if fill_mode == "nearest":
        return np.clip(i, 0, n - 1)
    return np.where((i >= 0) & (i < n), i, -1)


def _affine_taps(matrices, n, image, out_size, interpolation, fill_mode):
    """[(flat index, weight), ...] per output pixel (n, OH, OW): the pixels it reads and their
    weights; the flat index h*W (one past the image) stands for the constant fill."""
    (h, w), (oh, ow) = image, out_size
    m = matrices.astype(np.float64)[:, :, None, None]
    rows, cols = np.meshgrid(np.arange(oh), np.arange(ow), indexing="ij")
    x_in = m[:, 0] * cols + m[:, 1] * rows + m[:, 2]
    y_in = m[:, 3] * cols + m[:, 4] * rows + m[:, 5]

    def flat(iy, ix):
        iy, ix = _extend(iy, h, fill_mode), _extend(ix, w, fill_mode)
        return np.where((iy < 0) | (ix < 0), h * w, iy * w + ix)

    if interpolation == "nearest":
        return [(flat(np.floor(y_in + 0.5).astype(np.int64), np.floor(x_in + 0.5).astype(np.int64)),
                 np.ones_like(x_in))]
    fy, fx = np.floor(y_in), np.floor(x_in)
    wy, wx = y_in - fy, x_in - fx
    iy, ix = fy.astype(np.int64), fx.astype(np.int64)
    return [(flat(iy, ix), (1 - wy) * (1 - wx)), (flat(iy, ix + 1), (1 - wy) * wx),
            (flat(iy + 1, ix), wy * (1 - wx)), (flat(iy + 1, ix + 1), wy * wx)]


def affine_transform_forward(x, matrices, output_size=None, interpolation="bilinear",
                             fill_mode="reflect", fill_value=0.0):
    fn = "affine_transform_forward"
    dtype = working_dtype(x)
    x = float_array(x, "x", 4, dtype, fn)
    n, h, w, c = x.shape
    out_size = (h, w) if output_size is None else pair(output_size, "output_size", fn)
    matrices = per_image(matrices, n, "matrices", np.float32, (6,), fn)
    interpolation = one_of(interpolation, "interpolation", INTERPOLATIONS, fn)
    fill_mode = one_of(fill_mode, "fill_mode", FILL_MODES, fn)
    fill = np.full((n, 1, c), real_number(fill_value, "fill_value", fn), np.float64)
    pixels = np.concatenate([x.reshape(n, h * w, c).astype(np.float64), fill], axis=1)
    batch = np.arange(n)[:, None, None]
    taps = _affine_taps(matrices, n, (h, w), out_size, interpolation, fill_mode)
    y = sum(weight[..., None] * pixels[batch, index] for index, weight in taps)
    return y.astype(dtype)


def affine_transform_backward(dy, matrices, input_size, interpolation="bilinear",
                              fill_mode="reflect"):
    fn = "affine_transform_backward"
    dtype = working_dtype(dy)
    dy = float_array(dy, "dy", 4, dtype, fn)
    n, oh, ow, c = dy.shape
    h, w = pair(input_size, "input_size", fn)
    matrices = per_image(matrices, n, "matrices", np.float32, (6,), fn)
    interpolation = one_of(interpolation, "interpolation", INTERPOLATIONS, fn)
    fill_mode = one_of(fill_mode, "fill_mode", FILL_MODES, fn)
    dx = np.zeros((n, h * w + 1, c))
    batch = np.broadcast_to(np.arange(n)[:, None, None], (n, oh, ow))
    for index, weight in _affine_taps(matrices, n, (h, w), (oh, ow), interpolation, fill_mode):
        np.add.at(dx, (batch, index), weight[..., None] * dy)
    return dx[:, :h * w].reshape(n, h, w, c).astype(dtype)


def crop_forward(x, offsets, size):
    fn = "crop_forward"
    x = float_array(x, "x", 4, working_dtype(x), fn)
    oh, ow = pair(size, "size", fn)
    offsets = per_image(offsets, len(x), "offsets", np.int32, (2,), fn)
    return np.stack([image[top:top + oh, left:left + ow] for image, (top, left) in zip(x, offsets)])


def crop_backward(dy, offsets, input_size):
    fn = "crop_backward"
    dy = float_array(dy, "dy", 4, working_dtype(dy), fn)
    n, oh, ow, c = dy.shape
    h, w = pair(input_size, "input_size", fn)
    dx = np.zeros((n, h, w, c), dy.dtype)
    for i, (top, left) in enumerate(per_image(offsets, n, "offsets", np.int32, (2,), fn)):
        dx[i, top:top + oh, left:left + ow] = dy[i]
    return dx


def _contrast(x, factors, value_range, fn):
    dtype = working_dtype(x)
    x = float_array(x, "x", 4, dtype, fn)
    f = per_image(factors, len(x), "factors", np.float64, fn=fn)[:, None, None, None]
    lo, hi = value_range_pair(value_range, fn)
    mean = x.astype(np.float64).mean(axis=(1, 2), keepdims=True)
    return x, f, f * x + (1 - f) * mean, lo, hi, dtype


def contrast_forward(x, factors, value_range=(0, 255)):
    _, _, z, lo, hi, dtype = _contrast(x, factors, value_range, "contrast_forward")
    return np.clip(z, lo, hi).astype(dtype)


def contrast_backward(dy, x, factors, value_range=(0, 255)):
    fn = "contrast_backward"
    x, f, z, lo, hi, dtype = _contrast(x, factors, value_range, fn)
    dy = float_array_like(dy, "dy", x.shape, "x's shape", dtype, fn)
    g = np.where((z >= lo) & (z <= hi), dy, 0.0)
    return (f * g + (1 - f) * g.mean(axis=(1, 2), keepdims=True)).astype(dtype)
