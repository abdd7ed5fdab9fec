"""Callbacks, as keras.callbacks: hooks into fit/evaluate/predict, History, EarlyStopping,
ModelCheckpoint and the progress bar (ProgbarLogger, Progbar).

Hooks receive Keras' arguments: epochs and batches are 0-based; `logs` is a dict of floats
(running means of the loss and metrics during an epoch; at its end, the epoch's values and the
val_ ones).
"""
import math
import os
import sys
import time
import warnings

__all__ = ["Callback", "CallbackList", "History", "ProgbarLogger", "Progbar", "EarlyStopping",
           "ModelCheckpoint", "LambdaCallback", "TerminateOnNaN"]


class Callback:
    def __init__(self):
        self.model, self.params = None, {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_train_batch_begin(self, batch, logs=None): pass
    def on_train_batch_end(self, batch, logs=None): pass
    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass


class CallbackList(Callback):
    """Calls each hook on every callback in turn; adds History and the progress bar as Keras'
    fit does."""

    def __init__(self, callbacks=None, add_history=False, add_progbar=False, model=None, **params):
        super().__init__()
        if isinstance(callbacks, Callback):
            raise TypeError("callbacks must be a list of Callback objects, e.g. callbacks=[cb]")
        self.callbacks = list(callbacks or [])
        for c in self.callbacks:
            if not isinstance(c, Callback):
                raise TypeError(f"callbacks must be a list of cnnkit.callbacks.Callback objects, "
                                f"got {type(c).__name__} ({c!r})")
        if add_progbar and not any(isinstance(c, ProgbarLogger) for c in self.callbacks):
            self.callbacks.append(ProgbarLogger())
        self.history = None
        if add_history:
            self.history = next((c for c in self.callbacks if isinstance(c, History)), None)
            if self.history is None:
                self.history = History()
                self.callbacks.append(self.history)
        if model is not None:
            self.set_model(model)
        self.set_params(params)

    def set_model(self, model):
        super().set_model(model)
        for c in self.callbacks:
            c.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        for c in self.callbacks:
            c.set_params(params)

    def _call(self, hook, *args):
        for c in self.callbacks:
            getattr(c, hook)(*args)


def _forward(hook):
    def call(self, *args):
        self._call(hook, *args)
    call.__name__ = hook
    return call


for _hook in [h for h in vars(Callback) if h.startswith("on_")]:
    setattr(CallbackList, _hook, _forward(_hook))


class History(Callback):
    """Records every epoch's logs: history.history['loss'][epoch], history.epoch."""

    def __init__(self):
        super().__init__()
        self.history, self.epoch = {}, []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        if self.model is not None:
            self.model.history = self


class LambdaCallback(Callback):
    """Callback(on_epoch_end=lambda epoch, logs: ...), for one-off hooks."""

    def __init__(self, **hooks):
        super().__init__()
        for name, function in hooks.items():
            if not name.startswith("on_") or not hasattr(Callback, name):
                raise ValueError(f"LambdaCallback: unknown hook {name!r}")
            setattr(self, name, function)


class TerminateOnNaN(Callback):
    """Stops fit when the loss becomes NaN or infinite, as Keras' TerminateOnNaN. cnnkit's fit
    already does this by default, and better: it stops before the update that would spoil the
    weights (trainer.py). This class is here for Keras programs that pass it."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss) and self.model is not None:
            self.model.stop_training = True


# ---------------------------------------------------------------- progress bar

class Progbar:
    """Keras' progress bar: `12/782 [>....] - ETA: 9s - loss: 1.2345 - accuracy: 0.5000`,
    rewritten in place on a terminal (a line per update elsewhere would flood a log file, so
    there only the final line is printed). verbose=2 prints the final line only, in short."""

    def __init__(self, target, width=30, verbose=1, interval=0.05, unit_name="step", file=None):
        self.target, self.width, self.verbose = target, width, verbose
        self.interval, self.unit_name = interval, unit_name
        self.file = file or sys.stdout
        self._dynamic = (getattr(self.file, "isatty", lambda: False)() or "ipykernel" in sys.modules)
        self._values = {}
        self._start = time.time()
        self._last_update = 0.0
        self._total_width = 0
        self._seen = 0

    def update(self, current, values=None, finalize=None):
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        self._values.update(values or {})
        self._seen = current
        now = time.time()
        if self.verbose == 1 and (self._dynamic or finalize):
            if not finalize and now - self._last_update < self.interval:
                return  # at most one line per interval: printing costs more than a small step
            self._write_line(current, now, finalize)
            self._last_update = now
        elif self.verbose == 2 and finalize:
            self._write_short(current, now)

    def _metrics(self):
        parts = []
        for key, value in self._values.items():
            value = float(value)
            parts.append(f" - {key}: {value:.4f}" if abs(value) > 1e-3 else f" - {key}: {value:.4e}")
        return "".join(parts)

    def _per_unit(self, current, now):
        per = (now - self._start) / max(current, 1)
        if per >= 1:
            return f" {per:.0f}s/{self.unit_name}"
        if per >= 1e-3:
            return f" {per * 1e3:.0f}ms/{self.unit_name}"
        return f" {per * 1e6:.0f}us/{self.unit_name}"

    def _bar(self, current):
        if self.target is None:
            return f"{current:7d}/Unknown"
        digits = int(math.log10(self.target)) + 1 if self.target > 0 else 1
        done = int(self.width * current / self.target) if self.target else self.width
        bar = "=" * max(done - 1, 0) + (">" if current < self.target else "=") * (done > 0)
        return f"{current:{digits}d}/{self.target} [{bar}{'.' * (self.width - len(bar))}]"

    def _write_line(self, current, now, finalize):
        line = self._bar(current)
        if finalize:
            line += f" - {now - self._start:.0f}s{self._per_unit(current, now)}"
        else:
            eta = (now - self._start) / max(current, 1) * (self.target - current) if self.target else 0
            line += " - ETA: " + (f"{eta // 3600:.0f}:{eta % 3600 // 60:02.0f}:{eta % 60:02.0f}"
                                  if eta > 3600 else f"{eta // 60:.0f}:{eta % 60:02.0f}"
                                  if eta > 60 else f"{eta:.0f}s")
        line += self._metrics()
        padding = " " * max(self._total_width - len(line), 0)
        self._total_width = len(line)
        prefix = "\r" if self._dynamic else ""
        self.file.write(prefix + line + padding + ("\n" if finalize else ""))
        self.file.flush()

    def _write_short(self, current, now):
        elapsed = now - self._start
        digits = int(math.log10(self.target)) + 1 if self.target else 1
        line = f"{current:{digits}d}/{self.target} - {elapsed:.0f}s{self._metrics()}"
        line += f" - {elapsed:.0f}s/epoch -{self._per_unit(current, now)}"
        self.file.write(line + "\n")
        self.file.flush()


class ProgbarLogger(Callback):
    """Prints 'Epoch 3/10' and a Progbar per epoch (fit), or one for evaluate/predict, as
    params['verbose'] asks: 1 the bar, 2 a line per epoch, 0 nothing."""

    def __init__(self):
        super().__init__()
        self.progbar = None

    def _verbose(self):
        return self.params.get("verbose", 1)

    def _start(self):
        self.progbar = Progbar(self.params.get("steps"), verbose=self._verbose())

    def on_epoch_begin(self, epoch, logs=None):
        if self._verbose():
            print(f"Epoch {epoch + 1}/{self.params.get('epochs')}", flush=True)
        self._start()

    def on_train_batch_end(self, batch, logs=None):
        self.progbar.update(batch + 1, logs, finalize=False)

    def on_epoch_end(self, epoch, logs=None):
        self.progbar.update(self.progbar._seen, logs, finalize=True)

    def on_test_begin(self, logs=None):
        if self.params.get("in_fit"):
            return  # validation inside fit shows no bar of its own, as in Keras
        self._start()

    def on_test_batch_end(self, batch, logs=None):
        if not self.params.get("in_fit"):
            self.progbar.update(batch + 1, logs, finalize=False)

    def on_test_end(self, logs=None):
        if not self.params.get("in_fit"):
            self.progbar.update(self.progbar._seen, logs, finalize=True)

    def on_predict_begin(self, logs=None):
        self._start()

    def on_predict_batch_end(self, batch, logs=None):
        self.progbar.update(batch + 1, finalize=False)

    def on_predict_end(self, logs=None):
        self.progbar.update(self.progbar._seen, finalize=True)


# ---------------------------------------------------------------- monitoring a value

def _monitor_mode(monitor, mode, who):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        name = monitor[4:] if monitor.startswith("val_") else monitor
        mode = "max" if name.endswith(("acc", "accuracy", "auc")) else "min"
    return mode


class EarlyStopping(Callback):
    """Stops training when `monitor` has not improved by more than min_delta for `patience`
    epochs; with restore_best_weights the model gets the best epoch's weights back."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor, self.patience, self.verbose = monitor, int(patience), verbose
        self.mode = _monitor_mode(monitor, mode, "EarlyStopping")
        self.min_delta = abs(float(min_delta))
        self.baseline, self.restore_best_weights = baseline, restore_best_weights
        self.start_from_epoch = start_from_epoch

    def _improved(self, value, reference):
        if reference is None:
            return True
        if self.mode == "min":
            return value + self.min_delta < reference
        return value - self.min_delta > reference

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best, self.best_weights = None, None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(f"EarlyStopping: the monitored value {self.monitor!r} is not in the "
                          f"logs (available: {sorted(logs or {})})", stacklevel=2)
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self._improved(value, self.best):
            self.best, self.best_epoch = value, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._improved(value, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                if self.verbose:
                    print("Restoring model weights from the end of the best epoch: "
                          f"{self.best_epoch + 1}.")
                self.model.set_weights(self.best_weights)

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")


class ModelCheckpoint(Callback):
    """Saves the model (or its weights) after each epoch to filepath, formatted with the
    epoch (1-based) and the logs: 'ckpt-{epoch:02d}-{val_loss:.2f}.keras'."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__()
        if save_freq != "epoch":
            raise ValueError("ModelCheckpoint: only save_freq='epoch' is supported")
        self.filepath, self.monitor, self.verbose = os.fspath(filepath), monitor, verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self.mode = _monitor_mode(monitor, mode, "ModelCheckpoint")
        self.best = initial_value_threshold

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if self.save_best_only:
            value = logs.get(self.monitor)
            if value is None:
                warnings.warn(f"ModelCheckpoint: can save the best model only with "
                              f"{self.monitor!r} in the logs (available: {sorted(logs)})",
                              stacklevel=2)
                return
            better = self.best is None or (value < self.best if self.mode == "min" else value > self.best)
            if not better:
                if self.verbose:
                    print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
            if self.verbose:
                previous = "inf" if self.best is None else f"{self.best:.5f}"
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {previous} to "
                      f"{value:.5f}, saving model to {path}")
            self.best = value
        elif self.verbose:
            print(f"\nEpoch {epoch + 1}: saving model to {path}")
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        (self.model.save_weights if self.save_weights_only else self.model.save)(path)

