"""Conv2D: a 2-D convolution over NHWC images, kernel (kh, kw, cin, filters), fused activation."""
import numpy as np

from .. import _args, _core, initializers
from .base import ActivationMixin, Layer
from .output_size import window_output

__all__ = ["Conv2D"]


class Conv2D(ActivationMixin, Layer):
    input_ndim = 4

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(filters, (int, np.integer)) or isinstance(filters, bool) or filters < 1:
            raise ValueError(f"Conv2D: filters must be a positive integer, got {filters!r}")
        if data_format not in (None, "channels_last"):
            raise ValueError("Conv2D: cnnkit works on channels_last (NHWC) images only")
        if _args.pair(dilation_rate, "dilation_rate", "Conv2D") != (1, 1):
            raise ValueError("Conv2D: dilation_rate other than 1 is not supported")
        self.filters = int(filters)
        self.kernel_size = _args.pair(kernel_size, "kernel_size", "Conv2D")
        self.strides = _args.pair(strides, "strides", "Conv2D")
        self.padding = _args.padding_mode(padding, "Conv2D")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self._set_activation(activation)
        self._geometry = {}  # (H, W) -> Window2d, computed once per image size

    def build(self, input_shape):
        if input_shape[-1] is None:
            self._incompatible("the channel axis must be known", input_shape)
        out = self.compute_output_shape(input_shape)
        if any(s is not None and s < 1 for s in out[1:3]):
            self._incompatible(f"the {self.kernel_size[0]}x{self.kernel_size[1]} kernel is larger "
                               "than the image (padding='valid')", input_shape)
        shape = self.kernel_size + (input_shape[-1], self.filters)
        self.kernel = self.add_weight(shape, self.kernel_initializer)
        self.bias = self.add_weight((self.filters,), self.bias_initializer) if self.use_bias else None
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        return (n, window_output(h, kh, sh, self.padding), window_output(w, kw, sw, self.padding),
                self.filters)

    def _window(self, shape):
        g = self._geometry.get(shape[1:3])
        if g is None:
            g = _args.conv_geometry(shape, self.kernel.shape, self.strides, self.padding, self.name)
            self._geometry[shape[1:3]] = g
        return g

    def forward(self, call, x, training=False):
        g = self._window(x.shape)
        call.x, buffers = x, call.buffers(x.shape)
        z = _core.conv2d_forward(x, self.kernel, self.bias, g.SH, g.SW, g.PT, g.PL, g.OH, g.OW,
                                 relu=self._fuses_relu,
                                 out=buffers("z", (len(x), g.OH, g.OW, self.filters)))
        return self._activate(call, z, self._fuses_relu, buffers)

    def backward_from_logits(self, call, dz):
        x = call.x
        g = self._window(x.shape)
        need_dx, grads = call.need_dx, call.grad_buffers()
        dx, dw, db = _core.conv2d_backward(
            dz, x, self.kernel, g.SH, g.SW, g.PT, g.PL, need_dx=need_dx,
            dx_out=call.buf("dx", x.shape) if need_dx else None,
            dw_out=grads("kernel", self.kernel.shape), db_out=grads("bias", (self.filters,)))
        call.grads = [dw, db] if self.use_bias else [dw]
        return dx

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding, "activation": self.activation, "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer)}
