"""Metrics, as keras.metrics: stateful, weighted statistics over the batches of an epoch.

A metric is updated with update_state(y_true, y_pred, sample_weight=None) once per batch, read
with result() and cleared with reset_state(). The package holds the base classes (base: Metric,
Mean, Sum, MeanMetricWrapper), the accuracy metrics (accuracy), the confusion-matrix metrics
(confusion: Precision, Recall, AUC, ...) and the regression metrics (regression: MAE, MSE,
RMSE, PSNR).

get(identifier, loss, output_shape) makes the metric of compile's metrics list as Keras 3
does: 'accuracy' picks binary, categorical or sparse categorical accuracy; a string is a class
name, its snake_case name or an alias ('mse', 'mae'), and the metric takes that string as its
name; a plain function fn(y_true, y_pred) -> one value per sample is averaged by a
MeanMetricWrapper (register it in FUNCTIONS to use it by name).
"""
import inspect

from .._naming import snake_case
from . import accuracy as _accuracy
from . import base as _base
from . import confusion as _confusion
from . import regression as _regression
from .accuracy import *  # noqa: F401,F403
from .base import Mean, MeanMetricWrapper, Metric, Sum
from .confusion import *  # noqa: F401,F403
from .regression import *  # noqa: F401,F403

__all__ = (_base.__all__ + _accuracy.__all__ + _confusion.__all__ + _regression.__all__
           + ["FUNCTIONS", "NAMES", "get", "serialize", "deserialize"])

# The per-sample functions by name: compile's metric strings for functions, and what
# MeanMetricWrapper's get_config names its fn by.
FUNCTIONS = {"accuracy": _accuracy.accuracy, "binary_accuracy": binary_accuracy,
             "categorical_accuracy": categorical_accuracy,
             "sparse_categorical_accuracy": sparse_categorical_accuracy,
             "top_k_categorical_accuracy": top_k_categorical_accuracy,
             "sparse_top_k_categorical_accuracy": sparse_top_k_categorical_accuracy,
             "mean_squared_error": mean_squared_error, "mse": mean_squared_error,
             "mean_absolute_error": mean_absolute_error, "mae": mean_absolute_error,
             "psnr": psnr_per_image}

# The classes compile can make from a string, as Keras' ALL_OBJECTS_DICT: by class name, by
# snake_case name, and Keras' aliases. (Mean, Sum and Metric are not compile metrics: their
# update_state takes values, not (y_true, y_pred).)
_CLASSES = [Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
            TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy, Precision, Recall, AUC,
            TruePositives, FalsePositives, TrueNegatives, FalseNegatives, MeanSquaredError,
            MeanAbsoluteError, RootMeanSquaredError]
_BY_NAME = {cls.__name__: cls for cls in _CLASSES}
_BY_NAME.update({snake_case(cls.__name__): cls for cls in _CLASSES})
_BY_NAME.update({"mse": MeanSquaredError, "MSE": MeanSquaredError, "mae": MeanAbsoluteError,
                 "MAE": MeanAbsoluteError})
_ALL_CLASSES = {cls.__name__: cls for cls in _CLASSES + [Mean, Sum, MeanMetricWrapper]}

# Keras 3 metric names cnnkit does not have: get() says so rather than only "unknown".
_KERAS_ONLY = {"BinaryCrossentropy", "BinaryIoU", "CategoricalCrossentropy", "CategoricalHinge",
               "ConcordanceCorrelation", "CosineSimilarity", "F1Score", "FBetaScore", "Hinge",
               "IoU", "KLDivergence", "LogCoshError", "MeanAbsolutePercentageError", "MeanIoU",
               "MeanSquaredLogarithmicError", "OneHotIoU", "OneHotMeanIoU", "PearsonCorrelation",
               "Poisson", "PrecisionAtRecall", "R2Score", "RecallAtPrecision",
               "SensitivityAtSpecificity", "SparseCategoricalCrossentropy",
               "SpecificityAtSensitivity", "SquaredHinge"}
