"""Callbacks that watch one logged value from epoch to epoch: EarlyStopping (stops fit when it
stops improving) and ReduceLROnPlateau (lowers the learning rate), as in Keras 3."""
import warnings

import numpy as np

from . import _checks
from .base import Callback

__all__ = ["EarlyStopping", "ReduceLROnPlateau"]

# Logged names whose direction the name tells (with or without 'val_'); any other is looked up
# among the model's metrics (a metric's `_direction`, as Keras does), else mode='auto' fails.
_HIGHER_IS_BETTER = ("acc", "accuracy", "auc", "precision", "recall", "f1_score", "fbeta_score",
                     "iou", "r2_score")
_LOWER_IS_BETTER = ("loss", "mae", "mse", "mape", "msle", "error", "crossentropy", "hinge",
                    "divergence", "poisson", "logcosh")


def _direction_from_name(monitor):
    name = monitor[4:] if monitor.startswith("val_") else monitor
    if name.endswith(_HIGHER_IS_BETTER):
        return "max"
    if name.endswith(_LOWER_IS_BETTER):
        return "min"
    return None


class MonitorCallback(Callback):
    """What EarlyStopping, ReduceLROnPlateau and ModelCheckpoint share: the monitored name, the
    direction ('min', 'max', or 'auto': from the name or the metric) and min_delta."""

    def __init__(self, monitor="val_loss", mode="auto", baseline=None, min_delta=0):
        super().__init__()
        who = type(self).__name__
        self.monitor = _checks.text(monitor, "monitor", who)
        if not isinstance(mode, str) or mode not in ("auto", "min", "max"):
            raise ValueError(f"{who}: mode must be 'auto', 'min' or 'max', got {mode!r}")
        # Keras keeps 'auto' and decides at the first epoch's end; where the name tells, cnnkit
        # decides now, so `mode` already says which way the callback watches.
        self.mode = _direction_from_name(self.monitor) if mode == "auto" else mode
        self.mode = self.mode or "auto"
        self.best = _checks.number(baseline, "baseline", who, optional=True)
        self.min_delta = abs(_checks.number(min_delta, "min_delta", who))

    def _resolve_mode(self):
        """mode='auto' for a name that does not tell: the model's metric of that name says
        (its `_direction`, 'up' or 'down', as in Keras), else a ValueError as Keras'."""
        if self.mode != "auto":
            return
        name = self.monitor[4:] if self.monitor.startswith("val_") else self.monitor
        for metric in getattr(self.model, "metrics", None) or []:
            direction = getattr(metric, "_direction", None)
            if getattr(metric, "name", None) == name and direction in ("up", "down"):
                self.mode = "max" if direction == "up" else "min"
                return
        raise ValueError(f"{type(self).__name__} callback received monitor={self.monitor}, but "
                         "cnnkit isn't able to automatically determine whether that metric "
                         "should be maximized or minimized. Pass `mode='max'` in order to monitor "
                         "based on the highest metric value, or pass `mode='min'` in order to "
                         "use the lowest value.")

    def _is_improvement(self, value, reference):
        if reference is None:
            return True
        if self.mode == "min":
            return value + self.min_delta < reference
        return value - self.min_delta > reference


class EarlyStopping(MonitorCallback):
    """Stops training when `monitor` has not improved by more than min_delta for `patience`
    epochs; with restore_best_weights the model gets the best epoch's weights back at the end
    of fit (Keras 3: whether or not training stopped early)."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta=min_delta)
        who = "EarlyStopping"
        self.patience = _checks.count(patience, "patience", who)
        self.verbose = _checks.verbose(verbose, who)
        self.baseline = _checks.number(baseline, "baseline", who, optional=True)
        self.restore_best_weights = _checks.flag(restore_best_weights, "restore_best_weights", who)
        self.start_from_epoch = _checks.count(start_from_epoch, "start_from_epoch", who)
        self.best = None  # the baseline is a bar to clear, not a best seen (Keras 3)
        self.wait = self.stopped_epoch = self.best_epoch = 0
        self.best_weights = None

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best, self.best_weights = None, None

    def on_epoch_end(self, epoch, logs=None):
        self._resolve_mode()
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(logs or {})}",
                          stacklevel=2)
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = self.model.get_weights(), epoch
        self.wait += 1
        if self._is_improvement(value, self.best):
            self.best, self.best_epoch = value, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(value, self.baseline):
                self.wait = 0  # only beating both the baseline and the best restarts the count
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print("Restoring model weights from the end of the best epoch: "
                      f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ReduceLROnPlateau(MonitorCallback):
    """Multiplies the learning rate by `factor` (not below min_lr) when `monitor` has not
    improved by more than min_delta for `patience` epochs; after a reduction, `cooldown`
    epochs pass before the count starts again. Adds 'learning_rate' (the rate the epoch ran
    with) to the epoch's logs, as Keras 3."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0, **kwargs):
        who = "ReduceLROnPlateau"
        _checks.no_extra(kwargs, who)
        super().__init__(monitor, mode, min_delta=min_delta)
        factor = _checks.number(factor, "factor", who, low=0.0)
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received "
                             f"factor={factor}")
        self.factor = factor
        self.min_lr = _checks.number(min_lr, "min_lr", who, low=0.0)
        self.patience = _checks.count(patience, "patience", who)
        self.verbose = _checks.verbose(verbose, who)
        self.cooldown = _checks.count(cooldown, "cooldown", who)
        self.cooldown_counter = 0
        self.wait = 0

    def _reset(self):
        self.best, self.cooldown_counter, self.wait = None, 0, 0

    def in_cooldown(self):
        return self.cooldown_counter > 0

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        self._resolve_mode()
        logs = logs if logs is not None else {}
        logs["learning_rate"] = _checks.get_learning_rate(self.model, "ReduceLROnPlateau")
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(f"Learning rate reduction is conditioned on metric `{self.monitor}` "
                          f"which is not available. Available metrics are: {','.join(logs)}.",
                          stacklevel=2)
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(value, self.best):
            self.best, self.wait = value, 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience and self._reduce(epoch):
                self.cooldown_counter, self.wait = self.cooldown, 0

    def _reduce(self, epoch):
        """Lowers the rate unless it is already at min_lr (compared in float32, as Keras keeps
        the rate); True when it did."""
        old = _checks.get_learning_rate(self.model, "ReduceLROnPlateau")
        if not np.float32(old) > np.float32(self.min_lr):
            return False
        new = max(old * self.factor, self.min_lr)
        _checks.set_learning_rate(self.model, new, "ReduceLROnPlateau")
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
        return True
