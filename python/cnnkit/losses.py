"""Losses by name or object, as keras.losses (Keras 3): per-sample values, weighted by
sample_weight, reduced as the loss's `reduction` says.

A loss object is called as Keras calls it, loss(y_true, y_pred, sample_weight=None) -> the
reduced value (a float), or the weighted value of every sample (every axis but the last) for
reduction='none'. Models use value_and_grad(y_true, y_pred, out=None, sample_weight=None) ->
(loss, dloss/dy_pred) on arrays they have already converted (prepare_targets), the gradient
written into `out` when given. When a model ends in softmax and the loss is a (sparse,
focal) categorical cross-entropy, the model calls from_logits_value_and_grad on the values
before the softmax instead (as Keras does through _keras_logits): one fused, stable kernel whose
gradient for plain cross-entropy is exactly w (p - y_smoothed) / N.

Reductions (Keras 3's loss.py): 'sum_over_batch_size' (the default) and 'mean' divide the
weighted sum by the number of values (rows), whatever the weights; 'mean_with_sample_weight'
by the sum of the weights; 'sum' not at all; 'none' / None return the weighted values. One
weight per sample covers every value of an image-shaped output. Every loss runs in C++
(cnnkit._core.elementwise_loss and categorical_loss; cnnkit.reference has the NumPy twins).
"""
import math
import numbers

import numpy as np

from . import _core
from ._args import c_array

__all__ = ["Loss", "CategoricalCrossentropy", "SparseCategoricalCrossentropy",
           "BinaryCrossentropy", "CategoricalFocalCrossentropy", "MeanSquaredError",
           "MeanAbsoluteError", "Huber", "KLDivergence", "categorical_crossentropy",
           "sparse_categorical_crossentropy", "binary_crossentropy",
           "categorical_focal_crossentropy", "mean_squared_error", "mean_absolute_error", "huber",
           "kl_divergence", "mse", "MSE", "mae", "MAE", "kld", "KLD", "get", "serialize",
           "deserialize"]

EPSILON = 1e-7  # Keras' backend epsilon: probabilities are clipped to [eps, 1 - eps]

# Keras 3's reductions, and the number the kernels know each by.
REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)
_MODE = {"sum": 0, "sum_over_batch_size": 1, "mean": 1, "mean_with_sample_weight": 2,
         "none": 3, None: 3}
TRAINABLE_REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight")

# the kinds of _core.elementwise_loss
_MSE, _MAE, _HUBER, _BCE, _BCE_LOGITS, _KLD = range(6)


def _number(value, name, owner, low=-math.inf, high=math.inf):
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {name} must be a number, got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{owner}: {name} must be in [{low}, {high}], got {value!r}")
    return value


def sample_weight_array(sample_weight, n, owner="loss"):
    """sample_weight as a float32 (n,) array: one weight per sample, as Keras takes them; a
    float32 (n,) C-contiguous array is used as it is (no copy)."""
    if sample_weight is None:
        return None
    if (isinstance(sample_weight, np.ndarray) and sample_weight.dtype == np.float32
            and sample_weight.shape == (n,) and sample_weight.flags.c_contiguous):
        return sample_weight
    try:
        w = np.asarray(sample_weight)
    except (ValueError, TypeError):
        w = None
    if w is None or w.dtype.kind not in "fiub":
        raise TypeError(f"{owner}: sample_weight must be a numeric array or number, got "
                        f"{type(sample_weight).__name__}")
    if w.ndim == 0:
        return np.full(n, w, np.float32)
    if w.shape not in ((n,), (n, 1)):
        raise ValueError(f"{owner}: sample_weight must hold one weight per sample, shape ({n},), "
                         f"got shape {w.shape}")
    return c_array(w.reshape(n), np.float32)


def _rows(a):
    """(values, last axis) as 2-D rows; a 1-D array is one value per row."""
    return a.reshape(-1, a.shape[-1]) if a.ndim > 1 else a.reshape(-1, 1)


