"""The activation layers: ReLU, LeakyReLU, PReLU, ELU, Softmax (Keras 3's names, arguments,
defaults and configs), over the C++ activation kernels."""
import functools
import numbers
import warnings

import numpy as np

from .. import _core, initializers, regularizers
from ..activations import Kernels
from .base import Layer

__all__ = ["ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax"]


def _number(value, name, layer, allow_none=False, minimum=None):
    """A real number (or None when allowed), at least `minimum`; errors name the layer and the
    argument, as Keras' do."""
    if value is None and allow_none:
        return None
    if value is None or not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{layer}: {name} must be a number{' or None' if allow_none else ''}, "
                         f"got {name}={value!r}")
    if not np.isfinite(value):
        raise ValueError(f"{layer}: {name} must be finite, got {name}={value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{layer}: {name} cannot be a negative value, got {name}={value!r}")
    return value


class _ElementwiseActivation(Layer):
    """An activation applied value by value: forward keeps what its backward kernel needs
    (the input or the output, `Kernels.saves_input`); outputs and gradients go into the call's
    reused buffers."""

    def _kernels(self):
        raise NotImplementedError

    def forward(self, call, x, training=False):
        kernels = self._kernels()
        call.buf = buffers = call.buffers(x.shape)
        y = kernels.forward(x, out=buffers("y", x.shape))
        call.saved = x if kernels.saves_input else y
        return y

    def backward(self, call, dy):
        call.grads = []
        if not call.need_dx:
            return None
        return self._kernels().backward(dy, call.saved, out=call.buf("dx", dy.shape))


class ReLU(_ElementwiseActivation):
    """Keras' ReLU(max_value=None, negative_slope=0.0, threshold=0.0):
    max_value if x >= max_value, x if threshold <= x < max_value,
    negative_slope * (x - threshold) otherwise."""

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        self.max_value = _number(max_value, "max_value", "ReLU", allow_none=True, minimum=0.0)
        self.negative_slope = _number(negative_slope, "negative_slope", "ReLU", minimum=0.0)
        self.threshold = _number(threshold, "threshold", "ReLU", minimum=0.0)
        if self.negative_slope == 0 and self.max_value is None and self.threshold == 0:
            # Plain relu: the kernels that take the output, as in Dense and Conv2D.
            self._act = Kernels(_core.relu_forward, _core.relu_backward, False)
        else:
            params = dict(negative_slope=float(self.negative_slope),
                          max_value=None if self.max_value is None else float(self.max_value),
                          threshold=float(self.threshold))
            self._act = Kernels(functools.partial(_core.relu_general_forward, **params),
                                functools.partial(_core.relu_general_backward, **params), True)

    def _kernels(self):
        return self._act

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value,
                "negative_slope": self.negative_slope, "threshold": self.threshold}


class LeakyReLU(_ElementwiseActivation):
    """Keras' LeakyReLU(negative_slope=0.3): x if x >= 0 else negative_slope * x."""

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:
            negative_slope = kwargs.pop("alpha")
            warnings.warn("Argument `alpha` is deprecated. Use `negative_slope` instead.")
        super().__init__(**kwargs)
        self.negative_slope = _number(negative_slope, "negative_slope", "LeakyReLU", minimum=0.0)
        slope = float(self.negative_slope)
        self._act = Kernels(functools.partial(_core.relu_general_forward, negative_slope=slope),
                            functools.partial(_core.relu_general_backward, negative_slope=slope),
                            True)

    def _kernels(self):
        return self._act

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


class ELU(_ElementwiseActivation):
    """Keras' ELU(alpha=1.0): x if x > 0 else alpha * (exp(x) - 1)."""

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = _number(alpha, "alpha", "ELU")
        a = float(self.alpha)
        self._act = Kernels(functools.partial(_core.elu_forward, alpha=a),
                            functools.partial(_core.elu_backward, alpha=a), True)

    def _kernels(self):
        return self._act

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


