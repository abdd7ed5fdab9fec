"""Metrics, as keras.metrics: stateful means over the batches of an epoch.

A metric is updated with update_state(y_true, y_pred) once per batch, read with result() and
cleared with reset_state(). get('accuracy', loss, ...) picks binary, categorical or sparse
accuracy as Keras does. A new metric can be a plain function fn(y_true, y_pred) -> one value per
sample, registered in FUNCTIONS (or passed directly in compile's metrics list).
"""
import numpy as np

__all__ = ["Metric", "Mean", "MeanMetricWrapper", "Accuracy", "BinaryAccuracy",
           "CategoricalAccuracy", "SparseCategoricalAccuracy", "MeanSquaredError",
           "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
           "mean_squared_error", "mse", "psnr", "psnr_per_image", "get"]


class Metric:
    def __init__(self, name):
        self.name = name
        self.reset_state()

    def reset_state(self):
        self.total, self.count = 0.0, 0

    def result(self):
        return self.total / self.count if self.count else 0.0


class Mean(Metric):
    """A weighted mean of the values given (the loss: weighted by the batch size, as Keras)."""

    def update_state(self, value, sample_weight=1):
        self.total += float(value) * sample_weight
        self.count += sample_weight


class MeanMetricWrapper(Metric):
    """The mean over all samples seen of fn(y_true, y_pred), a value per sample."""

    def __init__(self, fn, name=None):
        self.fn = fn
        super().__init__(name or fn.__name__)

    def update_state(self, y_true, y_pred):
        values = np.asarray(self.fn(y_true, y_pred), dtype=np.float64)
        self.total += float(values.sum())
        self.count += values.size


# ---------------------------------------------------------------- per-sample functions

