"""The convolution family's base (BaseConv) and Conv2D: 2-D convolutions over NHWC images.

BaseConv holds what Keras' convolution layers share: kernel_size, strides, padding,
data_format, dilation_rate, use_bias, the fused activation, regularizers and constraints, the
output-size arithmetic (layers/output_size.py) and the per-image-size geometry cache.
Conv2DTranspose (conv_transpose.py), DepthwiseConv2D and SeparableConv2D (depthwise_conv.py)
build on it.
"""
import numbers

from .. import _args, _core, initializers, regularizers
from ..reference.conv import conv_window
from .base import ActivationMixin, Layer
from .output_size import conv_output

__all__ = ["Conv2D", "Convolution2D"]


def positive_count(value, name, who):
    """An integer >= 1 (filters, groups, depth_multiplier), else a ValueError naming it."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{who}: {name} must be a positive integer, got {value!r}")
    return int(value)


class BaseConv(ActivationMixin, Layer):
    """The shared part of the convolution layers. Subclasses define _make_window(shape) (the
    geometry for an input shape), _output_channels(c), _output_hw(h, w) if not a plain
    convolution's, build, forward and backward_from_logits."""
    input_ndim = 4
    # Keras forbids strides > 1 together with dilation_rate > 1 in Conv and ConvTranspose.
    _strided_dilation_allowed = False

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), activation=None, use_bias=True,
                 bias_initializer="zeros", bias_regularizer=None, bias_constraint=None,
                 **kwargs):
        super().__init__(**kwargs)
        who = type(self).__name__
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{who}: cnnkit works on channels_last (NHWC) images only, got "
                             f"data_format={data_format!r}")
        self.kernel_size = _args.pair(kernel_size, "kernel_size", who)
        self.strides = _args.pair(strides, "strides", who)
        self.padding = _args.padding_mode(padding, who)
        self.dilation_rate = _args.pair(dilation_rate, "dilation_rate", who)
        if (not self._strided_dilation_allowed and max(self.strides) > 1
                and max(self.dilation_rate) > 1):
            raise ValueError(f"{who}: strides > 1 is not supported together with dilation_rate "
                             f"> 1 (as in Keras), got strides={self.strides} and "
                             f"dilation_rate={self.dilation_rate}")
        self.use_bias = bool(use_bias)
        self.bias_initializer = initializers.get(bias_initializer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self._no_constraint(bias_constraint, "bias_constraint")
        self._set_activation(activation)
        self._geometry = {}  # (H, W) -> the window, computed once per image size

    def _no_constraint(self, value, name):
        if value is not None:
            raise NotImplementedError(f"{type(self).__name__}: {name} is not supported yet "
                                      f"(got {value!r}); pass None")

    # ------------------------------------------------------------ shapes
    def _output_hw(self, h, w):
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.strides, self.dilation_rate
        return (conv_output(h, kh, sh, self.padding, dh), conv_output(w, kw, sw, self.padding, dw))

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, *self._output_hw(h, w), self._output_channels(c))

    def _check_build(self, input_shape):
        """The checks every convolution's build starts with: a known channel axis, an output
        of at least one pixel."""
        if input_shape[-1] is None:
            self._incompatible("the channel axis must be known", input_shape)
        out = self.compute_output_shape(input_shape)
        if any(s is not None and s < 1 for s in out[1:3]):
            (kh, kw), (dh, dw) = self.kernel_size, self.dilation_rate
            dilated = f" (dilated to {(kh - 1) * dh + 1}x{(kw - 1) * dw + 1})" if dh * dw > 1 else ""
            self._incompatible(f"the {kh}x{kw} kernel{dilated} is larger than the image "
                               f"(padding='{self.padding}')", input_shape)

    def _window(self, shape):
        g = self._geometry.get(shape[1:3])
        if g is None:
            g = self._geometry[shape[1:3]] = self._make_window(shape)
        return g

    def _make_window(self, shape):
        return conv_window(shape, self.kernel_size, self.strides, self.padding,
                           self.dilation_rate, self.name)

    def _add_bias(self, units):
        self.bias = (self.add_weight((units,), self.bias_initializer,
                                     regularizer=self.bias_regularizer)
                     if self.use_bias else None)

    # ------------------------------------------------------------ configs
    def get_config(self):
        return {**super().get_config(), "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding,
                "data_format": "channels_last", "dilation_rate": list(self.dilation_rate),
                "activation": self.activation, "use_bias": self.use_bias,
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "bias_constraint": None}


class Conv2D(BaseConv):
    """Keras' Conv2D: kernel (kh, kw, in_channels / groups, filters), bias (filters,)."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, lora_rank=None, lora_alpha=None,
                 **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation,
                         use_bias, bias_initializer, bias_regularizer, bias_constraint,
                         activity_regularizer=activity_regularizer, **kwargs)
        who = type(self).__name__
        self.filters = positive_count(filters, "filters", who)
        self.groups = positive_count(groups, "groups", who)
        if self.filters % self.groups:
            raise ValueError(f"{who}: groups={self.groups} must divide filters={self.filters}")
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self._no_constraint(kernel_constraint, "kernel_constraint")
        if lora_rank is not None or lora_alpha is not None:
            raise NotImplementedError(f"{who}: LoRA (lora_rank, lora_alpha) is not supported; "
                                      "pass None")

    def _output_channels(self, c):
        return self.filters

    def build(self, input_shape):
        self._check_build(input_shape)
        channels = input_shape[-1]
        if channels % self.groups:
            self._incompatible(f"groups={self.groups} must divide the {channels} input channels",
                               input_shape)
        shape = self.kernel_size + (channels // self.groups, self.filters)
        self.kernel = self.add_weight(shape, self.kernel_initializer,
                                      regularizer=self.kernel_regularizer)
        self._add_bias(self.filters)
        super().build(input_shape)

    def forward(self, call, x, training=False):
        call.x, buffers = x, call.buffers(x.shape)
        z = self._linear(x, self.kernel, self.bias, buffers, relu=self._fuses_relu)
        return self._activate(call, z, self._fuses_relu, buffers)

    def _linear(self, x, kernel, bias, buffers, relu=False, residual=None):
        """The convolution of x with this kernel and bias (or others of their shapes: inference
        folding passes a BatchNormalization's scaled copies), into buffers("z"); residual: an
        array of the output's shape added before the ReLU (a ResNet block's sum, folded)."""
        g = self._window(x.shape)
        return _core.conv2d_forward(x, kernel, bias, g.SH, g.SW, g.PT, g.PL, g.OH, g.OW,
                                    relu=relu, dh=g.DH, dw=g.DW, groups=self.groups,
                                    out=buffers("z", (len(x), g.OH, g.OW, self.filters)),
                                    residual=residual)

    def backward_from_logits(self, call, dz):
        x = call.x
        g = self._window(x.shape)
        need_dx, grads = call.need_dx, call.grad_buffers()
        dx, dw, db = _core.conv2d_backward(
            dz, x, self.kernel, g.SH, g.SW, g.PT, g.PL, need_dx=need_dx, dh=g.DH, dw=g.DW,
            groups=self.groups, dx_out=call.buf("dx", x.shape) if need_dx else None,
            dw_out=grads("kernel", self.kernel.shape), db_out=grads("bias", (self.filters,)))
        call.grads = [dw, db] if self.use_bias else [dw]
        return dx

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "groups": self.groups,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "kernel_constraint": None}


Convolution2D = Conv2D  # Keras' alias