class Loss:
    sparse = False         # labels are class indices
    fuses_softmax = False  # may be computed from the logits of a final softmax

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        self.name = name or _NAMES.get(type(self)) or _snake(type(self).__name__)
        if reduction not in REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: invalid value for argument `reduction`; "
                             f"expected one of {REDUCTIONS}, got reduction={reduction!r}")
        self.reduction = reduction
        if dtype not in (None, "float32", np.float32):
            raise ValueError(f"{type(self).__name__}: cnnkit computes losses in float32, got "
                             f"dtype={dtype!r}")

    @property
    def dtype(self):
        return "float32"

    def __call__(self, y_true, y_pred, sample_weight=None):
        y_pred = np.asarray(y_pred)
        if y_pred.dtype.kind not in "fiub":
            raise TypeError(f"{self.name}: y_pred must be numeric, got dtype {y_pred.dtype}")
        y_pred = c_array(y_pred, np.float32)
        if y_pred.ndim == 0 or y_pred.size == 0:
            raise ValueError(f"{self.name}: y_pred is empty or a scalar (shape {y_pred.shape})")
        y_true = self.prepare_targets(y_true, y_pred.shape)
        weights = sample_weight_array(sample_weight, len(y_pred), self.name)
        loss, _, values = self._compute(y_true, y_pred, weights, _MODE[self.reduction],
                                        need_grad=False)
        if values is not None:
            return values.reshape(y_pred.shape[:-1] if y_pred.ndim > 1 else y_pred.shape)
        return float(loss)

    def value_and_grad(self, y_true, y_pred, out=None, sample_weight=None):
        """(loss, dloss/dy_pred) on arrays already converted by prepare_targets; sample_weight
        a float32 (N,) array or None."""
        mode = self._trainable_mode()
        weights = sample_weight_array(sample_weight, len(y_pred), self.name)
        loss, grad, _ = self._compute(y_true, y_pred, weights, mode, out=out)
        return loss, grad

    def call(self, y_true, y_pred):
        """A subclass's loss of each sample (Keras' Loss.call), in NumPy."""
        raise NotImplementedError(f"{type(self).__name__}: implement call(y_true, y_pred) (the "
                                  "value of each sample), as for a Keras Loss")

    def _compute(self, y_true, y_pred, weights, mode, need_grad=True, out=None):
        # A subclass written as for Keras (call() only): its values, weighted and reduced as
        # Keras reduces them; cnnkit cannot differentiate NumPy code, so it cannot train with it.
        if need_grad:
            raise NotImplementedError(
                f"{self.name}: cnnkit trains with losses that give their own gradient; a Loss "
                "subclass must implement value_and_grad(y_true, y_pred, out=None, "
                "sample_weight=None) -> (loss, dloss/dy_pred)")
        values = np.asarray(self.call(y_true, y_pred), np.float64)
        rows = values.reshape(len(y_pred), -1) if values.ndim else values.reshape(1, 1)
        w = np.ones(len(rows)) if weights is None else weights.astype(np.float64)
        weighted = rows * w[:, None]
        total = float(weighted.sum())
        if mode == 1:
            total = total / rows.size if rows.size else 0.0
        elif mode == 2:
            divisor = float(w.sum()) * rows.shape[1]
            total = total / divisor if divisor else 0.0
        return total, None, (weighted.reshape(values.shape).astype(np.float32)
                             if mode == 3 else None)

    def _trainable_mode(self):
        if self.reduction not in TRAINABLE_REDUCTIONS:
            raise ValueError(f"{self.name}: reduction={self.reduction!r} gives a value per "
                             "sample, not one loss to train with; use one of "
                             f"{TRAINABLE_REDUCTIONS}")
        return _MODE[self.reduction]

    def prepare_targets(self, y_true, output_shape):
        """y_true converted once (float32 targets, or int64 class indices for sparse losses)
        and checked against the model's output shape (batch axis excluded)."""
        y_true = np.asarray(y_true)
        if y_true.dtype.kind not in "fiub":
            raise TypeError(f"{self.name}: y_true must be numeric, got dtype {y_true.dtype}")
        y_true = c_array(y_true, np.float32)
        if y_true.ndim == len(output_shape) - 1 and output_shape[-1] == 1:
            y_true = y_true.reshape(y_true.shape + (1,))  # (N,) for a (None, 1) output, as Keras
        if tuple(y_true.shape[1:]) != tuple(output_shape[1:]):
            hint = ""
            if y_true.ndim == 1 or y_true.shape[1:] == (1,):
                hint = (" (integer labels: convert them with cnnkit.utils.to_categorical or use "
                        "loss='sparse_categorical_crossentropy')")
            raise ValueError(f"{self.name}: y_true has shape {y_true.shape} but the model's output "
                             f"is (None, {', '.join(str(s) for s in output_shape[1:])}){hint}")
        return y_true

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _snake(name):
    return "".join("_" + c.lower() if c.isupper() and i else c.lower()
                   for i, c in enumerate(name))


