"""Lookahead: Lookahead-style averaging of the weights (airbench94's "LookaheadState"; Zhang
et al., 2019, "Lookahead Optimizer: k steps forward, 1 step back"). A cnnkit addition: Keras
has no such callback (its optimizers' use_ema keeps an average but never steps back to it
mid-training).

From epoch `start_epoch`, every `every` training steps: the first time, a copy of the weights
is kept (the slow weights); each later time the copy moves toward the weights,
slow = decay * slow + (1 - decay) * weights, and the weights are set to it: the fast weights
explore `every` steps ahead, then step back. At the end of each epoch (step_back_each_epoch,
as airbench) and of fit, the weights are set to the slow ones.

decay is a number, or a function of the training progress (steps done / steps of the whole fit,
0 to 1) giving one: airbench94 uses 0.95**5 * progress**3, little averaging early and more as
the learning rate falls. The steps of the whole fit are its epochs times their steps, or
total_steps when a fit stops early (airbench's 9.9 epochs).

Every weight is averaged, the non-trainable ones (BatchNormalization's moving statistics) too,
as airbench averages the whole state; include_non_trainable=False leaves those alone. The
slow weights are one float32 copy; a step allocates no array.
"""
import numbers

import numpy as np

from . import _checks
from .base import Callback

__all__ = ["Lookahead"]


class Lookahead(Callback):
    def __init__(self, every=5, decay=0.95 ** 5, start_epoch=0, include_non_trainable=True,
                 total_steps=None, step_back_each_epoch=True):
        super().__init__()
        who = "Lookahead"
        if isinstance(every, bool) or not isinstance(every, numbers.Integral) or every < 1:
            raise ValueError(f"{who}: every must be an integer >= 1, got {every!r}")
        if not callable(decay):
            if isinstance(decay, bool) or not isinstance(decay, numbers.Real) or \
                    not 0 <= decay <= 1:
                raise ValueError(f"{who}: decay must be a number in [0, 1] or a function of "
                                 f"the training progress, got {decay!r}")
        if isinstance(start_epoch, bool) or not isinstance(start_epoch, numbers.Integral) or \
                start_epoch < 0:
            raise ValueError(f"{who}: start_epoch must be an integer >= 0, got {start_epoch!r}")
        self.every, self.decay, self.start_epoch = int(every), decay, int(start_epoch)
        self.include_non_trainable = _checks.flag(include_non_trainable,
                                                  "include_non_trainable", who)
        self.step_back_each_epoch = _checks.flag(step_back_each_epoch, "step_back_each_epoch",
                                                 who)
        if total_steps is not None and (isinstance(total_steps, bool) or not isinstance(
                total_steps, numbers.Integral) or total_steps < 1):
            raise ValueError(f"{who}: total_steps must be an integer >= 1, got {total_steps!r}")
        self.total_steps = total_steps
        self.average = None
        self._weights, self._scratch, self._step, self._total, self._epoch = [], [], 0, None, 0

    def _decay_now(self):
        if not callable(self.decay):
            return float(self.decay)
        progress = min(self._step / self._total, 1.0) if self._total else 0.0
        value = float(self.decay(progress))
        if not 0 <= value <= 1:
            raise ValueError(f"Lookahead: decay({progress:.4f}) gave {value}, not a number in "
                             "[0, 1]")
        return value

    def on_train_begin(self, logs=None):
        model = self.model
        self._weights = list(model.weights if self.include_non_trainable else
                             model.trainable_weights)
        steps, epochs = (self.params or {}).get("steps"), (self.params or {}).get("epochs")
        self._total = self.total_steps or (steps * epochs if steps and epochs else None)
        self._step, self.average = 0, None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self._epoch < self.start_epoch or self._step % self.every:
            return
        if self.average is None:  # the slow weights start here
            self.average = [w.copy() for w in self._weights]
            self._scratch = [np.empty_like(w) for w in self._weights]
            return
        decay = np.float32(self._decay_now())
        for kept, weight, scratch in zip(self.average, self._weights, self._scratch):
            kept *= decay
            np.multiply(weight, np.float32(1) - decay, out=scratch)
            kept += scratch
            np.copyto(weight, kept)

    def _step_back(self):
        if self.average is not None:
            for kept, weight in zip(self.average, self._weights):
                np.copyto(weight, kept)

    def on_epoch_end(self, epoch, logs=None):
        if self.step_back_each_epoch:
            self._step_back()

    def on_train_end(self, logs=None):
        self._step_back()
