"""MaxPooling2D over NHWC images."""
import numpy as np

from .. import _args, _core
from .base import Layer
from .output_size import window_output

__all__ = ["MaxPooling2D", "MaxPool2D"]


class MaxPooling2D(Layer):
    """The maximum of each window. In training the forward pass records each window's winner,
    so backward routes the gradient there without recomputing the pooling; ties go to the
    first maximum, and overlapping windows add up."""
    input_ndim = 4

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError("MaxPooling2D: cnnkit works on channels_last (NHWC) images only")
        self.pool_size = _args.pair(pool_size, "pool_size", "MaxPooling2D")
        self.strides = self.pool_size if strides is None else _args.pair(strides, "strides", "MaxPooling2D")
        self.padding = _args.padding_mode(padding, "MaxPooling2D")
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

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size),
                "strides": list(self.strides), "padding": self.padding}


MaxPool2D = MaxPooling2D  # Keras' alias
