"""History (every epoch's logs) and the progress bar (ProgbarLogger, Progbar), the two
callbacks fit adds by itself, as in Keras."""
import math
import sys
import time

from .base import Callback

__all__ = ["History", "ProgbarLogger", "Progbar"]


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
        if finalize and self.target is None:  # a stream of unknown length: now it is known
            self.target = current
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
    _chief_only = True  # distributed training: rank 0 alone runs it (cnnkit.distribute)

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
