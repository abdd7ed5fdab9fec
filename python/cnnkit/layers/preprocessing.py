"""Keras' image augmentation layers: RandomFlip, RandomTranslation, RandomRotation, RandomZoom,
RandomCrop and RandomContrast.

They act only in training (fit, or layer(x, training=True)); in inference (predict, evaluate,
layer(x)) they return the batch unchanged, except RandomCrop, which then centre-crops and resizes
to its output size as Keras documents. Each image of a batch gets its own random parameters
(RandomCrop: one window per batch, as Keras), drawn in Python from the layer's own generator,
made at build from `seed` or, without one, from the global generator (as Dropout's), and saved
with the model; one kernel call then transforms the whole batch (cnnkit.ops).

They hold no weights, so a model needs no gradient through a leading run of them: the layer
after them skips its input gradient (engine/graph.py: Graph.configure). backward still works
where a gradient does flow (a layer placed after weights).
"""
import math

import numpy as np

from .. import _args, _core
from .base import RandomLayer

__all__ = ["RandomFlip", "RandomTranslation", "RandomRotation", "RandomZoom", "RandomCrop",
           "RandomContrast"]


def _array(buffers, name, shape, dtype=np.float32):
    """A workspace buffer, or a new array when workspaces are off."""
    array = buffers(name, shape, dtype)
    return np.empty(shape, dtype) if array is None else array


class _Augmentation(RandomLayer):
    """The shared part: the generator, the identity at inference, and backward."""
    input_ndim = 4
    preprocessing = True

    def __init__(self, seed=None, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{type(self).__name__}: cnnkit works on channels_last (NHWC) "
                             "images only")
        self.seed = _args.seed(seed, type(self).__name__)
        # The per-image parameters of the last call (flags, matrices, window, factors), for
        # inspection only: backward reads its own call's (call.undo).
        self._params = None

    def forward(self, call, x, training=False):
        call.undo = None  # backward of this forward pass; None: it was the identity
        return self._augment(call, x, call.buffers(x.shape)) if training else x

    def backward(self, call, dy):
        if dy is None or not call.need_dx:
            return None
        return dy if call.undo is None else call.undo(dy)



class RandomFlip(_Augmentation):
    """Mirrors each image left-right ('horizontal'), top-bottom ('vertical') or both, each with
    probability 1/2, the two directions independently."""
    MODES = {"horizontal": 1, "vertical": 2, "horizontal_and_vertical": 3}

    def __init__(self, mode="horizontal_and_vertical", seed=None, **kwargs):
        super().__init__(seed, **kwargs)
        self.mode = _args.one_of(mode, "mode", tuple(self.MODES), "RandomFlip")

    def _augment(self, call, x, buffers):
        draws = self._generator.random((2, len(x))) < 0.5
        bits = self.MODES[self.mode]
        flags = self._params = (draws[0] * (bits & 1) | draws[1] * (bits & 2)).astype(np.uint8)
        call.undo = lambda dy: _core.flip_backward(dy, flags, out=buffers("dx", dy.shape))
        return _core.flip_forward(x, flags, out=buffers("y", x.shape))

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


class _Affine(_Augmentation):
    """Translation, rotation and zoom: one affine resampling of the batch (cnnkit.ops.
    affine_transform_forward), with a matrix per image from _fill_matrices."""

    def __init__(self, fill_mode, interpolation, seed, fill_value, **kwargs):
        super().__init__(seed, **kwargs)
        fn = type(self).__name__
        self.fill_mode = _args.one_of(fill_mode, "fill_mode", _args.FILL_MODES, fn)
        self.interpolation = _args.one_of(interpolation, "interpolation", _args.INTERPOLATIONS, fn)
        self.fill_value = _args.real_number(fill_value, "fill_value", fn)

    def _augment(self, call, x, buffers):
        n, h, w, _ = x.shape
        m = self._params = _array(buffers, "matrices", (n, 6))
        self._fill_matrices(m, h, w)
        modes = (self.interpolation, self.fill_mode)
        call.undo = lambda dy: _core.affine_transform_backward(dy, m, h, w, *modes,
                                                                out=buffers("dx", x.shape))
        return _core.affine_transform_forward(x, m, h, w, *modes, self.fill_value,
                                              out=buffers("y", x.shape))

    def get_config(self):
        return {**super().get_config(), "fill_mode": self.fill_mode,
                "interpolation": self.interpolation, "fill_value": self.fill_value}


class RandomTranslation(_Affine):
    """Shifts each image by a random fraction of its height in [lower, upper] (down when
    positive) and of its width (right when positive); a factor f means [-f, f]."""

    def __init__(self, height_factor, width_factor, fill_mode="reflect", interpolation="bilinear",
                 seed=None, fill_value=0.0, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, **kwargs)
        self._height = _args.factor_range(height_factor, "height_factor", "RandomTranslation")
        self._width = _args.factor_range(width_factor, "width_factor", "RandomTranslation")
        self.height_factor = _args.factor_config(height_factor)
        self.width_factor = _args.factor_config(width_factor)

    def _fill_matrices(self, m, h, w):
        dy = self._generator.uniform(*self._height, len(m)) * h
        dx = self._generator.uniform(*self._width, len(m)) * w
        m[:] = (1, 0, 0, 0, 1, 0)
        m[:, 2], m[:, 5] = -dx, -dy

    def get_config(self):
        return {**super().get_config(), "height_factor": self.height_factor,
                "width_factor": self.width_factor}


