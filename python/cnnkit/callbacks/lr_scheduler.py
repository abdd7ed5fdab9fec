"""LearningRateScheduler: sets the learning rate at the start of every epoch from a function of
the epoch (and the current rate), as keras.callbacks.LearningRateScheduler."""
import inspect
import math

import numpy as np

from . import _checks
from .base import Callback

__all__ = ["LearningRateScheduler"]


def _takes_two_arguments(function):
    """Whether schedule(epoch, lr) can be called; None when Python cannot tell (a builtin)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(0, 0.0)
        return True
    except TypeError:
        return False


class LearningRateScheduler(Callback):
    """schedule(epoch, lr) -> the new rate (epoch 0-based, lr the current rate, a float), or
    schedule(epoch) -> the new rate (Keras' older form). The rate must be a float, as in Keras
    (an int is a ValueError there too). Adds 'learning_rate' to each epoch's logs."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        who = "LearningRateScheduler"
        if not callable(schedule):
            raise TypeError(f"{who}: schedule must be a function schedule(epoch, lr) or "
                            f"schedule(epoch), got {schedule!r}")
        self.schedule = schedule
        self.verbose = _checks.verbose(verbose, who)
        self._two_arguments = _takes_two_arguments(schedule)

    def _new_rate(self, epoch):
        who = "LearningRateScheduler"
        current = _checks.get_learning_rate(self.model, who)
        if self._two_arguments:
            rate = self.schedule(epoch, current)
        elif self._two_arguments is False:
            rate = self.schedule(epoch)
        else:
            try:  # Keras' own way, for a callable whose signature Python cannot read
                rate = self.schedule(epoch, current)
            except TypeError:
                rate = self.schedule(epoch)
        if not isinstance(rate, (float, np.floating)):
            raise ValueError(f"The output of the `schedule` function should be a float. Got: "
                             f"{rate!r} ({type(rate).__name__}); {who} takes a Python or NumPy "
                             "float, as Keras does")
        if not math.isfinite(rate) or rate < 0:
            raise ValueError(f"{who}: the schedule returned {rate!r} for epoch {epoch}; a "
                             "learning rate must be a finite number 0 or more")
        return rate

    def on_epoch_begin(self, epoch, logs=None):
        rate = self._new_rate(epoch)
        _checks.set_learning_rate(self.model, float(rate), "LearningRateScheduler")
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {rate}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = _checks.get_learning_rate(self.model, "LearningRateScheduler")
