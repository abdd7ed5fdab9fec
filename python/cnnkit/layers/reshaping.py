"""Flatten, Reshape, UpSampling2D, ZeroPadding2D and Cropping2D."""
import math

from .. import _args, _core
from .._pool_args import border_2d, upsampling_interpolation
from .base import Layer, shape_str
from .pooling import channels_last

__all__ = ["Flatten", "Reshape", "UpSampling2D", "ZeroPadding2D", "Cropping2D"]


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1*d2*...), a reshape without copying (row-major, as Keras'
    channels_last, so that weights carry over)."""
    input_min_ndim = 1

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        return (input_shape[0], None if None in rest else math.prod(rest))

    def forward(self, call, x, training=False):
        call.shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, call, dy):
        return dy.reshape(call.shape)


class Reshape(Layer):
    """(N, ...) -> (N, *target_shape); one entry of target_shape may be -1."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(int(s) for s in target_shape)
        if sum(s == -1 for s in self.target_shape) > 1 or any(s < -1 or s == 0 for s in self.target_shape):
            raise ValueError(f"Reshape: target_shape must hold positive sizes and at most one -1, "
                             f"got {target_shape!r}")

    def compute_output_shape(self, input_shape):
        size = None if None in input_shape[1:] else math.prod(input_shape[1:])
        known = math.prod(s for s in self.target_shape if s != -1)
        if -1 in self.target_shape:
            fill = None if size is None else size // known
            out = tuple(fill if s == -1 else s for s in self.target_shape)
        else:
            out = self.target_shape
        if size is not None and (size % known or (-1 not in self.target_shape and size != known)):
            raise ValueError(f'Layer "{self.name}" (Reshape) cannot reshape an input of shape '
                             f"{shape_str(input_shape)} ({size} values per sample) to target_shape "
                             f"{shape_str(self.target_shape)}")
        return (input_shape[0],) + out

    def forward(self, call, x, training=False):
        call.shape = x.shape
        return x.reshape((x.shape[0],) + self.target_shape)

    def backward(self, call, dy):
        return dy.reshape(call.shape)

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


class UpSampling2D(Layer):
    """Each pixel becomes a size[0] x size[1] block: repeated ('nearest') or interpolated
    ('bilinear', as Keras 3 resizes: half-pixel centres, no antialiasing, edges clamped)."""
    input_ndim = 4

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        self.data_format = channels_last(data_format, "UpSampling2D")
        self.size = _args.pair(size, "size", "UpSampling2D")
        self.interpolation = upsampling_interpolation(interpolation, "UpSampling2D")
        bilinear = self.interpolation == "bilinear"
        self._forward = _core.upsampling2d_bilinear_forward if bilinear else _core.upsampling2d_forward
        self._backward = _core.upsampling2d_bilinear_backward if bilinear else _core.upsampling2d_backward

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, None if h is None else h * self.size[0], None if w is None else w * self.size[1], c)

    def forward(self, call, x, training=False):
        (sh, sw), call.buf = self.size, call.buffers(x.shape)
        n, h, w, c = x.shape
        return self._forward(x, sh, sw, out=call.buf("y", (n, h * sh, w * sw, c)))

    def backward(self, call, dy):
        if not call.need_dx:
            return None
        (sh, sw), (n, h, w, c) = self.size, dy.shape
        return self._backward(dy, sh, sw, out=call.buf("dx", (n, h // sh, w // sw, c)))

    def get_config(self):
        return {**super().get_config(), "size": list(self.size), "data_format": self.data_format,
                "interpolation": self.interpolation}


def _border_config(border):
    return [list(border[0]), list(border[1])]


class ZeroPadding2D(Layer):
    """Zero rows above and below, zero columns left and right of each image. padding: an int,
    (rows, columns), or ((top, bottom), (left, right))."""
    input_ndim = 4

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = channels_last(data_format, "ZeroPadding2D")
        self.padding = border_2d(padding, "padding", "ZeroPadding2D")
        (top, bottom), (left, right) = self.padding
        self._sides = (top, bottom, left, right)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        (top, bottom), (left, right) = self.padding
        return (n, None if h is None else h + top + bottom, None if w is None else w + left + right, c)

    def forward(self, call, x, training=False):
        call.buf = call.buffers(x.shape)
        out = call.buf("y", self.compute_output_shape(x.shape))
        return _core.zero_padding2d_forward(x, *self._sides, out=out)

    def backward(self, call, dy):
        if not call.need_dx:
            return None
        n, h, w, c = dy.shape
        top, bottom, left, right = self._sides
        out = call.buf("dx", (n, h - top - bottom, w - left - right, c))
        return _core.zero_padding2d_backward(dy, *self._sides, out=out)

    def get_config(self):
        return {**super().get_config(), "padding": _border_config(self.padding),
                "data_format": self.data_format}


class Cropping2D(Layer):
    """Removes rows at the top and bottom and columns at the left and right of each image.
    cropping: an int, (rows, columns), or ((top, bottom), (left, right)); something must
    remain."""
    input_ndim = 4

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = channels_last(data_format, "Cropping2D")
        self.cropping = border_2d(cropping, "cropping", "Cropping2D")
        (top, bottom), (left, right) = self.cropping
        self._sides = (top, bottom, left, right)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        (top, bottom), (left, right) = self.cropping
        if (h is not None and top + bottom >= h) or (w is not None and left + right >= w):
            raise ValueError(f'Layer "{self.name}" (Cropping2D): cropping {self.cropping} '
                             f"removes every row or column of an input of shape "
                             f"{shape_str(input_shape)}")
        return (n, None if h is None else h - top - bottom, None if w is None else w - left - right, c)

    def forward(self, call, x, training=False):
        call.shape, call.buf = x.shape, call.buffers(x.shape)
        out = call.buf("y", self.compute_output_shape(x.shape))
        return _core.cropping2d_forward(x, *self._sides, out=out)

    def backward(self, call, dy):
        if not call.need_dx:
            return None
        return _core.cropping2d_backward(dy, *self._sides, out=call.buf("dx", call.shape))

    def get_config(self):
        return {**super().get_config(), "cropping": _border_config(self.cropping),
                "data_format": self.data_format}