def _same_shape(y_true, y_pred, fn):
    """Both as arrays of one shape: broadcasting two different shapes would give a number
    that means nothing."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    for name, array in (("y_true", y_true), ("y_pred", y_pred)):
        if array.dtype.kind not in "fiub":
            raise TypeError(f"{fn}: {name} must be numeric, got dtype {array.dtype}")
    if y_true.shape != y_pred.shape or y_true.ndim == 0:
        raise ValueError(f"{fn}: y_true and y_pred must have the same shape with a batch axis, "
                         f"got {y_true.shape} and {y_pred.shape}")
    return y_true, y_pred


def binary_accuracy(y_true, y_pred, threshold=0.5):
    y_true, y_pred = _same_shape(y_true, y_pred, "binary_accuracy")
    match = (y_pred > threshold) == (y_true > 0.5)
    return match.reshape(len(match), -1).mean(axis=1)


def categorical_accuracy(y_true, y_pred):
    y_true, y_pred = _same_shape(y_true, y_pred, "categorical_accuracy")
    return np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)


def sparse_categorical_accuracy(y_true, y_pred):
    labels, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if labels.ndim == y_pred.ndim and labels.shape[-1:] == (1,):
        labels = labels[..., 0]
    if labels.shape != y_pred.shape[:-1]:
        raise ValueError(f"sparse_categorical_accuracy: y_true must hold one class index per "
                         f"prediction, shape {y_pred.shape[:-1]}, got {np.shape(y_true)}")
    return labels == np.argmax(y_pred, axis=-1)


def mean_squared_error(y_true, y_pred):
    y_true, y_pred = _same_shape(y_true, y_pred, "mean_squared_error")
    diff = np.asarray(y_pred, np.float64) - np.asarray(y_true, np.float64)
    return (diff * diff).reshape(len(diff), -1).mean(axis=1)


mse = mean_squared_error


def psnr_per_image(y_true, y_pred, max_val=1.0):
    """Peak signal-to-noise ratio of each image, in dB, as tf.image.psnr: for image i,
    mse_i = the mean of (y_pred - y_true)**2 over all its values (H, W and C; any shape after
    the batch axis), psnr_i = 20 log10(max_val) - 10 log10(mse_i); inf where mse_i is 0."""
    if not isinstance(max_val, (int, float, np.number)) or not max_val > 0:
        raise ValueError(f"psnr: max_val must be a positive number (the pixel range), got "
                         f"{max_val!r}")
    with np.errstate(divide="ignore"):
        return 20 * np.log10(max_val) - 10 * np.log10(mean_squared_error(y_true, y_pred))


def psnr(x, x_hat, max_val=1.0):
    """The per-image PSNR (psnr_per_image, as tf.image.psnr) averaged over the batch, in dB:
    tf.reduce_mean(tf.image.psnr(x, x_hat, max_val)). An image reproduced exactly has PSNR inf,
    and so then has the mean. max_val is the range of the pixels: 1.0 for images scaled to
    [0, 1], 255 for raw uint8 values.

    As a compile metric (metrics=['psnr'], or this function) it is the mean over every image of
    the epoch or evaluation. That is not the PSNR of the mean MSE, which is lower (log is
    concave): report which one a comparison uses."""
    return float(np.mean(psnr_per_image(x, x_hat, max_val)))


FUNCTIONS = {"binary_accuracy": binary_accuracy, "categorical_accuracy": categorical_accuracy,
             "sparse_categorical_accuracy": sparse_categorical_accuracy,
             "mean_squared_error": mean_squared_error, "mse": mean_squared_error,
             "psnr": psnr_per_image}


def _wrapper(fn, default_name):
    class Wrapped(MeanMetricWrapper):
        def __init__(self, name=default_name):
            super().__init__(fn, name)
    return Wrapped


BinaryAccuracy = _wrapper(binary_accuracy, "binary_accuracy")
CategoricalAccuracy = _wrapper(categorical_accuracy, "categorical_accuracy")
SparseCategoricalAccuracy = _wrapper(sparse_categorical_accuracy, "sparse_categorical_accuracy")
MeanSquaredError = _wrapper(mean_squared_error, "mean_squared_error")
for _cls, _name in ((BinaryAccuracy, "BinaryAccuracy"), (CategoricalAccuracy, "CategoricalAccuracy"),
                    (SparseCategoricalAccuracy, "SparseCategoricalAccuracy"),
                    (MeanSquaredError, "MeanSquaredError")):
    _cls.__name__ = _cls.__qualname__ = _name


def Accuracy(name="accuracy"):
    """Keras' Accuracy compares values exactly; for class predictions use 'accuracy' in
    compile, which picks the right one."""
    return MeanMetricWrapper(lambda t, p: (np.asarray(t) == np.asarray(p)).reshape(len(t), -1).mean(axis=1), name)


def get(identifier, loss=None, output_shape=None, sparse_labels=False):
    """A metric object for compile's metrics list.

    'accuracy' (or 'acc') becomes, as in Keras: binary accuracy for a binary cross-entropy or a
    single output; sparse categorical accuracy for class-index labels; else categorical. The
    metric keeps the name it was asked by ('accuracy'), which is its key in the logs."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        if identifier in ("accuracy", "acc"):
            loss_name = getattr(loss, "name", None)
            if loss_name == "binary_crossentropy" or (output_shape and output_shape[-1] == 1):
                fn = binary_accuracy
            elif sparse_labels or getattr(loss, "sparse", False):
                fn = sparse_categorical_accuracy
            else:
                fn = categorical_accuracy
            return MeanMetricWrapper(fn, identifier)
        if identifier in FUNCTIONS:
            return MeanMetricWrapper(FUNCTIONS[identifier], identifier)
        raise ValueError(f"Unknown metric {identifier!r}; cnnkit has "
                         f"{['accuracy'] + sorted(FUNCTIONS)}")
    if identifier is psnr:  # the batch mean; the metric needs the value of each image
        return MeanMetricWrapper(psnr_per_image, "psnr")
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if callable(identifier):
        return MeanMetricWrapper(identifier)
    raise ValueError(f"Unknown metric {identifier!r}")
