"""Rescaling and Normalization: fixed per-channel affine maps of the input.

Both run through one C++ kernel, y = (x - c) * a + b (ops.elementwise.affine_forward):
Rescaling is x * scale + offset, Normalization (x - mean) * (1 / s) or, inverted, x * s + mean.
The values are broadcast over the trailing block of axes they vary along (the channel axis,
usually) into per-layer arrays that are reused, so that a warm step allocates nothing.
Neither has trainable weights; the gradient dy * a flows to the input, so either may sit
anywhere in a model.
"""
import itertools
import math
import numbers

import numpy as np

from .. import _args, _core, initializers
from ..ops.elementwise import affine_layout, expand_param, NORMALIZATION_EPSILON
from .base import Buffers, Layer

__all__ = ["Rescaling", "Normalization"]


def _values(value, name, who):
    """A real number, or a nested list / array of them, all finite -> (value for the config,
    float64 array)."""
    if isinstance(value, dict) and value.get("class_name") == "__numpy__":  # Keras' config form
        value = value["config"]["value"]
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        array = np.asarray(float(value))
    else:
        try:
            array = np.asarray(value)
        except (TypeError, ValueError):
            array = None
        if array is None or array.dtype.kind not in "iuf":
            raise TypeError(f"{who}: {name} must be a number or a list/array of numbers, got "
                            f"{value!r}")
        array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{who}: {name} must hold finite numbers, got {value!r}")
    config = float(array) if array.ndim == 0 else array.tolist()
    return config, array


def _check_broadcast(layer, param_shape, input_shape, name):
    """ValueError naming the layer and argument unless the parameter broadcasts to the input
    (right-aligned, NumPy's rules) without changing its shape; an open size (None) takes only 1."""
    padded = (1,) * (len(input_shape) - len(param_shape)) + tuple(param_shape)
    if len(param_shape) > len(input_shape) or any(p != 1 and p != s
                                                  for p, s in zip(padded, input_shape)):
        raise ValueError(f'Layer "{layer.name}" ({type(layer).__name__}): {name} of shape '
                         f"{_args.shape_str(param_shape)} does not broadcast to the input shape "
                         f"{_args.shape_str(input_shape)}")


class _Affine(Layer):
    """y = (x - c) * a + b with c, a, b over a trailing block of axes (affine_layout);
    subclasses say which of c and b they use (_parts) and fill them in _fill(ndim, block, ...)."""
    _parts = ("scale", "offset")

    def _prepare(self):
        self._expanded = Buffers()

    def _param_shape(self, x_shape):
        """The shape the layer's values broadcast from, for an input of x_shape."""
        raise NotImplementedError

    def forward(self, call, x, training=False):
        outer, block = affine_layout(x.shape, self._param_shape(x.shape), fn=self.name)
        size = math.prod(block)
        parts = {part: self._expanded((part,) + block, (size,)) for part in self._parts}
        self._fill(x.ndim, block, **parts)
        call.scale, call.outer = parts["scale"], outer
        call.buf = call.buffers(x.shape)
        return _core.affine_forward(x, parts["scale"], parts.get("offset"), outer, 1,
                                    shift=parts.get("shift"), out=call.buf("y", x.shape))

    def backward(self, call, dy):
        call.grads = ()
        if not call.need_dx:
            return None
        return _core.affine_backward(dy, call.scale, call.outer, 1, out=call.buf("dx", dy.shape))


class Rescaling(_Affine):
    """y = x * scale + offset, in training and inference; scale and offset are numbers or
    per-channel lists (broadcast against the input from the last axis, as in Keras)."""

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale, self._scale = _values(scale, "scale", "Rescaling")
        self.offset, self._offset = _values(offset, "offset", "Rescaling")
        try:
            self._joint_shape = np.broadcast_shapes(self._scale.shape, self._offset.shape)
        except ValueError:
            raise ValueError(f"Rescaling: scale of shape {self._scale.shape} and offset of shape "
                             f"{self._offset.shape} do not broadcast together") from None
        self._prepare()
        self._filled = set()

    def build(self, input_shape):
        _check_broadcast(self, self._scale.shape, input_shape, "scale")
        _check_broadcast(self, self._offset.shape, input_shape, "offset")
        super().build(input_shape)

    def _param_shape(self, x_shape):
        return self._joint_shape

    def _fill(self, ndim, block, scale, offset):
        # scale and offset never change: expand them once per block shape
        if (ndim, block) not in self._filled:
            expand_param(self._scale, ndim, block, out=scale)
            expand_param(self._offset, ndim, block, out=offset)
            self._filled.add((ndim, block))

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


