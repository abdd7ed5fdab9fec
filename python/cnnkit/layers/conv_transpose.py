"""Conv2DTranspose: the transposed convolution (the input gradient of a convolution), as a layer."""
from .. import _core, initializers, regularizers
from ..reference.conv import output_padding_pair, transpose_window
from .conv import BaseConv, positive_count
from .output_size import conv_transpose_output

__all__ = ["Conv2DTranspose", "Convolution2DTranspose"]


class Conv2DTranspose(BaseConv):
    """Keras' Conv2DTranspose: kernel (kh, kw, filters, in_channels), bias (filters,). Its
    forward pass is a convolution's input gradient, its backward pass that convolution's
    forward pass and weight gradient (cpp/conv/conv2d_transpose.cpp)."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", output_padding=None,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation,
                         use_bias, bias_initializer, bias_regularizer, bias_constraint,
                         activity_regularizer=activity_regularizer, **kwargs)
        who = type(self).__name__
        self.filters = positive_count(filters, "filters", who)
        self.output_padding = output_padding_pair(output_padding, self.strides, who)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self._no_constraint(kernel_constraint, "kernel_constraint")

    @property
    def _fuses_relu(self):
        return False  # the kernel has no fused ReLU: the activation runs after it

    def _output_channels(self, c):
        return self.filters

    def _output_hw(self, h, w):
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.strides, self.dilation_rate
        oph, opw = self.output_padding or (None, None)
        return (conv_transpose_output(h, kh, sh, self.padding, oph, dh),
                conv_transpose_output(w, kw, sw, self.padding, opw, dw))

    def _make_window(self, shape):
        return transpose_window(shape, self.kernel_size, self.filters, self.strides,
                                self.padding, self.output_padding, self.dilation_rate, self.name)

    def build(self, input_shape):
        self._check_build(input_shape)
        shape = self.kernel_size + (self.filters, input_shape[-1])
        self.kernel = self.add_weight(shape, self.kernel_initializer,
                                      regularizer=self.kernel_regularizer)
        self._add_bias(self.filters)
        super().build(input_shape)

    def forward(self, call, x, training=False):
        g = self._window(x.shape)  # the convolution this one transposes: its input is our output
        call.x, buffers = x, call.buffers(x.shape)
        z = _core.conv2d_transpose_forward(x, self.kernel, self.bias, g.SH, g.SW, g.DH, g.DW,
                                           g.PT, g.PL, g.H, g.W,
                                           out=buffers("z", (len(x), g.H, g.W, self.filters)))
        return self._activate(call, z, False, buffers)

    def backward_from_logits(self, call, dz):
        x = call.x
        g = self._window(x.shape)
        need_dx, grads = call.need_dx, call.grad_buffers()
        dx, dw, db = _core.conv2d_transpose_backward(
            dz, x, self.kernel, g.SH, g.SW, g.DH, g.DW, g.PT, g.PL, need_dx=need_dx,
            dx_out=call.buf("dx", x.shape) if need_dx else None,
            dw_out=grads("kernel", self.kernel.shape), db_out=grads("bias", (self.filters,)))
        call.grads = [dw, db] if self.use_bias else [dw]
        return dx

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "output_padding": None if self.output_padding is None else list(self.output_padding),
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "kernel_constraint": None}


Convolution2DTranspose = Conv2DTranspose  # Keras' alias
