"""Regression metrics, as keras.metrics: mean absolute and squared error (functions and
classes), root mean squared error, and cnnkit's PSNR (as tf.image.psnr)."""
import numpy as np

from .base import Mean, MeanMetricWrapper, same_shape

__all__ = ["MeanAbsoluteError", "MeanSquaredError", "RootMeanSquaredError",
           "mean_absolute_error", "mean_squared_error", "mae", "mse", "psnr", "psnr_per_image"]


def _difference(y_true, y_pred, who):
    y_true, y_pred = same_shape(y_true, y_pred, who)
    return np.subtract(y_pred, y_true, dtype=np.float64)  # one pass, in float64


def mean_squared_error(y_true, y_pred):
    """mean((y_true - y_pred)**2) over the last axis, as Keras."""
    diff = _difference(y_true, y_pred, "mean_squared_error")
    # The squares summed as they are made (no array of them): this runs on every batch.
    return np.einsum("...i,...i->...", diff, diff) / max(diff.shape[-1], 1)


def mean_absolute_error(y_true, y_pred):
    """mean(|y_true - y_pred|) over the last axis, as Keras."""
    return np.mean(np.abs(_difference(y_true, y_pred, "mean_absolute_error")), axis=-1)


mse = mean_squared_error
mae = mean_absolute_error


class MeanSquaredError(MeanMetricWrapper):
    """The (weighted) mean over samples of each sample's mean squared error."""

    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(mean_squared_error, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class MeanAbsoluteError(MeanMetricWrapper):
    """The (weighted) mean over samples of each sample's mean absolute error."""

    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(mean_absolute_error, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class RootMeanSquaredError(Mean):
    """sqrt of the (weighted) mean over samples of each sample's mean squared error."""

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        diff = _difference(y_true, y_pred, "RootMeanSquaredError")
        return super().update_state(diff * diff, sample_weight=sample_weight)

    def result(self):
        return float(np.sqrt(super().result()))


def psnr_per_image(y_true, y_pred, max_val=1.0):
    """Peak signal-to-noise ratio of each image, in dB, as tf.image.psnr: for image i,
    mse_i = the mean of (y_pred - y_true)**2 over all its values (H, W and C; any shape after
    the batch axis), psnr_i = 20 log10(max_val) - 10 log10(mse_i); inf where mse_i is 0."""
    if (not isinstance(max_val, (int, float, np.number)) or isinstance(max_val, bool)
            or not max_val > 0):
        raise ValueError(f"psnr: max_val must be a positive number (the pixel range), got "
                         f"{max_val!r}")
    diff = _difference(y_true, y_pred, "psnr")
    per_image = (diff * diff).reshape(len(diff), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        return 20 * np.log10(max_val) - 10 * np.log10(per_image)


def psnr(x, x_hat, max_val=1.0):
    """The per-image PSNR (psnr_per_image, as tf.image.psnr) averaged over the batch, in dB:
    tf.reduce_mean(tf.image.psnr(x, x_hat, max_val)). An image reproduced exactly has PSNR inf,
    and so then has the mean. max_val is the range of the pixels: 1.0 for images scaled to
    [0, 1], 255 for raw uint8 values.

    As a compile metric (metrics=['psnr'], or this function) it is the mean over every image of
    the epoch or evaluation. That is not the PSNR of the mean MSE, which is lower (log is
    concave): report which one a comparison uses."""
    return float(np.mean(psnr_per_image(x, x_hat, max_val)))
