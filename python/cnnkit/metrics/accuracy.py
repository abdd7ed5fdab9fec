"""Accuracy metrics, as keras.metrics: the per-sample functions (binary_accuracy, ...) and the
MeanMetricWrapper classes that average them, weighted, over an epoch."""
import numpy as np

from .._args import _is_int
from .base import MeanMetricWrapper, numeric_array, same_shape

__all__ = ["Accuracy", "BinaryAccuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy",
           "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy", "accuracy",
           "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
           "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy"]


def _positive_k(k, who):
    if not _is_int(k) or k < 1:
        raise ValueError(f"{who}: k must be a positive integer, got {k!r}")
    return int(k)


def _threshold(threshold, who):
    if (not isinstance(threshold, (int, float, np.number)) or isinstance(threshold, bool)
            or not np.isfinite(threshold)):
        raise ValueError(f"{who}: threshold must be a finite number, got {threshold!r}")
    return threshold


def accuracy(y_true, y_pred):
    """1.0 where y_pred equals y_true exactly, per element."""
    y_true, y_pred = same_shape(y_true, y_pred, "accuracy")
    return (y_true.astype(y_pred.dtype) == y_pred).astype(np.float32)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """1.0 per element where (y_pred > threshold) equals y_true (0 or 1) exactly."""
    _threshold(threshold, "binary_accuracy")
    y_true, y_pred = same_shape(y_true, y_pred, "binary_accuracy")
    return (y_true == (y_pred > threshold)).astype(np.float32)


def _class_scores(y_pred, who):
    y_pred = numeric_array(y_pred, who, "y_pred")
    if y_pred.ndim < 2 or y_pred.shape[-1] == 0:
        raise ValueError(f"{who}: y_pred must hold class scores on its last axis, shape "
                         f"(N, ..., classes), got {y_pred.shape}")
    return y_pred


def categorical_accuracy(y_true, y_pred):
    """1.0 per sample (per position for several axes) where the largest score is the one-hot
    label's class."""
    y_true, y_pred = same_shape(y_true, y_pred, "categorical_accuracy")
    _class_scores(y_pred, "categorical_accuracy")
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(np.float32)


def _sparse_labels(y_true, y_pred, who):
    """Class indices of shape y_pred.shape[:-1] (a trailing axis of 1 is dropped, as Keras)."""
    labels = numeric_array(y_true, who, "y_true")
    if labels.ndim == y_pred.ndim and labels.shape[-1:] == (1,):
        labels = labels[..., 0]
    if labels.shape != y_pred.shape[:-1]:
        raise ValueError(f"{who}: y_true must hold one class index per prediction, shape "
                         f"{y_pred.shape[:-1]} (or with a trailing 1), got {np.shape(y_true)}")
    return labels


def sparse_categorical_accuracy(y_true, y_pred):
    """1.0 per sample where the largest score is at the class index y_true."""
    y_pred = _class_scores(y_pred, "sparse_categorical_accuracy")
    labels = _sparse_labels(y_true, y_pred, "sparse_categorical_accuracy")
    return (labels == np.argmax(y_pred, axis=-1)).astype(np.float32)


def _in_top_k(labels, y_pred, k, who):
    """Keras' in_top_k: the label's score is at least the k-th largest score (ties at the
    boundary count as in)."""
    classes = y_pred.shape[-1]
    labels = labels.astype(np.int64) if labels.dtype.kind == "f" else labels
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"{who}: y_true holds class indices outside [0, {classes})")
    if k >= classes:
        return np.ones(labels.shape, np.float32)
    target = np.take_along_axis(y_pred, labels[..., None].astype(np.intp), axis=-1)[..., 0]
    kth = np.partition(y_pred, classes - k, axis=-1)[..., classes - k]
    return (target >= kth).astype(np.float32)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1.0 per sample where the one-hot label's class is among the k largest scores."""
    k = _positive_k(k, "top_k_categorical_accuracy")
    y_true, y_pred = same_shape(y_true, y_pred, "top_k_categorical_accuracy")
    _class_scores(y_pred, "top_k_categorical_accuracy")
    return _in_top_k(np.argmax(y_true, axis=-1), y_pred, k, "top_k_categorical_accuracy")


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5, from_sorted_ids=False):
    """1.0 per sample where the class index y_true is among the k largest scores; with
    from_sorted_ids, y_pred holds class ids sorted by score and y_true must be in its first k."""
    who = "sparse_top_k_categorical_accuracy"
    k = _positive_k(k, who)
    y_pred = _class_scores(y_pred, who)
    labels = _sparse_labels(y_true, y_pred, who)
    if from_sorted_ids:
        return np.any(labels[..., None] == y_pred[..., :k], axis=-1).astype(np.float32)
    return _in_top_k(labels, y_pred, k, who)


class Accuracy(MeanMetricWrapper):
    """How often y_pred equals y_true exactly (for class scores use 'accuracy' in compile, which
    picks binary, categorical or sparse categorical accuracy)."""

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(accuracy, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class BinaryAccuracy(MeanMetricWrapper):
    """How often (y_pred > threshold) equals the 0/1 label y_true."""

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        super().__init__(binary_accuracy, name=name, dtype=dtype,
                         threshold=_threshold(threshold, "BinaryAccuracy"))
        self.threshold = threshold

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "threshold": self.threshold}


class CategoricalAccuracy(MeanMetricWrapper):
    """How often the largest score is the one-hot label's class."""

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(categorical_accuracy, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often the largest score is at the class index y_true."""

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(sparse_categorical_accuracy, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class TopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the one-hot label's class is among the k largest scores."""

    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        k = _positive_k(k, "TopKCategoricalAccuracy")
        super().__init__(top_k_categorical_accuracy, name=name, dtype=dtype, k=k)
        self.k = k

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "k": self.k}


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the class index y_true is among the k largest scores."""

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None,
                 from_sorted_ids=False):
        k = _positive_k(k, "SparseTopKCategoricalAccuracy")
        super().__init__(sparse_top_k_categorical_accuracy, name=name, dtype=dtype, k=k,
                         from_sorted_ids=bool(from_sorted_ids))
        self.k = k
        self.from_sorted_ids = bool(from_sorted_ids)

    def get_config(self):
        config = {"name": self.name, "dtype": self.dtype, "k": self.k}
        if self.from_sorted_ids:
            config["from_sorted_ids"] = True
        return config
