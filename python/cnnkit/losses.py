"""Losses by name or object, as keras.losses; each is the mean over the batch.

A loss object is called as loss(y_true, y_pred) -> float (Keras' value). Models use
value_and_grad(y_true, y_pred) -> (loss, dloss/dy_pred) on arrays they have already converted.
When a model ends in softmax and the loss is a (sparse) categorical cross-entropy, it calls
from_logits_value_and_grad on the values before the softmax instead (as Keras does through
_keras_logits): one fused, stable kernel whose gradient is exactly (p - y) / N.
"""
import numpy as np

from . import _core
from ._args import c_array

__all__ = ["Loss", "CategoricalCrossentropy", "SparseCategoricalCrossentropy",
           "BinaryCrossentropy", "MeanSquaredError", "categorical_crossentropy",
           "sparse_categorical_crossentropy", "binary_crossentropy", "mean_squared_error", "mse",
           "get", "serialize"]

EPSILON = 1e-7  # Keras' backend epsilon: probabilities are clipped to [eps, 1 - eps]


class Loss:
    sparse = False       # labels are class indices
    fuses_softmax = False  # may be computed from the logits of a final softmax

    def __init__(self, name=None):
        self.name = name or _NAMES[type(self)]

    def __call__(self, y_true, y_pred):
        y_pred = c_array(y_pred, np.float32)
        return float(self.value_and_grad(self.prepare_targets(y_true, y_pred.shape), y_pred)[0])

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
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class _Crossentropy(Loss):
    def __init__(self, from_logits=False, name=None):
        super().__init__(name)
        self.from_logits = bool(from_logits)
        self.fuses_softmax = not self.from_logits

    def value_and_grad(self, y_true, y_pred, out=None):
        if self.from_logits:
            return self.from_logits_value_and_grad(y_true, y_pred, out=out)
        return self._on_probabilities(y_true, y_pred)

    def from_logits_value_and_grad(self, y_true, logits, out=None):
        shape = logits.shape
        logits = logits.reshape(-1, shape[-1])
        onehot, labels = (None, y_true.reshape(-1)) if self.sparse else (y_true.reshape(logits.shape), None)
        out = None if out is None else out.reshape(logits.shape)
        loss, dlogits = _core.softmax_cross_entropy(logits, onehot, labels, out=out)
        return loss, dlogits.reshape(shape)

    def _on_probabilities(self, y_true, y_pred):
        # Keras: normalise the rows, clip to [eps, 1 - eps], -sum(y log p); no gradient where
        # the clip is active. NumPy: this path only runs when softmax is not the last layer.
        k = y_pred.shape[-1]
        p = y_pred.reshape(-1, k).astype(np.float64)
        y = self._onehot(y_true, p.shape)
        total = p.sum(axis=1, keepdims=True)
        q = p / total
        clipped = np.clip(q, EPSILON, 1 - EPSILON)
        n = p.shape[0]
        loss = -np.sum(y * np.log(clipped)) / n
        dq = np.where(clipped == q, -y / clipped, 0.0)
        dp = (dq - np.sum(dq * q, axis=1, keepdims=True)) / total / n
        return float(loss), np.ascontiguousarray(dp.reshape(y_pred.shape), dtype=np.float32)

    def _onehot(self, y_true, shape):
        if not self.sparse:
            return y_true.reshape(shape)
        onehot = np.zeros(shape)
        onehot[np.arange(shape[0]), y_true.reshape(-1)] = 1
        return onehot

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits}


class CategoricalCrossentropy(_Crossentropy):
    """One-hot (or soft) labels of the output's shape."""


class SparseCategoricalCrossentropy(_Crossentropy):
    """Integer class labels, (N,) or (N, 1)."""
    sparse = True

    def prepare_targets(self, y_true, output_shape):
        y_true = np.asarray(y_true)
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
        if labels.size and (labels.min() < 0 or labels.max() >= k):
            raise ValueError(f"{self.name}: labels must be in [0, {k}), got values from "
                             f"{labels.min()} to {labels.max()}")
        return labels


class BinaryCrossentropy(Loss):
    """0/1 targets and probabilities of the same shape, clipped as Keras clips them."""

    def __init__(self, from_logits=False, name=None):
        super().__init__(name)
        if from_logits:
            raise ValueError("BinaryCrossentropy: from_logits=True is not supported; end the "
                             "model with a sigmoid")
        self.from_logits = False

    def value_and_grad(self, y_true, y_pred, out=None):
        return _core.binary_crossentropy(y_true, y_pred, EPSILON, out=out)

    def get_config(self):
        return {"name": self.name, "from_logits": False}


class MeanSquaredError(Loss):
    """The mean of the squared differences over every element (Keras: over the last axis, then
    over the batch: the same number)."""

    def value_and_grad(self, y_true, y_pred, out=None):
        return _core.mean_squared_error(y_true, y_pred, out=out)


_NAMES = {CategoricalCrossentropy: "categorical_crossentropy",
          SparseCategoricalCrossentropy: "sparse_categorical_crossentropy",
          BinaryCrossentropy: "binary_crossentropy", MeanSquaredError: "mean_squared_error"}
_BY_NAME = {name: cls for cls, name in _NAMES.items()}
_BY_NAME["mse"] = MeanSquaredError
_CLASSES = {cls.__name__: cls for cls in _NAMES}
BUILT_IN = frozenset(_NAMES)  # their value_and_grad take out=, a buffer for the gradient


def categorical_crossentropy(y_true, y_pred, from_logits=False):
    return CategoricalCrossentropy(from_logits)(y_true, y_pred)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    return SparseCategoricalCrossentropy(from_logits)(y_true, y_pred)


def binary_crossentropy(y_true, y_pred):
    return BinaryCrossentropy()(y_true, y_pred)


def mean_squared_error(y_true, y_pred):
    return MeanSquaredError()(y_true, y_pred)


mse = mean_squared_error


def get(identifier):
    """A name ('categorical_crossentropy', 'mse', ...), a Loss, one of the functions above, or
    a {'class_name', 'config'} dict -> a Loss object."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, dict):
        return _CLASSES[identifier["class_name"]].from_config(identifier.get("config", {}))
    if isinstance(identifier, str) and identifier in _BY_NAME:
        cls = _BY_NAME[identifier]
        return cls(name=identifier) if identifier == "mse" else cls()
    for name, function in (("categorical_crossentropy", categorical_crossentropy),
                           ("sparse_categorical_crossentropy", sparse_categorical_crossentropy),
                           ("binary_crossentropy", binary_crossentropy),
                           ("mean_squared_error", mean_squared_error)):
        if identifier is function:
            return _BY_NAME[name]()
    raise ValueError(f"Unknown loss {identifier!r}; cnnkit has {sorted(_BY_NAME)}")


def serialize(loss):
    return {"class_name": type(loss).__name__, "config": loss.get_config()}