class PReLU(Layer):
    """Keras' PReLU: x if x >= 0 else alpha * x, with a trainable alpha shaped like the input
    without its batch axis, of size 1 along `shared_axes` (1-based, the batch axis being 0)."""

    def __init__(self, alpha_initializer="Zeros", alpha_regularizer=None, alpha_constraint=None,
                 shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        if alpha_constraint is not None:
            raise NotImplementedError("PReLU: alpha_constraint is not supported by cnnkit yet "
                                      "(weight constraints are not implemented)")
        self.alpha_constraint = None
        if shared_axes is None:
            self.shared_axes = None
        else:
            axes = list(shared_axes) if isinstance(shared_axes, (list, tuple)) else [shared_axes]
            for axis in axes:
                if not isinstance(axis, numbers.Integral) or isinstance(axis, (bool, np.bool_)):
                    raise ValueError(f"PReLU: shared_axes must hold integers, got "
                                     f"shared_axes={shared_axes!r}")
            self.shared_axes = [int(a) for a in axes]

    def build(self, input_shape):
        ndim = len(input_shape)
        if ndim < 2:
            self._incompatible("expected min_ndim=2 (a batch axis and at least one more)",
                               input_shape)
        param_shape = list(input_shape[1:])
        for axis in self.shared_axes or []:
            if not 1 <= axis < ndim:
                raise ValueError(f"PReLU: shared_axes holds {axis}, out of range for an input of "
                                 f"rank {ndim} (axes 1 to {ndim - 1}; 0 is the batch axis)")
            param_shape[axis - 1] = 1
        if any(s is None for s in param_shape):
            self._incompatible("every axis not in shared_axes must have a known size",
                               input_shape)
        self.alpha = self.add_weight(tuple(param_shape), self.alpha_initializer,
                                     regularizer=self.alpha_regularizer)
        super().build(input_shape)

    def _check_input(self, shape):
        # Shared axes may change size from call to call (Keras' input spec fixes only the
        # others), so the base class's check of every size does not apply.
        self._check_rank(shape)
        expected = self.alpha.shape
        if len(shape) != len(expected) + 1 or any(
                a != 1 and s != a for s, a in zip(shape[1:], expected)):
            self._incompatible(f"alpha has shape {expected}", shape)

    def forward(self, call, x, training=False):
        call.x, call.buf = x, call.buffers(x.shape)
        return _core.prelu_forward(x, self.alpha, out=call.buf("y", x.shape))

    def backward(self, call, dy):
        need_dx = call.need_dx
        dx, dalpha = _core.prelu_backward(
            dy, call.x, self.alpha, need_dx=need_dx,
            dx_out=call.buf("dx", dy.shape) if need_dx else None,
            dalpha_out=call.grad_buffers()("alpha", self.alpha.shape))
        call.grads = [dalpha]
        return dx

    def get_config(self):
        return {**super().get_config(),
                "alpha_initializer": initializers.serialize(self.alpha_initializer),
                "alpha_regularizer": regularizers.serialize(self.alpha_regularizer),
                "alpha_constraint": None, "shared_axes": self.shared_axes}


class Softmax(Layer):
    """Keras' Softmax(axis=-1): softmax over `axis` (an integer, or a list of one). The
    optional mask of Keras' call is not supported."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        axes = axis if isinstance(axis, (list, tuple)) else [axis]
        if len(axes) != 1:
            raise NotImplementedError(f"Softmax: cnnkit normalizes over one axis, got axis={axis!r}")
        if not isinstance(axes[0], numbers.Integral) or isinstance(axes[0], (bool, np.bool_)):
            raise ValueError(f"Softmax: axis must be an integer, got axis={axis!r}")
        self.axis = axis
        self._axis = int(axes[0])

    def __call__(self, inputs, training=None, mask=None, **kwargs):
        if mask is not None:
            raise NotImplementedError("Softmax: the mask argument is not supported by cnnkit")
        return super().__call__(inputs, training=training, **kwargs)

    def build(self, input_shape):
        ndim = len(input_shape)
        if not -ndim <= self._axis < ndim:
            raise ValueError(f'Softmax "{self.name}": axis={self.axis} is out of range for an '
                             f"input of rank {ndim}")
        super().build(input_shape)

    @property
    def output_activation(self):
        """"softmax" over the last axis: a model may then fuse it with its cross-entropy."""
        if self.input_shape is not None and self._axis % len(self.input_shape) == len(self.input_shape) - 1:
            return "softmax"
        return None

    def forward(self, call, x, training=False):
        call.logits, call.buf = x, call.buffers(x.shape)
        call.y = _core.softmax_forward(x, self._axis, out=call.buf("y", x.shape))
        return call.y

    def backward_from_logits(self, call, dz):
        return dz

    def backward(self, call, dy):
        call.grads = []
        if not call.need_dx:
            return None
        return _core.softmax_backward(dy, call.y, self._axis, out=call.buf("dx", dy.shape))

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
