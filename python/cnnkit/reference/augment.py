"""cnnkit.reference: augmentation in plain NumPy."""
import numpy as np

from .._args import (FILL_MODES, INTERPOLATIONS, float_array, float_array_like, one_of, pair,
                     per_image, real_number, working_dtype, value_range as value_range_pair)

__all__ = ["flip_forward", "flip_backward", "affine_transform_forward",
           "affine_transform_backward", "crop_forward", "crop_backward", "contrast_forward",
           "contrast_backward"]


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
