"""LambdaCallback (hooks given as functions) and TerminateOnNaN, as in Keras 3."""
import math

from . import _checks
from .base import Callback

__all__ = ["LambdaCallback", "TerminateOnNaN"]

_HOOKS = frozenset(h for h in vars(Callback) if h.startswith("on_"))


class LambdaCallback(Callback):
    """LambdaCallback(on_epoch_end=lambda epoch, logs: ...): one-off hooks. Keras' named
    arguments, plus any other hook by its name (on_batch_end, on_test_begin, ...). The functions
    are called as Keras calls them: on_epoch_begin/end(epoch, logs), on_train_begin/end(logs),
    on_train_batch_begin/end(batch, logs=logs)."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None,
                 on_train_end=None, on_train_batch_begin=None, on_train_batch_end=None,
                 **kwargs):
        super().__init__()
        hooks = {"on_epoch_begin": on_epoch_begin, "on_epoch_end": on_epoch_end,
                 "on_train_begin": on_train_begin, "on_train_end": on_train_end,
                 "on_train_batch_begin": on_train_batch_begin,
                 "on_train_batch_end": on_train_batch_end, **kwargs}
        for name, function in hooks.items():
            if name not in _HOOKS:
                raise ValueError(f"LambdaCallback: unknown hook {name!r}; the hooks are "
                                 f"{sorted(_HOOKS)}")
            if function is None:
                continue
            if not callable(function):
                raise TypeError(f"LambdaCallback: {name} must be a function, got {function!r}")
            setattr(self, name, function)


class TerminateOnNaN(Callback):
    """Stops fit when a batch's loss is NaN or infinite, as Keras' TerminateOnNaN; with
    raise_error=True it raises a RuntimeError instead (then on_train_end is not called, so e.g.
    BackupAndRestore keeps its backup). cnnkit's fit already stops by default, and better: before
    the update that would spoil the weights (trainer.py)."""

    def __init__(self, raise_error=False):
        super().__init__()
        self.raise_error = _checks.flag(raise_error, "raise_error", "TerminateOnNaN")

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(loss):
            return
        if self.raise_error:
            raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. Loss value: {loss}. "
                               "Terminating training immediately.")
        print(f"Batch {batch}: Invalid loss, terminating training")
        self.model.stop_training = True
