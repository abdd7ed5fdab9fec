"""tf.image.resize's arithmetic in NumPy (antialias=False, as Keras' image_dataset_from_directory
calls it), for every interpolation Keras accepts there, so cnnkit's image datasets hold the same
pixels as Keras' (to float32 rounding, ~1e-4 of 255).

All take an HWC array of any real dtype (uint8 straight from the decoder: only the rows a pass
gathers become float32, so a large photo is never converted whole) and return float32.
nearest, bilinear and bicubic follow TF's resize_* kernels (half-pixel centres; bicubic with
TF's tabulated Keys cubic, renormalised at the borders); area is resize_area; lanczos3/5,
gaussian and mitchellcubic are scale_and_translate's kernels.
"""
import numpy as np

__all__ = ["INTERPOLATIONS", "resize"]

# The interpolations image_dataset_from_directory accepts (Keras' list, in Keras' order).
INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5", "gaussian",
                  "mitchellcubic")


def _nearest_indices(in_size, out_size):
    """tf.image's nearest source index (half-pixel centres, in float32 as TF computes it, so
    the ties land where TF's do)."""
    scale = np.float32(in_size) / np.float32(out_size)
    centres = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale
    return np.minimum(np.floor(centres).astype(np.int64), in_size - 1)


def _bilinear_taps(in_size, out_size):
    """tf.image's bilinear taps (half-pixel centres, no antialiasing, float32 as TF)."""
    scale = np.float32(in_size) / np.float32(out_size)
    centres = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(centres)
    lower = np.maximum(floor.astype(np.int64), 0)
    upper = np.minimum(np.ceil(centres).astype(np.int64), in_size - 1)
    return lower, upper, (centres - floor).astype(np.float32)


def _resize_bilinear(array, height, width):
    """TF's bilinear resize of an HWC float32 array: along the width, then the height."""
    top_rows, bottom_rows, y_lerp = _bilinear_taps(array.shape[0], height)
    left, right, x_lerp = _bilinear_taps(array.shape[1], width)
    x_lerp = x_lerp[None, :, None]

    def along_width(rows):
        picked = array[rows].astype(np.float32)
        return picked[:, left] + (picked[:, right] - picked[:, left]) * x_lerp
    top, bottom = along_width(top_rows), along_width(bottom_rows)
    return top + (bottom - top) * y_lerp[:, None, None]


_CUBIC_TABLE_SIZE = 1024  # TF samples Keys' cubic (a = -0.5) at 1/1024 steps


def _cubic_table():
    steps = np.arange(_CUBIC_TABLE_SIZE + 1, dtype=np.float32) / np.float32(_CUBIC_TABLE_SIZE)
    a = np.float32(-0.5)
    near = ((a + 2) * steps - (a + 3)) * steps * steps + 1  # |distance| in [0, 1)
    far_steps = steps + 1
    far = ((a * far_steps - 5 * a) * far_steps + 8 * a) * far_steps - 4 * a  # [1, 2)
    return near.astype(np.float32), far.astype(np.float32)


def _bicubic_taps(in_size, out_size):
    """tf.image's bicubic taps: 4 indices and weights per output pixel; taps outside the
    image get weight 0 and the rest are renormalised, as TF's resize_bicubic does."""
    near, far = _cubic_table()
    scale = np.float32(in_size) / np.float32(out_size)
    centres = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    base = np.floor(centres).astype(np.int64)
    offset = np.rint((centres - base) * np.float32(_CUBIC_TABLE_SIZE)).astype(np.int64)
    indices = base[:, None] + np.arange(-1, 3)[None, :]
    weights = np.stack([far[offset], near[offset], near[_CUBIC_TABLE_SIZE - offset],
                        far[_CUBIC_TABLE_SIZE - offset]], axis=1)
    inside = (indices >= 0) & (indices < in_size)
    weights = np.where(inside, weights, np.float32(0))
    weights /= weights.sum(axis=1, keepdims=True)
    return np.clip(indices, 0, in_size - 1), weights.astype(np.float32)


def _apply_taps(array, indices, weights, axis):
    """out[o] = sum_k weights[o, k] * array[indices[o, k]] along `axis` (0 or 1): a few
    gathers of whole rows or columns, so a large photo costs taps x pixels, not out x in x
    pixels as a dense matrix would."""
    shape = (-1, 1, 1) if axis == 0 else (1, -1, 1)
    out = None
    for tap in range(indices.shape[1]):
        term = np.take(array, indices[:, tap], axis=axis) * weights[:, tap].reshape(shape)
        out = term if out is None else out + term
    return out


def _dense_to_taps(weights):
    """An (out, in) banded weight matrix -> (indices, weights) of its band."""
    nonzero = weights != 0
    any_nonzero = nonzero.any(axis=1)
    first = np.where(any_nonzero, nonzero.argmax(axis=1), 0)
    last = np.where(any_nonzero, weights.shape[1] - 1 - nonzero[:, ::-1].argmax(axis=1), 0)
    taps = int((last - first).max()) + 1 if weights.size else 1
    indices = np.minimum(first[:, None] + np.arange(taps)[None, :], weights.shape[1] - 1)
    band = np.take_along_axis(weights, indices, axis=1)
    beyond = first[:, None] + np.arange(taps)[None, :] > last[:, None]
    return indices, np.where(beyond, 0, band).astype(np.float32)


def _resize_bicubic(array, height, width):
    """TF's bicubic resize of an HWC float32 array: along the height, then the width."""
    tall = _apply_taps(array, *_bicubic_taps(array.shape[0], height), axis=0)
    return _apply_taps(tall, *_bicubic_taps(array.shape[1], width), axis=1).astype(np.float32)