def _only_last_axis(axis, owner):
    if axis != -1:
        raise NotImplementedError(f"{owner}: cnnkit computes losses over the last axis only "
                                  f"(axis=-1), got axis={axis!r}")
    return -1


class _Elementwise(Loss):
    """A loss whose value per sample is the mean over the last axis of a function of each
    (prediction, target) pair (KLDivergence: the sum)."""
    kind = _MSE
    param = 0.0
    label_smoothing = 0.0

    def _compute(self, y_true, y_pred, weights, mode, need_grad=True, out=None):
        loss, grad, values = _core.elementwise_loss(
            _rows(y_true), _rows(y_pred), self.kind, self.param, self.label_smoothing, weights,
            mode, need_grad, out=None if out is None else _rows(out))
        if grad is not None:
            grad = out if out is not None else grad.reshape(y_pred.shape)  # the caller's buffer
        return loss, grad, values


class MeanSquaredError(_Elementwise):
    """mean((y_pred - y_true)**2) over the last axis."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error", dtype=None):
        super().__init__(name, reduction, dtype)


class MeanAbsoluteError(_Elementwise):
    """mean(|y_pred - y_true|) over the last axis."""
    kind = _MAE

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error", dtype=None):
        super().__init__(name, reduction, dtype)


class Huber(_Elementwise):
    """Quadratic for |error| <= delta, linear beyond, averaged over the last axis."""
    kind = _HUBER

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss",
                 dtype=None):
        super().__init__(name, reduction, dtype)
        self.delta = self.param = _number(delta, "delta", "Huber", low=0.0)

    def get_config(self):
        # Keras 3 leaves delta out of the config; cnnkit keeps it so that from_config
        # round-trips.
        return {**super().get_config(), "delta": self.delta}


class KLDivergence(_Elementwise):
    """sum(y_true log(y_true / y_pred)) over the last axis, both clipped to [eps, 1]."""
    kind = _KLD
    param = EPSILON

    def __init__(self, reduction="sum_over_batch_size", name="kl_divergence", dtype=None):
        super().__init__(name, reduction, dtype)


class BinaryCrossentropy(_Elementwise):
    """0/1 (or soft) targets and probabilities (or logits) of the same shape; probabilities
    clipped as Keras clips them; targets smoothed towards 0.5 by label_smoothing."""
    kind = _BCE
    param = EPSILON

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="binary_crossentropy", dtype=None):
        super().__init__(name, reduction, dtype)
        self.from_logits = bool(from_logits)
        self.kind = _BCE_LOGITS if self.from_logits else _BCE
        self.label_smoothing = _number(label_smoothing, "label_smoothing", "BinaryCrossentropy",
                                       0.0, 1.0)
        self.axis = _only_last_axis(axis, "BinaryCrossentropy")

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis}


class _Crossentropy(Loss):
    focal = False
    alpha, gamma = 1.0, 0.0
    label_smoothing = 0.0
    ignore_class = None

    def __init__(self, from_logits, name, reduction, dtype):
        super().__init__(name, reduction, dtype)
        self.from_logits = bool(from_logits)
        self.fuses_softmax = not self.from_logits

    def _compute(self, y_true, y_pred, weights, mode, need_grad=True, out=None,
                 from_logits=None):
        k = y_pred.shape[-1]
        rows = y_pred.reshape(-1, k)
        onehot, labels = (None, y_true.reshape(-1)) if self.sparse else (y_true.reshape(rows.shape), None)
        loss, grad, values = _core.categorical_loss(
            rows, onehot, labels, self.from_logits if from_logits is None else from_logits,
            self.focal, self.alpha, self.gamma, self.label_smoothing, EPSILON, self.ignore_class,
            weights, mode, need_grad, out=None if out is None else out.reshape(rows.shape))
        if grad is not None:
            grad = out if out is not None else grad.reshape(y_pred.shape)  # the caller's buffer
        return loss, grad, values

    def from_logits_value_and_grad(self, y_true, logits, out=None, sample_weight=None):
        """(loss, dloss/dlogits) of this loss on softmax(logits): the fused path of a model
        ending in softmax."""
        mode = self._trainable_mode()
        weights = sample_weight_array(sample_weight, len(logits), self.name)
        loss, grad, _ = self._compute(y_true, logits, weights, mode, out=out, from_logits=True)
        return loss, grad


class CategoricalCrossentropy(_Crossentropy):
    """One-hot (or soft) labels of the output's shape."""

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_crossentropy", dtype=None):
        super().__init__(from_logits, name, reduction, dtype)
        self.label_smoothing = _number(label_smoothing, "label_smoothing",
                                       "CategoricalCrossentropy", 0.0, 1.0)
        self.axis = _only_last_axis(axis, "CategoricalCrossentropy")

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis}


