"""cnnkit.ops: augmentation, checked and converted, over the C++ kernels."""
import numpy as np

from .. import _args, _core

__all__ = ["flip_forward", "flip_backward", "affine_transform_forward",
           "affine_transform_backward", "crop_forward", "crop_backward", "contrast_forward",
           "contrast_backward"]


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
