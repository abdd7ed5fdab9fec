"""The metric base classes, as keras.metrics.Metric, Mean, Sum and MeanMetricWrapper, and the
input checks every metric shares.

A metric accumulates statistics in float64 NumPy state over the batches of an epoch
(update_state), reads them with result() and clears them with reset_state(). Weighting follows
Keras 3's reduce_to_samplewise_values: a value of several elements per sample counts as its
per-sample mean (Mean) or sum (Sum), weighted by that sample's weight; a scalar weight weights
the batch as a whole.
"""
import numbers

import numpy as np

from .._naming import snake_case
from ..layers.base import unique_name

__all__ = ["Metric", "Mean", "Sum", "MeanMetricWrapper"]

_FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


def _dtype_name(dtype, who):
    """Keras' dtype argument: None is floatx ('float32'). cnnkit accumulates in float64 either
    way; the name is kept for get_config."""
    if dtype is None:
        return "float32"
    name = getattr(dtype, "name", dtype)
    if isinstance(name, type) and issubclass(name, np.generic):
        name = np.dtype(name).name
    if name not in _FLOAT_DTYPES:
        raise ValueError(f"{who}: dtype must be one of {list(_FLOAT_DTYPES)} or None, got "
                         f"{dtype!r}")
    return name


def numeric_array(value, who, what):
    """value as a float64 array; a TypeError naming the argument for anything not numeric."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        raise TypeError(f"{who}: {what} must be a numeric array, got a ragged "
                        f"{type(value).__name__}") from None
    if array.dtype.kind not in "fiub":
        raise TypeError(f"{who}: {what} must be numeric, got dtype {array.dtype}")
    return array


def sample_weights(sample_weight, n, who):
    """None, a float (one weight for the whole batch) or a float64 (n,) array: the weights
    Keras accepts in fit, (n,) or (n, 1), finite and not negative."""
    if sample_weight is None:
        return None
    w = numeric_array(sample_weight, who, "sample_weight").astype(np.float64)
    if w.ndim == 2 and w.shape[1:] == (1,):
        w = w[:, 0]
    if w.ndim > 1 or (w.ndim == 1 and len(w) != n):
        raise ValueError(f"{who}: sample_weight must hold one weight per sample, shape ({n},), "
                         f"got shape {np.shape(sample_weight)}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"{who}: sample_weight must be finite and not negative")
    return float(w) if w.ndim == 0 else w


def squeeze_or_expand(x1, x2):
    """Keras' squeeze_or_expand_to_same_rank: when the ranks differ by one and the longer has a
    trailing axis of 1, a rank-1 partner gains that axis, else the trailing 1 goes."""
    if x1.ndim == x2.ndim + 1 and x1.shape[-1] == 1:
        if x2.ndim == 1:
            x2 = x2[:, None]
        else:
            x1 = x1[..., 0]
    elif x2.ndim == x1.ndim + 1 and x2.shape[-1] == 1:
        if x1.ndim == 1:
            x1 = x1[:, None]
        else:
            x2 = x2[..., 0]
    return x1, x2


def same_shape(y_true, y_pred, who):
    """y_true and y_pred as arrays of one shape with a batch axis (Keras' rank rule first):
    broadcasting two different shapes would give a number that means nothing."""
    y_true = numeric_array(y_true, who, "y_true")
    y_pred = numeric_array(y_pred, who, "y_pred")
    if y_true.ndim and y_pred.ndim:
        y_true, y_pred = squeeze_or_expand(y_true, y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim == 0:
        raise ValueError(f"{who}: y_true and y_pred must have the same shape with a batch axis, "
                         f"got {np.shape(y_true)} and {np.shape(y_pred)}")
    return y_true, y_pred


class Metric:
    """The base of every metric, as keras.metrics.Metric: name, dtype, update_state(...),
    result(), reset_state(), __call__ (update, then the result), get_config/from_config.

    A subclass calls super().__init__(name=name, dtype=dtype), keeps its state in attributes it
    sets in reset_state(), and implements update_state and result. (Keras' add_variable state
    is not there: cnnkit metrics hold NumPy arrays and floats.)"""

    def __init__(self, dtype=None, name=None):  # Keras' order
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: name must be a string, got {name!r}")
        self.name = name if name is not None else unique_name(snake_case(type(self).__name__))
        self._dtype = _dtype_name(dtype, type(self).__name__)

    @property
    def dtype(self):
        return self._dtype

    def update_state(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement update_state")

    def result(self):
        raise NotImplementedError(f"{type(self).__name__} must implement result")

    def reset_state(self):
        raise NotImplementedError(f"{type(self).__name__} must implement reset_state")

    def __call__(self, *args, **kwargs):
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


def _per_sample(values, reduce):
    """(n,) from (n, ...) by the mean or sum over the axes after the batch axis."""
    return values if values.ndim == 1 else reduce(values.reshape(len(values), -1), axis=1)


class _Reduction(Metric):
    _reduce = None

    def __init__(self, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.reset_state()

    def reset_state(self):
        self.total, self.count = 0.0, 0.0

    def _weighted_total(self, values, sample_weight):
        """(weighted total, total weight) of one update, as Keras' reduce_to_samplewise_values."""
        who = type(self).__name__
        values = numeric_array(values, who, "values").astype(np.float64)
        weights = sample_weights(sample_weight, len(values) if values.ndim else 1, who)
        if weights is None:
            if values.ndim == 0:
                return float(values), 1.0
            if values.size == 0:
                return 0.0, float(len(values))
            return float(_per_sample(values, self._reduce).sum()), float(len(values))
        if isinstance(weights, float):  # one weight for the batch: Keras reduces it to one value
            if values.size == 0:
                return 0.0, 0.0
            return float(self._reduce(values)) * weights, weights
        if values.ndim == 0:
            raise ValueError(f"{who}: a single value cannot take one sample_weight per sample")
        if values.size == 0:
            return 0.0, 0.0
        return float(_per_sample(values, self._reduce) @ weights), float(weights.sum())


class Mean(_Reduction):
    """The (weighted) mean of the values given: update_state(values, sample_weight=None). A
    scalar value with a scalar weight counts as that many samples (the trainer's loss tracker:
    update_state(batch_loss, batch_size))."""
    _reduce = staticmethod(np.mean)

    def __init__(self, name="mean", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, values, sample_weight=None):
        total, count = self._weighted_total(values, sample_weight)
        self.total += total
        self.count += count

    def result(self):
        return self.total / self.count if self.count else 0.0  # Keras' divide_no_nan


class Sum(_Reduction):
    """The (weighted) sum of the values given."""
    _reduce = staticmethod(np.sum)

    def __init__(self, name="sum", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, values, sample_weight=None):
        self.total += self._weighted_total(values, sample_weight)[0]

    def result(self):
        return float(self.total)


class MeanMetricWrapper(Mean):
    """The (weighted) mean over all samples seen of fn(y_true, y_pred, **kwargs), a value per
    sample (or per element: each sample counts as the mean of its elements)."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        if not callable(fn):
            raise TypeError(f"MeanMetricWrapper: fn must be callable, got {fn!r}")
        self._fn = fn
        self._fn_kwargs = kwargs
        super().__init__(name=name, dtype=dtype)  # None: 'mean_metric_wrapper', as Keras

    @property
    def fn(self):
        return self._fn

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = self._fn(y_true, y_pred, **self._fn_kwargs)
        return super().update_state(values, sample_weight=sample_weight)

    def get_config(self):
        from . import FUNCTIONS  # noqa: the package's registry of per-sample functions
        names = [k for k, f in FUNCTIONS.items() if f is self._fn]
        return {**super().get_config(), "fn": names[0] if names else self._fn,
                **self._fn_kwargs}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("fn"), str):
            from . import FUNCTIONS
            if config["fn"] not in FUNCTIONS:
                raise ValueError(f"MeanMetricWrapper: unknown function {config['fn']!r}; cnnkit "
                                 f"has {sorted(FUNCTIONS)}")
            config["fn"] = FUNCTIONS[config["fn"]]
        return cls(**config)