class CategoricalFocalCrossentropy(CategoricalCrossentropy):
    """Keras' focal loss: each class's cross-entropy term weighted by alpha (1 - p)**gamma."""
    focal = True

    def __init__(self, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_focal_crossentropy",
                 dtype=None):
        super().__init__(from_logits, label_smoothing, axis, reduction, name, dtype)
        self.alpha = _number(alpha, "alpha", "CategoricalFocalCrossentropy")
        self.gamma = _number(gamma, "gamma", "CategoricalFocalCrossentropy", low=0.0)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "gamma": self.gamma}


class SparseCategoricalCrossentropy(_Crossentropy):
    """Integer class labels, (N,) or (N, 1) (or an image of them); labels equal to
    ignore_class count 0 and are left out of 'sum_over_batch_size''s count, as in Keras."""
    sparse = True

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size",
                 name="sparse_categorical_crossentropy", dtype=None):
        super().__init__(from_logits, name, reduction, dtype)
        if ignore_class is not None and (not isinstance(ignore_class, numbers.Integral)
                                         or isinstance(ignore_class, (bool, np.bool_))):
            raise TypeError("SparseCategoricalCrossentropy: ignore_class must be an integer "
                            f"class index or None, got {ignore_class!r}")
        self.ignore_class = None if ignore_class is None else int(ignore_class)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits,
                "ignore_class": self.ignore_class}

    def prepare_targets(self, y_true, output_shape):
        y_true = np.asarray(y_true)
        if y_true.dtype.kind not in "fiub":
            raise TypeError(f"{self.name}: y_true must be numeric, got dtype {y_true.dtype}")
        if y_true.dtype.kind == "f" and np.any(y_true != np.round(y_true)):
            raise ValueError(f"{self.name}: y_true must hold integer class indices")
        expected = tuple(output_shape[1:-1])
        if tuple(y_true.shape[1:]) not in (expected, expected + (1,)):
            raise ValueError(f"{self.name}: y_true has shape {y_true.shape} but class indices for "
                             f"an output of shape (None, {', '.join(map(str, output_shape[1:]))}) "
                             f"must have shape (N{''.join(', ' + str(s) for s in expected)}) or "
                             "with a trailing 1 (one-hot labels: use categorical_crossentropy)")
        if y_true.shape[1:] != expected:
            y_true = y_true.reshape(y_true.shape[:-1])  # Keras accepts a trailing axis of 1
        labels = c_array(y_true, np.int64)
        k = output_shape[-1]
        counted = labels if self.ignore_class is None else labels[labels != self.ignore_class]
        if counted.size and (counted.min() < 0 or counted.max() >= k):
            raise ValueError(f"{self.name}: labels must be in [0, {k}), got values from "
                             f"{counted.min()} to {counted.max()}")
        return labels