def _axis_tuple(axis):
    if axis is None:
        return ()
    axes = (axis,) if isinstance(axis, numbers.Integral) else axis
    try:
        axes = tuple(axes)
    except TypeError:
        axes = None
    if axes is None or not all(isinstance(a, numbers.Integral) and not isinstance(a, (bool, np.bool_))
                               for a in axes):
        raise TypeError(f"Normalization: axis must be an integer, a tuple of integers or None, "
                        f"got {axis!r}")
    if len(set(axes)) != len(axes):
        raise ValueError(f"Normalization: axis has repeated entries: {axis!r}")
    return tuple(int(a) for a in axes)


def _batch_of(batch):
    """The inputs of a batch: x of an (x, y) or (x, y, sample_weight) tuple, as Keras' adapt."""
    return batch[0] if isinstance(batch, tuple) else batch


class Normalization(_Affine):
    """(x - mean) / max(sqrt(variance), 1e-7) with one mean and variance per index of the kept
    `axis` (the last, by default), as keras.layers.Normalization; invert=True maps back.

    mean and variance are given, or learned by adapt(data) over a NumPy array or an iterable of
    batches (x, or (x, y) tuples). Adapted values are non-trainable weights (mean, variance and
    Keras' unused count), saved with the model; an unadapted layer holds mean 0 and variance 1,
    as Keras', and so passes its input through."""

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        self.axis = _axis_tuple(axis)
        self.invert = _args.flag(invert, "invert", "Normalization")
        if (mean is None) != (variance is None):
            raise ValueError("Normalization: mean and variance must be given together, got "
                             f"mean={mean!r} and variance={variance!r}")
        self.input_mean = self.input_variance = None
        self._fixed = None
        if mean is not None:
            self.input_mean, mean = _values(mean, "mean", "Normalization")
            self.input_variance, variance = _values(variance, "variance", "Normalization")
            if mean.shape != variance.shape:
                raise ValueError(f"Normalization: mean and variance must have the same shape, got "
                                 f"mean shape {mean.shape} and variance shape {variance.shape}")
            if mean.ndim > len(self.axis):
                raise ValueError(f"Normalization: the rank of mean must be at most the number of "
                                 f"axes ({len(self.axis)}), got mean shape {mean.shape} for axis "
                                 f"{self.axis}")
            if np.any(variance < 0):
                raise ValueError(f"Normalization: variance must not be negative, got {variance!r}")
            self._given = (mean, variance)
        self._prepare()

    # ------------------------------------------------------------ building
    def build(self, input_shape):
        ndim = len(input_shape)
        if any(a < -ndim or a >= ndim for a in self.axis):
            raise ValueError(f'Layer "{self.name}" (Normalization): every axis must be in '
                             f"[-{ndim}, {ndim}) for inputs of ndim={ndim}, got axis={self.axis}")
        self._keep_axis = tuple(sorted({a % ndim for a in self.axis}))
        if len(self._keep_axis) != len(self.axis):
            raise ValueError(f'Layer "{self.name}" (Normalization): axis={self.axis} names one axis '
                             f"twice for inputs of ndim={ndim}")
        for d in self._keep_axis:
            if input_shape[d] is None:
                raise ValueError(f'Layer "{self.name}" (Normalization): the kept axis {d} must '
                                 f"have a known size, got input shape {_args.shape_str(input_shape)}")
        self._reduce_axis = tuple(d for d in range(ndim) if d not in self._keep_axis)
        self._broadcast_shape = tuple(input_shape[d] if d in self._keep_axis else 1
                                      for d in range(ndim))
        mv_shape = tuple(input_shape[d] for d in self._keep_axis)
        if self.input_mean is None:
            self.adapt_mean = self.add_weight(mv_shape, initializers.Zeros(), trainable=False)
            self.adapt_variance = self.add_weight(mv_shape, initializers.Ones(), trainable=False)
            self.count = self.add_weight((), initializers.Zeros(), trainable=False)
        else:
            self._fixed = tuple(self._broadcast_given(v) for v in self._given)
        super().build(input_shape)

    def _broadcast_given(self, value):
        """A given mean or variance over the broadcast shape: a scalar everywhere, else its axes
        matched right to left with the kept axes, as Keras does."""
        shape = [1] * len(self._broadcast_shape)
        for i in range(1, value.ndim + 1):
            shape[self._keep_axis[-i]] = value.shape[-i]
        try:
            return np.broadcast_to(value.reshape(shape), self._broadcast_shape).copy()
        except ValueError:
            raise ValueError(f'Layer "{self.name}" (Normalization): mean and variance of shape '
                             f"{value.shape} do not broadcast to the kept axes {self._keep_axis} "
                             f"of sizes {tuple(self._broadcast_shape[d] for d in self._keep_axis)}"
                             ) from None

    # ------------------------------------------------------------ values
    @property
    def mean(self):
        """The mean in the broadcast shape (1 on the reduced axes); None before build."""
        if not self.built:
            return None
        return self._fixed[0] if self._fixed else self.adapt_mean.reshape(self._broadcast_shape)

    @property
    def variance(self):
        if not self.built:
            return None
        return self._fixed[1] if self._fixed else self.adapt_variance.reshape(self._broadcast_shape)

    def _param_shape(self, x_shape):
        for d in self._keep_axis:
            if x_shape[d] != self._broadcast_shape[d]:
                self._incompatible(f"axis {d} must have size {self._broadcast_shape[d]}, found "
                                   f"{x_shape[d]}", x_shape)
        return self._broadcast_shape

    @property
    def _parts(self):
        # (x - mean) * (1 / s), or x * s + mean: see ops.elementwise.normalization_affine
        return ("scale", "offset") if self.invert else ("shift", "scale")

    def _fill(self, ndim, block, scale, shift=None, offset=None):
        # Recomputed every call, in place: adapt, set_weights or a loaded model may have changed
        # the weights. Only O(values per sample) work, in float64 like Keras' formula.
        s = self._expanded("s", self._broadcast_shape, np.float64)
        np.sqrt(self.variance, out=s)
        np.maximum(s, NORMALIZATION_EPSILON, out=s)
        if self.invert:
            expand_param(self.mean, ndim, block, out=offset)
        else:
            np.divide(1.0, s, out=s)
            expand_param(self.mean, ndim, block, out=shift)
        expand_param(s, ndim, block, out=scale)

    # ------------------------------------------------------------ adapt
    def adapt(self, data):
        """Sets mean and variance to those of `data` over the reduced axes: a NumPy array, or an
        iterable of batches (arrays, or (x, y) / (x, y, sample_weight) tuples), combined
        exactly (Chan's pairwise update, in float64)."""
        if self.input_mean is not None:
            raise ValueError(f'Layer "{self.name}" (Normalization): it was given mean and '
                             "variance; adapt() would have nowhere to keep its statistics")
        if isinstance(data, np.ndarray):
            batches = iter([data])
        elif hasattr(data, "__iter__") and not isinstance(data, (str, bytes, dict)):
            batches = iter(data)
        else:
            raise TypeError(f"Normalization.adapt: data must be a NumPy array or an iterable of "
                            f"batches, got {type(data).__name__}")
        first = next(batches, None)
        if first is None:
            raise ValueError("Normalization.adapt: data holds no batch (an empty iterable)")
        with self._exclusive():
            count, mean, var = 0, None, None
            for batch in itertools.chain([first], batches):
                x = self._adapt_batch(_batch_of(batch))
                n = x.size // max(1, math.prod(self.adapt_mean.shape))
                if n == 0:
                    continue
                batch_mean = x.mean(axis=self._reduce_axis)
                batch_var = x.var(axis=self._reduce_axis)
                if mean is None:
                    count, mean, var = n, batch_mean, batch_var
                    continue
                total = count + n
                delta = batch_mean - mean
                mean = mean + delta * (n / total)
                var = (var * count + batch_var * n + delta ** 2 * (count * n / total)) / total
                count = total
            if mean is None:
                raise ValueError("Normalization.adapt: data holds no values")
            np.copyto(self.adapt_mean, mean.reshape(self.adapt_mean.shape))
            np.copyto(self.adapt_variance, var.reshape(self.adapt_variance.shape))

    def _adapt_batch(self, x):
        """One batch as a float64 array, the layer built from the first one."""
        array = np.asarray(x)
        if array.dtype.kind not in "iuf":
            raise TypeError(f"Normalization.adapt: batches must be numeric arrays, got "
                            f"{type(x).__name__} of dtype {array.dtype}")
        if not self.built:
            # Only the kept axes are fixed by the data: the others stay open (None).
            ndim = array.ndim
            keep = {a % ndim for a in self.axis if -ndim <= a < ndim}
            shape = tuple(s if d in keep else None for d, s in enumerate(array.shape))
            if len(keep) != len(self.axis):
                shape = array.shape  # build() names the axis out of range
            self._build_checked(shape)
        if array.ndim != len(self._broadcast_shape) or any(
                array.shape[d] != self._broadcast_shape[d] for d in self._keep_axis):
            raise ValueError(f'Layer "{self.name}" (Normalization) was built for inputs of shape '
                             f"{_args.shape_str(self.input_shape)}, but adapt() got a batch of "
                             f"shape {array.shape}")
        return array.astype(np.float64, copy=False)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "invert": self.invert,
                "mean": self.input_mean, "variance": self.input_variance}
