"""DepthwiseConv2D and SeparableConv2D: per-channel convolutions (and a 1x1 mix after them)."""
from .. import _core, initializers, regularizers
from .conv import BaseConv, positive_count

__all__ = ["DepthwiseConv2D", "SeparableConv2D", "SeparableConvolution2D"]


class DepthwiseConv2D(BaseConv):
    """Keras' DepthwiseConv2D: each input channel c convolved with depth_multiplier kernels,
    output channel c * depth_multiplier + m; kernel (kh, kw, channels, depth_multiplier), bias
    (channels * depth_multiplier,). Direct C++ kernels vectorised over channels
    (cpp/conv/depthwise.cpp), ReLU fused."""
    _strided_dilation_allowed = True  # Keras allows it here

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation,
                         use_bias, bias_initializer, bias_regularizer, bias_constraint,
                         activity_regularizer=activity_regularizer, **kwargs)
        self.depth_multiplier = positive_count(depth_multiplier, "depth_multiplier",
                                               type(self).__name__)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer)
        self._no_constraint(depthwise_constraint, "depthwise_constraint")

    def _output_channels(self, c):
        return None if c is None else c * self.depth_multiplier

    def build(self, input_shape):
        self._check_build(input_shape)
        shape = self.kernel_size + (input_shape[-1], self.depth_multiplier)
        self.kernel = self.add_weight(shape, self.depthwise_initializer,
                                      regularizer=self.depthwise_regularizer)
        self._add_bias(input_shape[-1] * self.depth_multiplier)
        super().build(input_shape)

    def forward(self, call, x, training=False):
        call.x, buffers = x, call.buffers(x.shape)
        z = self._linear(x, self.kernel, self.bias, buffers, relu=self._fuses_relu)
        return self._activate(call, z, self._fuses_relu, buffers)

    def _linear(self, x, kernel, bias, buffers, relu=False):
        """The depthwise convolution of x with this kernel and bias (or others of their shapes:
        inference folding passes a BatchNormalization's scaled copies), into buffers("z")."""
        g = self._window(x.shape)
        oc = x.shape[3] * self.depth_multiplier
        return _core.depthwise_conv2d_forward(x, kernel, bias, g.SH, g.SW, g.DH, g.DW,
                                              g.PT, g.PL, g.OH, g.OW, relu=relu,
                                              out=buffers("z", (len(x), g.OH, g.OW, oc)))

    def backward_from_logits(self, call, dz):
        x = call.x
        g = self._window(x.shape)
        need_dx, grads = call.need_dx, call.grad_buffers()
        dx, dw, db = _core.depthwise_conv2d_backward(
            dz, x, self.kernel, g.SH, g.SW, g.DH, g.DW, g.PT, g.PL, need_dx=need_dx,
            dx_out=call.buf("dx", x.shape) if need_dx else None,
            dw_out=grads("kernel", self.kernel.shape), db_out=grads("bias", (dz.shape[3],)))
        call.grads = [dw, db] if self.use_bias else [dw]
        return dx

    def get_config(self):
        return {**super().get_config(), "depth_multiplier": self.depth_multiplier,
                "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
                "depthwise_regularizer": regularizers.serialize(self.depthwise_regularizer),
                "depthwise_constraint": None}


class SeparableConv2D(BaseConv):
    """Keras' SeparableConv2D: a depthwise convolution (depthwise_kernel (kh, kw, channels,
    depth_multiplier), no bias), then a 1x1 convolution (pointwise_kernel (1, 1, channels *
    depth_multiplier, filters)) with the bias (filters,) and the activation (ReLU fused)."""
    _strided_dilation_allowed = True

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, pointwise_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, depthwise_constraint=None,
                 pointwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation,
                         use_bias, bias_initializer, bias_regularizer, bias_constraint,
                         activity_regularizer=activity_regularizer, **kwargs)
        who = type(self).__name__
        self.filters = positive_count(filters, "filters", who)
        self.depth_multiplier = positive_count(depth_multiplier, "depth_multiplier", who)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.pointwise_initializer = initializers.get(pointwise_initializer)
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer)
        self.pointwise_regularizer = regularizers.get(pointwise_regularizer)
        self._no_constraint(depthwise_constraint, "depthwise_constraint")
        self._no_constraint(pointwise_constraint, "pointwise_constraint")

    def _output_channels(self, c):
        return self.filters

    def build(self, input_shape):
        self._check_build(input_shape)
        mid = input_shape[-1] * self.depth_multiplier
        self.depthwise_kernel = self.add_weight(
            self.kernel_size + (input_shape[-1], self.depth_multiplier),
            self.depthwise_initializer, regularizer=self.depthwise_regularizer)
        self.pointwise_kernel = self.add_weight((1, 1, mid, self.filters),
                                                self.pointwise_initializer,
                                                regularizer=self.pointwise_regularizer)
        self._add_bias(self.filters)
        super().build(input_shape)

    def forward(self, call, x, training=False):
        g = self._window(x.shape)
        call.x, buffers = x, call.buffers(x.shape)
        mid = x.shape[3] * self.depth_multiplier
        call.mid = _core.depthwise_conv2d_forward(
            x, self.depthwise_kernel, None, g.SH, g.SW, g.DH, g.DW, g.PT, g.PL, g.OH, g.OW,
            out=buffers("mid", (len(x), g.OH, g.OW, mid)))
        z = _core.conv2d_forward(call.mid, self.pointwise_kernel, self.bias, 1, 1, 0, 0, g.OH,
                                 g.OW, relu=self._fuses_relu,
                                 out=buffers("z", (len(x), g.OH, g.OW, self.filters)))
        return self._activate(call, z, self._fuses_relu, buffers)

    def backward_from_logits(self, call, dz):
        x, mid = call.x, call.mid
        g = self._window(x.shape)
        need_dx, grads = call.need_dx, call.grad_buffers()
        dmid, dpw, db = _core.conv2d_backward(
            dz, mid, self.pointwise_kernel, 1, 1, 0, 0, dx_out=call.buf("dmid", mid.shape),
            dw_out=grads("pointwise_kernel", self.pointwise_kernel.shape),
            db_out=grads("bias", (self.filters,)))
        dx, ddw, _ = _core.depthwise_conv2d_backward(
            dmid, x, self.depthwise_kernel, g.SH, g.SW, g.DH, g.DW, g.PT, g.PL, need_dx=need_dx,
            dx_out=call.buf("dx", x.shape) if need_dx else None,
            dw_out=grads("depthwise_kernel", self.depthwise_kernel.shape),
            db_out=grads("depthwise_bias", (mid.shape[3],)))
        call.grads = [ddw, dpw, db] if self.use_bias else [ddw, dpw]
        return dx

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "depth_multiplier": self.depth_multiplier,
                "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
                "pointwise_initializer": initializers.serialize(self.pointwise_initializer),
                "depthwise_regularizer": regularizers.serialize(self.depthwise_regularizer),
                "pointwise_regularizer": regularizers.serialize(self.pointwise_regularizer),
                "depthwise_constraint": None, "pointwise_constraint": None}


SeparableConvolution2D = SeparableConv2D  # Keras' alias