_NAMES = {CategoricalCrossentropy: "categorical_crossentropy",
          SparseCategoricalCrossentropy: "sparse_categorical_crossentropy",
          BinaryCrossentropy: "binary_crossentropy",
          CategoricalFocalCrossentropy: "categorical_focal_crossentropy",
          MeanSquaredError: "mean_squared_error", MeanAbsoluteError: "mean_absolute_error",
          Huber: "huber_loss", KLDivergence: "kl_divergence"}
# Keras 3's string identifiers (keras.losses.get): each makes the loss named by the string.
_BY_NAME = {name: cls for cls, name in _NAMES.items() if cls is not Huber}
_BY_NAME.update({"mse": MeanSquaredError, "MSE": MeanSquaredError, "mae": MeanAbsoluteError,
                 "MAE": MeanAbsoluteError, "huber": Huber, "kld": KLDivergence,
                 "KLD": KLDivergence})
_CLASSES = {cls.__name__: cls for cls in _NAMES}
BUILT_IN = frozenset(_NAMES)  # their value_and_grad take out=, a buffer for the gradient


# ---------------------------------------------------------------- the functions, as Keras'
# Each returns the value of every sample (unweighted, unreduced), as keras.losses' functions.

def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    return CategoricalCrossentropy(from_logits, label_smoothing, axis, reduction=None)(y_true, y_pred)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None,
                                    axis=-1):
    _only_last_axis(axis, "sparse_categorical_crossentropy")
    return SparseCategoricalCrossentropy(from_logits, ignore_class, reduction=None)(y_true, y_pred)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    return BinaryCrossentropy(from_logits, label_smoothing, axis, reduction=None)(y_true, y_pred)


def categorical_focal_crossentropy(y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False,
                                   label_smoothing=0.0, axis=-1):
    return CategoricalFocalCrossentropy(alpha, gamma, from_logits, label_smoothing, axis,
                                        reduction=None)(y_true, y_pred)


def mean_squared_error(y_true, y_pred):
    return MeanSquaredError(reduction=None)(y_true, y_pred)


def mean_absolute_error(y_true, y_pred):
    return MeanAbsoluteError(reduction=None)(y_true, y_pred)


def huber(y_true, y_pred, delta=1.0):
    return Huber(delta, reduction=None)(y_true, y_pred)


def kl_divergence(y_true, y_pred):
    return KLDivergence(reduction=None)(y_true, y_pred)


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
kld = KLD = kl_divergence

_FUNCTIONS = {categorical_crossentropy: CategoricalCrossentropy,
              sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
              binary_crossentropy: BinaryCrossentropy,
              categorical_focal_crossentropy: CategoricalFocalCrossentropy,
              mean_squared_error: MeanSquaredError, mean_absolute_error: MeanAbsoluteError,
              huber: Huber, kl_divergence: KLDivergence}


def get(identifier):
    """A name ('categorical_crossentropy', 'mse', 'mae', 'huber', 'kld', ...), a class name,
    a Loss, one of the functions above, or a {'class_name', 'config'} dict -> a Loss object."""
    if identifier is None:
        return None
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        if identifier in _BY_NAME:
            cls = _BY_NAME[identifier]
            return cls(name=identifier)
        if identifier in _CLASSES:
            return _CLASSES[identifier]()
    if isinstance(identifier, type) and identifier in _NAMES:
        return identifier()
    if callable(identifier) and identifier in _FUNCTIONS:
        return _FUNCTIONS[identifier]()
    raise ValueError(f"Unknown loss {identifier!r}; cnnkit has {sorted(_BY_NAME)}")


def serialize(loss):
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(config):
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"deserialize: expected a {{'class_name', 'config'}} dict, got {config!r}")
    name = config["class_name"]
    if name not in _CLASSES:
        raise ValueError(f"Unknown loss class {name!r}; cnnkit has {sorted(_CLASSES)}")
    return _CLASSES[name].from_config(config.get("config", {}))