class RandomRotation(_Affine):
    """Rotates each image about its centre by a random angle in [lower, upper] * 2 pi (positive:
    counter-clockwise); a factor f means [-f, f]."""

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, **kwargs)
        self._range = _args.factor_range(factor, "factor", "RandomRotation")
        self.factor = _args.factor_config(factor)

    def _fill_matrices(self, m, h, w):
        lower, upper = self._range
        angle = self._generator.uniform(lower * 2 * math.pi, upper * 2 * math.pi, len(m))
        cos, sin = np.cos(angle), np.sin(angle)
        m[:, 0], m[:, 1], m[:, 3], m[:, 4] = cos, -sin, sin, cos
        m[:, 2] = ((w - 1) - (cos * (w - 1) - sin * (h - 1))) / 2  # the centre stays in place
        m[:, 5] = ((h - 1) - (sin * (w - 1) + cos * (h - 1))) / 2

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class RandomZoom(_Affine):
    """Zooms each image about its centre: out by a random fraction in [lower, upper] when
    positive, in when negative (Keras 3's convention); a factor f means [-f, f].
    width_factor=None zooms the width as the height, keeping the aspect ratio."""

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, **kwargs)
        self._height = _args.factor_range(height_factor, "height_factor", "RandomZoom")
        self._width = (None if width_factor is None else
                       _args.factor_range(width_factor, "width_factor", "RandomZoom"))
        self.height_factor = _args.factor_config(height_factor)
        self.width_factor = None if width_factor is None else _args.factor_config(width_factor)

    def _fill_matrices(self, m, h, w):
        zy = 1 + self._generator.uniform(*self._height, len(m))
        zx = zy if self._width is None else 1 + self._generator.uniform(*self._width, len(m))
        m[:] = 0
        m[:, 0], m[:, 2] = zx, (w - 1) / 2 * (1 - zx)
        m[:, 4], m[:, 5] = zy, (h - 1) / 2 * (1 - zy)

    def get_config(self):
        return {**super().get_config(), "height_factor": self.height_factor,
                "width_factor": self.width_factor}


class RandomCrop(_Augmentation):
    """A (height, width) window of the batch: in training at a random place (the same for every
    image of a batch, as Keras); in inference, and for images smaller than the window, the
    largest centred window of the target's aspect ratio, resized (bilinear) to (height, width)."""

    def __init__(self, height, width, seed=None, **kwargs):
        super().__init__(seed, **kwargs)
        self.height = _args.positive_int(height, "height", "RandomCrop")
        self.width = _args.positive_int(width, "width", "RandomCrop")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[3])

    def forward(self, call, x, training=False):
        (n, h, w, c), buffers = x.shape, call.buffers(x.shape)
        if training and h >= self.height and w >= self.width:
            top = self._generator.integers(h - self.height + 1)
            left = self._generator.integers(w - self.width + 1)
            return self._crop(call, x, (top, left), (self.height, self.width), buffers)
        ch = max(min(h, int(w * self.height / self.width)), 1)
        cw = max(min(w, int(h * self.width / self.height)), 1)
        y = self._crop(call, x, ((h - ch) // 2, (w - cw) // 2), (ch, cw), buffers)
        if (ch, cw) == (self.height, self.width):
            return y
        # Resize with half-pixel centres, edges clamped: TensorFlow's bilinear resize.
        m = np.array([cw / self.width, 0, cw / self.width / 2 - 0.5,
                      0, ch / self.height, ch / self.height / 2 - 0.5], np.float32)
        m = np.ascontiguousarray(np.broadcast_to(m, (n, 6)))
        crop_undo, shape = call.undo or (lambda dy: dy), (n, self.height, self.width, c)
        call.undo = lambda dy: crop_undo(_core.affine_transform_backward(
            dy, m, ch, cw, "bilinear", "nearest", out=buffers("dresize", y.shape)))
        return _core.affine_transform_forward(y, m, self.height, self.width, "bilinear", "nearest",
                                              out=buffers("resize", shape))

    def _crop(self, call, x, corner, size, buffers):
        """The size window at corner (top, left) of every image; x itself if that is all of it."""
        (n, h, w, c), (oh, ow) = x.shape, size
        call.undo = None
        if (oh, ow) == (h, w):
            return x
        offsets = self._params = _array(buffers, "offsets", (n, 2), np.int32)
        offsets[:] = corner
        call.undo = lambda dy: _core.crop_backward(dy, offsets, h, w, out=buffers("dx", x.shape))
        return _core.crop_forward(x, offsets, oh, ow, out=buffers("y", (n, oh, ow, c)))

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}


class RandomContrast(_Augmentation):
    """(x - mean) * f + mean per channel of each image, clipped to value_range, with f random in
    [1 - lower, 1 + upper]; a factor f in [0, 1] means [1 - f, 1 + f]."""

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed, **kwargs)
        self._range = _args.factor_range(factor, "factor", "RandomContrast", 0.0, 1.0,
                                         symmetric=False)
        self.factor = _args.factor_config(factor)
        self.value_range = _args.value_range(value_range, "RandomContrast")

    def _augment(self, call, x, buffers):
        lower, upper = self._range
        f = self._params = _array(buffers, "factors", (len(x),))
        f[:] = self._generator.uniform(1 - lower, 1 + upper, len(x))
        lo, hi = self.value_range
        call.undo = lambda dy: _core.contrast_backward(dy, x, f, lo, hi,
                                                        out=buffers("dx", x.shape))
        return _core.contrast_forward(x, f, lo, hi, out=buffers("y", x.shape))

    def get_config(self):
        return {**super().get_config(), "factor": self.factor,
                "value_range": list(self.value_range)}