_KERAS_ONLY |= {snake_case(name) for name in _KERAS_ONLY} | {
    "bce", "BCE", "mape", "MAPE", "msle", "MSLE", "f_beta_score", "io_u", "mean_io_u",
    "binary_io_u", "one_hot_io_u", "one_hot_mean_io_u"}

# Every string get() accepts (what a saved model's compile metrics may be restored from).
NAMES = frozenset(["accuracy", "acc", "psnr"] + list(_BY_NAME))


def _accuracy_class(loss, output_shape, sparse_labels):
    """Keras 3's choice for 'accuracy' (compile_utils.get_metric): binary when the output has
    one unit, sparse categorical for class-index labels, else categorical. Before the output
    shape is known, a binary cross-entropy loss stands for a one-unit output."""
    if output_shape is not None:
        binary = output_shape[-1] == 1
    else:
        binary = getattr(loss, "name", None) == "binary_crossentropy"
    if binary:
        return BinaryAccuracy
    if sparse_labels or getattr(loss, "sparse", False):
        return SparseCategoricalAccuracy
    return CategoricalAccuracy


def get(identifier, loss=None, output_shape=None, sparse_labels=False):
    """The metric object of one entry of compile's metrics list.

    'accuracy' or 'acc' (any case) becomes binary, sparse categorical or categorical accuracy,
    chosen as Keras 3 chooses from the loss (sparse labels) and the output shape; any other
    string is a class (Keras' names and aliases) or a function of FUNCTIONS. A metric made from
    a string is named by that string (its key in the logs); one made from a class or function
    by the metric's own name. A Metric object is used as it is; a config dict
    {'class_name': ..., 'config': ...} is deserialized."""
    if identifier is None:
        raise ValueError("Expected a metric, got None")
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        if identifier.lower() in ("accuracy", "acc"):
            return _accuracy_class(loss, output_shape, sparse_labels)(name=identifier)
        if identifier == "psnr":
            return MeanMetricWrapper(psnr_per_image, name="psnr")
        made = _BY_NAME.get(identifier)
        if made is None:
            what = ("is a Keras metric cnnkit does not have" if identifier in _KERAS_ONLY
                    else "is unknown")
            raise ValueError(f"Unknown metric {identifier!r}: it {what}; cnnkit has "
                             f"{sorted(NAMES, key=str.lower)}")
        return made(name=identifier)
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if identifier is psnr:  # the batch mean; the metric needs the value of each image
        return MeanMetricWrapper(psnr_per_image, name="psnr")
    if inspect.isclass(identifier):
        if issubclass(identifier, Metric):
            return identifier()
        raise TypeError(f"A metric class must subclass cnnkit.metrics.Metric, got "
                        f"{identifier.__name__}")
    if callable(identifier):
        name = getattr(identifier, "__name__", type(identifier).__name__)
        return MeanMetricWrapper(identifier, name=snake_case(name))
    raise TypeError(f"Unknown metric {identifier!r}: give a name, a Metric, a Metric class or "
                    "a function fn(y_true, y_pred)")


def serialize(metric):
    """{'class_name': ..., 'config': ...} of a cnnkit metric (its get_config)."""
    if not isinstance(metric, Metric):
        raise TypeError(f"serialize: expected a cnnkit Metric, got {metric!r}")
    return {"class_name": type(metric).__name__, "config": metric.get_config()}


def deserialize(config, custom_objects=None):
    """The metric of serialize()'s dict (custom_objects: {class name: class})."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"deserialize: expected {{'class_name': ..., 'config': ...}}, got "
                         f"{config!r}")
    name = config["class_name"]
    cls = (custom_objects or {}).get(name) or _ALL_CLASSES.get(name)
    if cls is None:
        raise ValueError(f"Unknown metric class {name!r}; cnnkit has {sorted(_ALL_CLASSES)} "
                         "(pass others in custom_objects)")
    return cls.from_config(config.get("config", {}))