def _area_weights(in_size, out_size):
    """tf.image's "area" (resize_area): output pixel o averages the input span
    [o * scale, (o + 1) * scale), each input pixel weighted by how much of it lies inside."""
    scale = np.float32(in_size) / np.float32(out_size)
    starts = np.arange(out_size, dtype=np.float32)[:, None] * scale
    ends = np.arange(1, out_size + 1, dtype=np.float32)[:, None] * scale
    pixels = np.arange(in_size, dtype=np.float32)[None, :]
    overlap = np.minimum(pixels + 1, ends) - np.maximum(pixels, starts)
    return np.clip(overlap, 0, None) / scale


def _resize_area(array, height, width):
    tall = _apply_taps(array, *_dense_to_taps(_area_weights(array.shape[0], height)), axis=0)
    return _apply_taps(tall, *_dense_to_taps(_area_weights(array.shape[1], width)),
                       axis=1).astype(np.float32)


def _lanczos(radius):
    def kernel(x):
        with np.errstate(divide="ignore", invalid="ignore"):
            value = (radius * np.sin(np.pi * x) * np.sin(np.pi * x / radius)
                     / (np.pi * np.pi * x * x))
        return np.where(x > radius, 0, np.where(x <= 1e-3, 1, value))
    return kernel, float(radius)


def _gaussian(x):
    radius, sigma = 1.5, 0.5  # TF's: sigma 0.5 over a support of 3 pixels
    return np.where(x >= radius, 0, np.exp(-x * x / (2 * sigma * sigma)))


def _mitchell_cubic(x):  # B = C = 1/3
    far = (((-7 / 18) * x + 2) * x - 10 / 3) * x + 16 / 9
    near = ((7 / 6) * x - 2) * x * x + 8 / 9
    return np.where(x >= 2, 0, np.where(x >= 1, far, near))


# tf.image's scale_and_translate kernels: (function of |distance|, radius).
_KERNELS = {"lanczos3": _lanczos(3), "lanczos5": _lanczos(5), "gaussian": (_gaussian, 1.5),
            "mitchellcubic": (_mitchell_cubic, 2.0)}


def _kernel_weights(in_size, out_size, kernel, radius):
    """tf.image.scale_and_translate's weights without antialiasing: output pixel o samples
    the input at (o + 0.5) * in / out over the pixels within `radius`, renormalised."""
    inv_scale = np.float32(1) / (np.float32(out_size) / np.float32(in_size))
    samples = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * inv_scale
    starts = np.clip(np.ceil(samples - np.float32(radius) - np.float32(0.5)), 0, in_size - 1)
    ends = np.clip(np.floor(samples + np.float32(radius) - np.float32(0.5)), 0, in_size - 1)
    sources = np.arange(in_size, dtype=np.float32)[None, :]
    distance = np.abs(sources + np.float32(0.5) - samples[:, None])
    inside = (sources >= starts[:, None]) & (sources <= ends[:, None])
    weights = np.where(inside, kernel(distance.astype(np.float64)), 0).astype(np.float32)
    totals = weights.sum(axis=1, keepdims=True)
    usable = (np.abs(totals) >= 1000 * np.finfo(np.float32).tiny) & (samples[:, None] <= in_size)
    return np.where(usable, weights / np.where(totals == 0, 1, totals), 0).astype(np.float32)


def _resize_kernel(array, height, width, name):
    kernel, radius = _KERNELS[name]
    rows = _dense_to_taps(_kernel_weights(array.shape[0], height, kernel, radius))
    tall = _apply_taps(array, *rows, axis=0)
    columns = _dense_to_taps(_kernel_weights(array.shape[1], width, kernel, radius))
    return _apply_taps(tall, *columns, axis=1).astype(np.float32)


def _resize_nearest(array, height, width):
    rows = _nearest_indices(array.shape[0], height)
    columns = _nearest_indices(array.shape[1], width)
    return array[rows[:, None], columns[None, :]].astype(np.float32)


def _resize_bilinear_fast(array, height, width):
    """_resize_bilinear in C++ (cnnkit._core.resize_bilinear_image, the same arithmetic, some
    20x faster on a 180x180 photo) for the arrays it takes: uint8 or float32, non-empty; the NumPy
    version, the kernel's reference, for any other dtype."""
    if array.dtype in (np.uint8, np.float32) and array.size:
        from .. import _core
        return _core.resize_bilinear_image(np.ascontiguousarray(array), height, width)
    return _resize_bilinear(array, height, width)


def resize(array, size, interpolation):
    """(H, W, C) float32 -> (size[0], size[1], C) float32 as tf.image.resize(method=...).
    As TF's, gaussian and mitchellcubic blur an image even at its own size."""
    height, width = size
    same_size = array.shape[0] == height and array.shape[1] == width
    if same_size and interpolation not in ("gaussian", "mitchellcubic"):
        return array.astype(np.float32)  # the others are 1 at 0 and 0 at whole distances
    if interpolation == "nearest":
        return _resize_nearest(array, height, width)
    if interpolation == "bilinear":
        return _resize_bilinear_fast(array, height, width)
    if interpolation == "bicubic":
        return _resize_bicubic(array, height, width)
    if interpolation == "area":
        return _resize_area(array, height, width)
    if interpolation in _KERNELS:
        return _resize_kernel(array, height, width, interpolation)
    raise ValueError(f"unknown interpolation {interpolation!r}; expected one of {INTERPOLATIONS}")
