"""Flatten, Reshape and UpSampling2D."""
import math

from .. import _args, _core
from .base import Layer, shape_str

__all__ = ["Flatten", "Reshape", "UpSampling2D"]


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
    """Nearest-neighbour upsampling: each pixel becomes a size[0] x size[1] block."""
    input_ndim = 4

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError("UpSampling2D: cnnkit works on channels_last (NHWC) images only")
        if interpolation != "nearest":
            raise ValueError(f"UpSampling2D: only interpolation='nearest' is supported, got "
                             f"{interpolation!r}")
        self.size = _args.pair(size, "size", "UpSampling2D")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, None if h is None else h * self.size[0], None if w is None else w * self.size[1], c)

    def forward(self, call, x, training=False):
        (sh, sw), call.buf = self.size, call.buffers(x.shape)
        n, h, w, c = x.shape
        return _core.upsampling2d_forward(x, sh, sw, out=call.buf("y", (n, h * sh, w * sw, c)))

    def backward(self, call, dy):
        if not call.need_dx:
            return None
        (sh, sw), (n, h, w, c) = self.size, dy.shape
        return _core.upsampling2d_backward(dy, sh, sw, out=call.buf("dx", (n, h // sh, w // sw, c)))

    def get_config(self):
        return {**super().get_config(), "size": list(self.size), "interpolation": "nearest"}
