"""BatchNormalization and LayerNormalization, as Keras 3."""
import numbers

import numpy as np

from .. import _core, initializers, regularizers
from ..distribute import training as distributed
from . import batchnorm_sync
from ..ops.normalization import to_trailing, trailing
from ..reference.normalization import norm_axes
from .base import Layer, shape_str

__all__ = ["BatchNormalization", "LayerNormalization"]


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _number(value, name, who, low, high=None, include_low=True):
    """A finite real number in [low, high] (or (low, ...) when not include_low): ValueError
    naming the argument otherwise, as Keras' float(value) does for a string."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    if ok:
        value = float(value)
        ok = (np.isfinite(value) and (value >= low if include_low else value > low)
              and (high is None or value <= high))
    if not ok:
        bound = (f"in [{low}, {high}]" if high is not None
                 else f"{'>=' if include_low else 'greater than'} {low}")
        raise ValueError(f"{who}: {name} must be a number {bound}, got {value!r}")
    return value


def _flag(value, name, who):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{who}: {name} must be True or False, got {value!r}")
    return bool(value)


def _check_axes(layer, shape, axes):
    """A built normalization layer called again: the same rank and the same sizes on the
    normalised axes (its weights' shape); the other sizes may change (Keras' InputSpec)."""
    built = layer.input_shape
    if len(shape) != len(built):
        layer._incompatible(f"expected ndim={len(built)}, found ndim={len(shape)}", shape)
    for a in axes:
        if shape[a] is not None and shape[a] != built[a]:
            layer._incompatible(f"expected axis {a} of input shape to have value {built[a]}",
                                shape)


def _no_constraint(value, name, who):
    if value is not None:
        raise NotImplementedError(f"{who}: {name}={value!r}: weight constraints are not "
                                  "supported yet (only None)")


class BatchNormalization(Layer):
    """Normalises each channel (the `axis`) over the batch: in training with the batch's own
    mean and variance, which also update the moving statistics (moving = moving * momentum +
    batch * (1 - momentum)); in inference, and whenever the layer is not trainable (as Keras 3),
    with the moving statistics. Weights: gamma, beta (trainable, when scale / center), then
    moving_mean, moving_variance (non-trainable: no gradient, saved with the model)."""
    input_min_ndim = 2

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, renorm=False, renorm_clipping=None, renorm_momentum=0.99,
                 synchronized=False, **kwargs):
        super().__init__(**kwargs)
        who = "BatchNormalization"
        if not _is_int(axis):
            raise ValueError(f"{who}: axis must be an integer, got {axis!r}")
        self.axis = int(axis)
        self.momentum = _number(momentum, "momentum", who, 0.0, 1.0)
        self.epsilon = _number(epsilon, "epsilon", who, 0.0, include_low=False)
        self.center = _flag(center, "center", who)
        self.scale = _flag(scale, "scale", who)
        # Used in distributed training (cnnkit.distribute); on one process the batch is the
        # whole batch, so the flag changes nothing.
        self.synchronized = _flag(synchronized, "synchronized", who)
        if renorm:
            raise NotImplementedError(f"{who}: renorm=True (batch renormalization) is not "
                                      "supported yet")
        self.renorm = False
        self.renorm_clipping = renorm_clipping
        self.renorm_momentum = _number(renorm_momentum, "renorm_momentum", who, 0.0, 1.0)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        _no_constraint(beta_constraint, "beta_constraint", who)
        _no_constraint(gamma_constraint, "gamma_constraint", who)
        self.beta_constraint = self.gamma_constraint = None
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None

    def _channel_axis(self, shape):
        ndim = len(shape)
        if not -ndim <= self.axis < ndim:
            raise ValueError(f'Layer "{self.name}" (BatchNormalization): axis={self.axis} is out '
                             f"of range for an input of rank {ndim} (shape {shape_str(shape)})")
        axis = self.axis % ndim
        if axis == 0:
            raise ValueError(f'Layer "{self.name}" (BatchNormalization): axis={self.axis} is the '
                             "batch axis; normalise a feature axis (e.g. axis=-1)")
        return axis

    def build(self, input_shape):
        axis = self._channel_axis(input_shape)
        size = input_shape[axis]
        if size is None:
            self._incompatible(f"the size of axis {self.axis} must be known", input_shape)
        self._axis = axis
        shape = (size,)
        if self.scale:
            self.gamma = self.add_weight(shape, self.gamma_initializer,
                                         regularizer=self.gamma_regularizer)
        if self.center:
            self.beta = self.add_weight(shape, self.beta_initializer,
                                        regularizer=self.beta_regularizer)
        self.moving_mean = self.add_weight(shape, self.moving_mean_initializer, trainable=False)
        self.moving_variance = self.add_weight(shape, self.moving_variance_initializer,
                                               trainable=False)
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        self._channel_axis(input_shape)
        return input_shape

    def _check_input(self, shape):
        _check_axes(self, shape, [self._axis])

    def forward(self, call, x, training=False):
        # As Keras 3: a frozen BatchNormalization (trainable=False) runs in inference mode.
        call.train = train = bool(training) and self.trainable
        call.x, buffers = x, call.buffers(x.shape)
        call.buf = buffers
        c = self.moving_mean.shape[0]
        # A ReLU fused after this call (engine/fusion.py): the kernel applies it as it stores y,
        # and the backward masks the gradient with y.
        relu = call.fused_relu
        parallel = distributed.current() if train else None
        call.parallel = parallel if parallel is not None and self._synchronizes(
            train, parallel.sync_batch_norm) else None
        if call.parallel is not None:  # the global batch's statistics, over the ranks
            y = batchnorm_sync.forward(self, call, x, buffers, relu, call.parallel)
        elif train:
            y, call.mean, _, call.invstd = _core.batchnorm_forward_train(
                x, self.gamma, self.beta, self.moving_mean, self.moving_variance, self._axis,
                self.epsilon, self.momentum, relu, out=buffers("y", x.shape),
                mean_out=buffers("mean", (c,)), var_out=buffers("var", (c,)),
                invstd_out=buffers("invstd", (c,)))
        else:
            call.mean = self.moving_mean
            y, call.invstd = _core.batchnorm_forward_infer(
                x, self.gamma, self.beta, self.moving_mean, self.moving_variance, self._axis,
                self.epsilon, relu, out=buffers("y", x.shape), invstd_out=buffers("invstd", (c,)))
        call.relu_y = y if relu else None
        return y

    def backward(self, call, dy):
        x, need_dx = call.x, call.need_dx
        c = self.moving_mean.shape[0]
        if call.parallel is not None:
            dx, dgamma, dbeta = batchnorm_sync.backward(self, call, dy, need_dx, call.parallel)
            call.grads = ([dgamma] if self.scale else []) + ([dbeta] if self.center else [])
            return dx
        grads = call.grad_buffers()
        dx, dgamma, dbeta = _core.batchnorm_backward(
            dy, x, call.mean, call.invstd, self.gamma, self._axis, call.train, call.relu_y,
            need_dx=need_dx,
            dx_out=call.buf("dx", x.shape) if need_dx else None,
            dgamma_out=grads("gamma", (c,)), dbeta_out=grads("beta", (c,)))
        call.grads = ([dgamma] if self.scale else []) + ([dbeta] if self.center else [])
        return dx

    def _synchronizes(self, training, sync_all):
        """Whether a call of this training mode uses the global batch's statistics (in
        distributed training: batchnorm_sync.py)."""
        return bool(training) and self.trainable and (self.synchronized or sync_all)

    def _sync_idle(self, parallel, phase):
        batchnorm_sync.idle(self, parallel, phase)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
                "moving_variance_initializer":
                    initializers.serialize(self.moving_variance_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "beta_constraint": None, "gamma_constraint": None,
                "synchronized": self.synchronized, "renorm": self.renorm,
                "renorm_clipping": self.renorm_clipping, "renorm_momentum": self.renorm_momentum}


class LayerNormalization(Layer):
    """Normalises over `axis` (an integer or a list) for each position of the other axes, then
    scales by gamma and shifts by beta, both shaped by those axes. rms_scaling (Keras' deprecated
    flag): x * gamma / sqrt(variance + epsilon), without beta."""

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, rms_scaling=False,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, beta_constraint=None, gamma_constraint=None, **kwargs):
        super().__init__(**kwargs)
        who = "LayerNormalization"
        if isinstance(axis, (list, tuple)):
            if not axis or not all(_is_int(a) for a in axis):
                raise ValueError(f"{who}: axis must be an integer or a non-empty list of "
                                 f"integers, got {axis!r}")
            self.axis = [int(a) for a in axis]
        elif _is_int(axis):
            self.axis = int(axis)
        else:
            raise ValueError(f"{who}: axis must be an integer or a list of integers, got "
                             f"{axis!r}")
        self.epsilon = _number(epsilon, "epsilon", who, 0.0, include_low=False)
        self.center = _flag(center, "center", who)
        self.scale = _flag(scale, "scale", who)
        self.rms_scaling = _flag(rms_scaling, "rms_scaling", who)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        _no_constraint(beta_constraint, "beta_constraint", who)
        _no_constraint(gamma_constraint, "gamma_constraint", who)
        self.beta_constraint = self.gamma_constraint = None
        self.gamma = self.beta = None

    def _axes(self, shape):
        try:
            axes = norm_axes(self.axis, len(shape), f'Layer "{self.name}" (LayerNormalization)')
        except ValueError as error:
            raise ValueError(f"{error} (shape {shape_str(shape)})") from None
        if 0 in axes:
            raise ValueError(f'Layer "{self.name}" (LayerNormalization): axis={self.axis} '
                             "includes the batch axis")
        return axes

    def build(self, input_shape):
        axes = self._axes(input_shape)
        shape = tuple(input_shape[a] for a in axes)
        if None in shape:
            self._incompatible(f"the sizes of axis {self.axis} must be known", input_shape)
        # As Keras: after build, axis is the sorted list of the axes given.
        self.axis = sorted(self.axis) if isinstance(self.axis, list) else [self.axis]
        self._norm_axes = axes
        self._trailing = trailing(axes, len(input_shape))
        if self.scale or self.rms_scaling:
            self.gamma = self.add_weight(shape, self.gamma_initializer,
                                         regularizer=self.gamma_regularizer)
        if self.center and not self.rms_scaling:
            self.beta = self.add_weight(shape, self.beta_initializer,
                                        regularizer=self.beta_regularizer)
        super().build(input_shape)

    def _flat(self, weight):
        """A weight as the kernels take it, (D,): a view, made per call (a view kept on the
        layer would part from its weight in a copy of the layer)."""
        return None if weight is None else weight.reshape(-1)

    def compute_output_shape(self, input_shape):
        self._axes(input_shape)
        return input_shape

    def _check_input(self, shape):
        _check_axes(self, shape, self._norm_axes)

    def forward(self, call, x, training=False):
        k = len(self._norm_axes)
        if not self._trailing:  # a transposed copy with the normalised axes last
            x, call.back = to_trailing(x, self._norm_axes)
        buffers = call.buffers(x.shape)
        call.x, call.buf = x, buffers
        rows = x.size // int(np.prod(x.shape[x.ndim - k:]))
        y, call.mean, call.invstd = _core.layernorm_forward(
            x, self._flat(self.gamma), self._flat(self.beta), k, self.epsilon, not self.rms_scaling,
            out=buffers("y", x.shape), mean_out=buffers("mean", (rows,)),
            invstd_out=buffers("invstd", (rows,)))
        if not self._trailing:
            y = np.ascontiguousarray(y.transpose(call.back))
        return y

    def backward(self, call, dy):
        x, need_dx = call.x, call.need_dx
        if not self._trailing:
            dy, _ = to_trailing(dy, self._norm_axes)
        grads = call.grad_buffers()
        d = x.size // len(call.mean)
        dx, dgamma, dbeta = _core.layernorm_backward(
            dy, x, call.mean, call.invstd, self._flat(self.gamma), len(self._norm_axes),
            not self.rms_scaling, need_dx=need_dx,
            dx_out=call.buf("dx", x.shape) if need_dx else None,
            dgamma_out=grads("gamma", (d,)), dbeta_out=grads("beta", (d,)))
        call.grads = (([dgamma.reshape(self.gamma.shape)] if self.gamma is not None else [])
                      + ([dbeta.reshape(self.beta.shape)] if self.beta is not None else []))
        if need_dx and not self._trailing:
            dx = np.ascontiguousarray(dx.transpose(call.back))
        return dx

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale, "rms_scaling": self.rms_scaling,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "beta_constraint": None, "gamma_constraint": None}

