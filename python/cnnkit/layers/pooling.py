"""Pooling over NHWC images: windowed (MaxPooling2D, AveragePooling2D) and global
(GlobalAveragePooling2D, GlobalMaxPooling2D), with Keras' aliases."""
import numpy as np

from .. import _args, _core
from .base import Layer
from .output_size import window_output

__all__ = ["MaxPooling2D", "MaxPool2D", "AveragePooling2D", "AvgPool2D",
           "GlobalAveragePooling2D", "GlobalAvgPool2D", "GlobalMaxPooling2D", "GlobalMaxPool2D"]


def channels_last(data_format, who):
    """Keras' data_format argument: cnnkit's images are NHWC, so only channels_last (or None,
    Keras' default) is accepted."""
    if data_format not in (None, "channels_last"):
        raise ValueError(f"{who}: data_format must be 'channels_last' (cnnkit works on NHWC "
                         f"images only), got {data_format!r}")
    return "channels_last"


class Pooling2D(Layer):
    """What windowed poolings share: pool_size, strides (pool_size when None), padding
    ('valid' or 'same', with Keras' output sizes), data_format, the window geometry per input
    size and the configuration. Subclasses write forward and backward."""
    input_ndim = 4

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(**kwargs)
        who = type(self).__name__
        self.data_format = channels_last(data_format, who)
        self.pool_size = _args.pair(pool_size, "pool_size", who)
        self.strides = self.pool_size if strides is None else _args.pair(strides, "strides", who)
        self.padding = _args.padding_mode(padding, who)
        self._geometry = {}

    def build(self, input_shape):
        out = self.compute_output_shape(input_shape)
        if any(s is not None and s < 1 for s in out[1:3]):
            self._incompatible(f"the {self.pool_size[0]}x{self.pool_size[1]} pool window is "
                               "larger than the image (padding='valid')", input_shape)
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        (kh, kw), (sh, sw) = self.pool_size, self.strides
        return (n, window_output(h, kh, sh, self.padding), window_output(w, kw, sw, self.padding), c)

    def _window(self, shape):
        g = self._geometry.get(shape[1:3])
        if g is None:
            g = _args.pool_geometry(shape, self.pool_size, self.strides, self.padding, self.name)
            self._geometry[shape[1:3]] = g
        return g

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size),
                "padding": self.padding, "strides": list(self.strides),
                "data_format": self.data_format}


class MaxPooling2D(Pooling2D):
    """The maximum of each window (padded positions never win). In training the forward pass
    records each window's winner, so backward routes the gradient there without recomputing the
    pooling; ties go to the first maximum, and overlapping windows add up."""

    def forward(self, call, x, training=False):
        g = self._window(x.shape)
        call.x, call.buf = x, call.buffers(x.shape)
        args = (x, g.KH, g.KW, g.SH, g.SW, g.PT, g.PL, g.OH, g.OW)
        shape = (len(x), g.OH, g.OW, x.shape[3])
        out = call.buf("y", shape)
        if training:
            y, call.argmax = _core.maxpool2d_forward(
                *args, with_argmax=True, out=out, argmax_out=call.buf("argmax", shape, np.int32))
            return y
        call.argmax = None
        return _core.maxpool2d_forward(*args, out=out)

    def backward(self, call, dy):
        if not call.need_dx:
            return None
        x = call.x
        g = self._window(x.shape)
        dx = call.buf("dx", x.shape)
        if call.argmax is None:  # forward ran in inference mode: find the winners again
            return _core.maxpool2d_backward(dy, x, g.KH, g.KW, g.SH, g.SW, g.PT, g.PL, out=dx)
        return _core.maxpool2d_backward_argmax(dy, call.argmax, x.shape[1], x.shape[2],
                                               g.KH, g.KW, g.SH, g.SW, g.PT, g.PL, out=dx)


class AveragePooling2D(Pooling2D):
    """The mean of each window. With padding='same' the padded positions are left out of the
    count (each window divides by its real inputs), as Keras does."""

    def forward(self, call, x, training=False):
        g = self._window(x.shape)
        call.shape, call.buf = x.shape, call.buffers(x.shape)
        out = call.buf("y", (len(x), g.OH, g.OW, x.shape[3]))
        return _core.avgpool2d_forward(x, g.KH, g.KW, g.SH, g.SW, g.PT, g.PL, g.OH, g.OW, out=out)

    def backward(self, call, dy):
        if not call.need_dx:
            return None
        g = self._window(call.shape)
        return _core.avgpool2d_backward(dy, g.H, g.W, g.KH, g.KW, g.SH, g.SW, g.PT, g.PL,
                                        out=call.buf("dx", call.shape))


class GlobalPooling2D(Layer):
    """What global poolings share: (N, H, W, C) -> (N, C), or (N, 1, 1, C) with keepdims=True."""
    input_ndim = 4

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        who = type(self).__name__
        self.data_format = channels_last(data_format, who)
        self.keepdims = _args.flag(keepdims, "keepdims", who)

    def compute_output_shape(self, input_shape):
        n, c = input_shape[0], input_shape[3]
        return (n, 1, 1, c) if self.keepdims else (n, c)

    def _shaped(self, y):
        """y (N, C) as the layer's output: a view of it with keepdims."""
        return y.reshape(len(y), 1, 1, y.shape[1]) if self.keepdims else y

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format,
                "keepdims": self.keepdims}


class GlobalAveragePooling2D(GlobalPooling2D):
    """The mean of each channel over all positions of the image."""

    def forward(self, call, x, training=False):
        call.shape, call.buf = x.shape, call.buffers(x.shape)
        y = _core.global_avgpool2d_forward(x, out=call.buf("y", (len(x), x.shape[3])))
        return self._shaped(y)

    def backward(self, call, dy):
        if not call.need_dx:
            return None
        n, h, w, c = call.shape
        return _core.global_avgpool2d_backward(dy.reshape(n, c), h, w, out=call.buf("dx", call.shape))


class GlobalMaxPooling2D(GlobalPooling2D):
    """The maximum of each channel over all positions of the image: max pooling with one
    window as large as the image (the same kernels, so the same NaN and tie rules: the
    gradient goes to the first maximum)."""

    def forward(self, call, x, training=False):
        n, h, w, c = x.shape
        call.x, call.buf = x, call.buffers(x.shape)
        out = call.buf("y", (n, 1, 1, c))
        if training:
            y, call.argmax = _core.maxpool2d_forward(
                x, h, w, h, w, 0, 0, 1, 1, with_argmax=True, out=out,
                argmax_out=call.buf("argmax", (n, 1, 1, c), np.int32))
        else:
            call.argmax = None
            y = _core.maxpool2d_forward(x, h, w, h, w, 0, 0, 1, 1, out=out)
        return y if self.keepdims else y.reshape(n, c)

    def backward(self, call, dy):
        if not call.need_dx:
            return None
        x = call.x
        n, h, w, c = x.shape
        dy, dx = dy.reshape(n, 1, 1, c), call.buf("dx", x.shape)
        if call.argmax is None:
            return _core.maxpool2d_backward(dy, x, h, w, h, w, 0, 0, out=dx)
        return _core.maxpool2d_backward_argmax(dy, call.argmax, h, w, h, w, h, w, 0, 0, out=dx)


# Keras' aliases
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D
