"""Input, Dense and Activation."""
import numpy as np

from .. import _core, initializers, regularizers
from .base import ActivationMixin, Layer

__all__ = ["InputLayer", "Input", "Dense", "Activation"]


class InputLayer(Layer):
    """Declares a model's input shape; passes its input through."""

    def __init__(self, shape=None, batch_size=None, name=None, batch_shape=None, **kwargs):
        if batch_shape is None and shape is None and "batch_input_shape" not in kwargs:
            raise ValueError("InputLayer needs shape= (without the batch axis) or batch_shape=")
        if batch_shape is None and shape is not None:
            batch_shape = (batch_size,) + tuple(shape)
        kwargs.setdefault("batch_input_shape", batch_shape)
        super().__init__(name=name, **kwargs)

    def forward(self, call, x, training=False):
        return x

    def backward(self, call, dy):
        return dy

    def get_config(self):
        config = {"name": self.name, "batch_shape": list(self._batch_input_shape)}
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        shape = config.pop("batch_shape", None) or config.pop("batch_input_shape", None)
        config.pop("trainable", None)
        return cls(batch_shape=tuple(shape), **config)


def Input(shape=None, batch_size=None, name=None, batch_shape=None):
    """Keras' Input(shape): a symbolic tensor (engine/symbolic.py) to call layers on, the start
    of a functional model; Sequential([Input(shape), ...]) takes it as the input shape."""
    from ..engine.symbolic import input_tensor
    return input_tensor(InputLayer(shape=shape, batch_size=batch_size, name=name,
                                   batch_shape=batch_shape))


class Dense(ActivationMixin, Layer):
    """y = activation(x @ kernel + bias) on the last axis; kernel (in, units)."""
    input_min_ndim = 2

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units < 1:
            raise ValueError(f"Dense: units must be a positive integer, got {units!r}")
        for name, value in (("kernel_constraint", kernel_constraint),
                            ("bias_constraint", bias_constraint)):
            if value is not None:
                raise NotImplementedError(f"Dense: {name} is not supported yet (got {value!r})")
        self.units, self.use_bias = int(units), bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self._set_activation(activation)

    def build(self, input_shape):
        if input_shape[-1] is None:
            self._incompatible("the last axis (the features) must be known", input_shape)
        self.kernel = self.add_weight((input_shape[-1], self.units), self.kernel_initializer,
                                      regularizer=self.kernel_regularizer)
        self.bias = self.add_weight((self.units,), self.bias_initializer,
                                    regularizer=self.bias_regularizer) if self.use_bias else None
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def forward(self, call, x, training=False):
        # More than 2-D: the kernel applies to the last axis (a reshape, no copy).
        call.x = x.reshape(-1, x.shape[-1])
        buffers = call.buffers(x.shape)
        z = self._linear(x, self.kernel, self.bias, buffers, relu=self._fuses_relu)
        return self._activate(call, z, self._fuses_relu, buffers)

    def _linear(self, x, kernel, bias, buffers, relu=False):
        """x @ kernel + bias over the last axis (or another kernel and bias of these shapes:
        inference folding passes a BatchNormalization's scaled copies), into buffers("z")."""
        x2 = x.reshape(-1, x.shape[-1])
        z = _core.dense_forward(x2, kernel, bias, relu=relu, out=buffers("z", (len(x2), self.units)))
        return z.reshape(x.shape[:-1] + (self.units,))

    def backward_from_logits(self, call, dz):
        need_dx, grads = call.need_dx, call.grad_buffers()
        dx, dw, db = _core.dense_backward(
            dz.reshape(-1, self.units), call.x, self.kernel, need_dx=need_dx,
            dx_out=call.buf("dx", call.x.shape) if need_dx else None,
            dw_out=grads("kernel", self.kernel.shape), db_out=grads("bias", (self.units,)))
        call.grads = [dw, db] if self.use_bias else [dw]
        return None if dx is None else dx.reshape(dz.shape[:-1] + (dx.shape[-1],))

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation,
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "kernel_constraint": None, "bias_constraint": None}


class Activation(ActivationMixin, Layer):
    """An activation as a layer of its own: Activation('gelu'), or with a function of
    cnnkit.activations or keras.activations. Its backward pass reads the input or the output,
    whichever the activation's derivative needs (ActivationMixin)."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self._set_activation(activation)

    def forward(self, call, x, training=False):
        return self._activate(call, x, buffers=call.buffers(x.shape))

    def backward(self, call, dy):
        if not call.need_dx:  # nothing upstream reads the gradient, and there are no weights
            return None
        return super().backward(call, dy)

    def backward_from_logits(self, call, dz):
        return dz

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}

