"""Saving during fit: ModelCheckpoint (the model or its weights, every epoch or every n
batches, optionally only when the monitored value improves) and BackupAndRestore (the whole
training state, so that an interrupted fit, run again, goes on exactly where it stopped).

Every file is written atomically: cnnkit.saving writes a temporary file in the same folder and
moves it over the old one (os.replace), so a crash mid-save never leaves a damaged file.
"""
import os
import re
import string
import warnings

from . import _checks
from .base import Callback
from .monitoring import MonitorCallback

__all__ = ["ModelCheckpoint", "BackupAndRestore", "FilepathTemplateError"]


class _BatchCounter:
    """Keras' count of batches since the last save (save_freq an integer): a batch index not
    above the last one seen starts a new epoch."""

    def __init__(self, every):
        self.every, self.seen, self.last = every, 0, None

    def due(self, batch):
        added = batch + 1 if self.last is None or batch <= self.last else batch - self.last
        self.seen += added
        self.last = batch
        if self.seen >= self.every:
            self.seen = 0
            return True
        return False


class FilepathTemplateError(KeyError, ValueError):
    """A filepath template naming a value the logs do not hold: a KeyError as Keras raises,
    and a ValueError like cnnkit's other misuses; its message is printed as it is."""

    def __str__(self):
        return self.args[0]


class ModelCheckpoint(MonitorCallback):
    """Saves the model (filepath ending in '.keras' or '.h5') or its weights
    (save_weights_only=True, filepath ending in '.weights.h5') every epoch, or every save_freq
    batches. filepath is formatted with epoch (1-based), batch (1-based, with an integer
    save_freq) and the logs: 'ckpt_{epoch:02d}_{val_loss:.2f}.keras'. The files are cnnkit's
    own format whatever the extension (Keras' extensions are required so that Keras programs
    keep their names)."""
    _chief_only = True  # distributed training: rank 0 alone runs it (cnnkit.distribute)

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        who = "ModelCheckpoint"
        initial_value_threshold = _checks.number(initial_value_threshold,
                                                 "initial_value_threshold", who, optional=True)
        super().__init__(monitor, mode, baseline=initial_value_threshold)
        if not isinstance(filepath, (str, os.PathLike)):
            raise TypeError(f"{who}: filepath must be a path, got {filepath!r}")
        self.filepath = os.fspath(filepath)
        self.verbose = _checks.verbose(verbose, who)
        self.save_best_only = _checks.flag(save_best_only, "save_best_only", who)
        self.save_weights_only = _checks.flag(save_weights_only, "save_weights_only", who)
        self.save_freq = _checks.save_freq(save_freq, who)
        if self.save_weights_only and not self.filepath.endswith(".weights.h5"):
            raise ValueError("When using `save_weights_only=True` in `ModelCheckpoint`, the "
                             "filepath provided must end in `.weights.h5` (Keras weights format). "
                             f"Received: filepath={self.filepath}")
        if not self.save_weights_only and not self.filepath.endswith((".keras", ".h5")):
            raise ValueError("The filepath provided must end in `.keras` (Keras model format). "
                             f"Received: filepath={self.filepath}")
        self._check_template()
        self._counter = None if self.save_freq == "epoch" else _BatchCounter(self.save_freq)
        self._current_epoch = 0

    def _check_template(self):
        """A malformed template ('{epoch:02d' unclosed) fails now, not after an epoch."""
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(self.filepath) if f is not None]
        except ValueError as error:
            raise ValueError(f'ModelCheckpoint: the filepath template "{self.filepath}" is not a '
                             f"valid format string: {error}") from None
        if any(f == "" or f.isdigit() for f in fields):
            raise ValueError(f'ModelCheckpoint: the filepath template "{self.filepath}" has a '
                             "positional field {}; name the value, e.g. {epoch:02d}")

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self._counter is not None and self._counter.due(batch):
            self._save(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _path(self, epoch, batch, logs):
        values = dict(logs)
        if batch is not None and "batch" not in logs:
            values["batch"] = batch + 1
        values["epoch"] = epoch + 1
        try:
            return self.filepath.format(**values)
        except KeyError as error:
            raise FilepathTemplateError(
                f'Failed to format this callback filepath: "{self.filepath}". Reason: the '
                f"template names {error}, which is not logged here; the values are "
                f"{sorted(values)}" + ("" if batch is None else
                                       " (a save every save_freq batches sees the batch logs, "
                                       "without val_ values)")) from None
        except (ValueError, TypeError) as error:
            raise ValueError(f'Failed to format this callback filepath: "{self.filepath}". '
                             f"Reason: {error}") from None

    def _should_save(self, epoch, logs, path):
        if not self.save_best_only:
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: saving model to {path}")
            return True
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.", stacklevel=3)
            return True  # Keras 3 saves then
        self._resolve_mode()
        best = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(value, self.best):
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to "
                      f"{value:.5f}, saving model to {path}")
            self.best = value
            return True
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best}")
        return False

    def _save(self, epoch, batch, logs):
        logs = logs or {}
        path = self._path(epoch, batch, logs)
        if not self._should_save(epoch, logs, path):
            return
        if os.path.isdir(path):
            raise IsADirectoryError("Please specify a non-directory filepath for ModelCheckpoint. "
                                    f"Filepath used is an existing directory: {path}")
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path, overwrite=True)
        else:
            self.model.save(path, overwrite=True)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: finished saving model to {path}")


# ---------------------------------------------------------------- backup and restore

_BACKUP = re.compile(r"^backup-e(\d+)-b(\d+)\.keras$")


class BackupAndRestore(Callback):
    """Backs up the whole training state in backup_dir at the end of every epoch (or every
    save_freq batches); a fit started again with the same backup_dir after an interruption
    restores it and goes on from there: weights, optimizer state (iterations, moments, learning
    rate), the shuffling and dropout generators, and the epoch and batch. The final weights then
    equal those of an uninterrupted run exactly (cnnkit's training is deterministic for a given
    number of threads).

    Each backup is one file, backup-e<epoch>-b<batch>.keras (the position to resume at), written
    atomically; older ones are deleted after it (double_checkpoint=True keeps the one before,
    used when the latest cannot be read). delete_checkpoint=True removes the backups when fit
    ends normally (Keras removes the whole folder; cnnkit removes its own files, and the folder
    when that leaves it empty).

    Resuming mid-epoch (an integer save_freq) runs the rest of that epoch only: its logged loss
    and metrics are the means over the batches run after the restart (the weights are exact).
    A backup saved at batch b of epoch e holds the shuffling generator as it was when epoch e
    began, so the resumed fit draws e's order again and skips its first b batches.

    How it reaches fit: on_train_begin sets model._resume_at = (epoch, batch), which fit reads
    once its callbacks' on_train_begin have run (Keras' model._initial_epoch, with the batch).
    The file is read with cnnkit.saving's _read and _set_weights (the format's own checks).
    """
    _chief_only = True  # distributed training: rank 0 alone runs it (cnnkit.distribute)

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False,
                 delete_checkpoint=True):
        super().__init__()
        who = "BackupAndRestore"
        if not backup_dir:
            raise ValueError("Empty `backup_dir` argument passed")
        if not isinstance(backup_dir, (str, os.PathLike)):
            raise TypeError(f"{who}: backup_dir must be a path, got {backup_dir!r}")
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = _checks.save_freq(save_freq, who)
        self.double_checkpoint = _checks.flag(double_checkpoint, "double_checkpoint", who)
        self.delete_checkpoint = _checks.flag(delete_checkpoint, "delete_checkpoint", who)
        self._counter = None
        self._current_epoch = 0
        self._epoch_start_shuffle = None

    # ------------------------------------------------------------ the files
    def _backups(self):
        """[(epoch, batch, path)] of the backups in backup_dir, the latest first."""
        if not os.path.isdir(self.backup_dir):
            return []
        found = []
        for name in os.listdir(self.backup_dir):
            match = _BACKUP.match(name)
            if match:
                found.append((int(match[1]), int(match[2]), os.path.join(self.backup_dir, name)))
        return sorted(found, reverse=True)

    def _save(self, epoch, batch, shuffle_state):
        """Backs up the training state to resume at (epoch, batch), with the shuffling
        generator in `shuffle_state` (the state that draws that epoch's order)."""
        os.makedirs(self.backup_dir, exist_ok=True)
        path = os.path.join(self.backup_dir, f"backup-e{epoch:06d}-b{batch:06d}.keras")
        generator = self.model._shuffle_generator()
        current = generator.bit_generator.state
        generator.bit_generator.state = shuffle_state  # in place: fit holds this generator
        try:
            # cnnkit's own format whatever the name: a backup is for this callback alone, and
            # keeps everything (generators included) without h5py.
            from .. import saving
            saving.save_model(self.model, path, overwrite=True, format="cnnkit")
        finally:
            generator.bit_generator.state = current
        keep = 2 if self.double_checkpoint else 1
        for _, _, old in [b for b in self._backups() if b[2] != path][keep - 1:]:
            os.remove(old)

    def _restore(self, path):
        """Puts the training state of the backup at `path` into the model."""
        from .. import saving
        config, weights, slots = saving._read(path)
        if config.get("kind") != "model":
            raise ValueError(f"{path} is not a BackupAndRestore backup")
        saving._set_weights(self.model, config, weights, path)
        state = config.get("state") or {}
        self.model.set_state({"shuffle": None, "layers": state.get("layers", [])})
        if state.get("shuffle") is not None:
            # In place: fit drew this generator before on_train_begin and holds it.
            self.model._shuffle_generator().bit_generator.state = state["shuffle"]
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and "optimizer_iterations" in config:
            optimizer.set_state(config["optimizer_iterations"], slots,
                                self.model.trainable_weights)
            rate = (config.get("compile") or {}).get("optimizer", {}).get("config", {}).get(
                "learning_rate")
            if isinstance(rate, (int, float)) and not isinstance(rate, bool):
                try:
                    optimizer.learning_rate = float(rate)  # e.g. lowered by ReduceLROnPlateau
                except TypeError:
                    pass  # a schedule: its rate follows from the restored iterations

    # ------------------------------------------------------------ hooks
    def on_train_begin(self, logs=None):
        if not getattr(self.model, "built", False):
            raise ValueError("To use the BackupAndRestore callback, your model must be built "
                             f"before you call `fit()`. Model {self.model} is unbuilt.")
        self._counter = None if self.save_freq == "epoch" else _BatchCounter(self.save_freq)
        backups = self._backups()
        candidates = backups[:2] if self.double_checkpoint else backups[:1]
        for i, (epoch, batch, path) in enumerate(candidates):
            try:
                self._restore(path)
            except (OSError, ValueError):
                if i + 1 < len(candidates):
                    warnings.warn(f"BackupAndRestore: the latest backup {path} cannot be read; "
                                  "restoring the one before it", stacklevel=2)
                    continue
                raise
            steps = (self.params or {}).get("steps")
            if steps is not None and batch >= steps:
                raise ValueError(f"BackupAndRestore: the backup {path} resumes at batch {batch} "
                                 f"of epoch {epoch + 1}, but this fit's epochs have {steps} "
                                 "batch(es): fit's data or batch_size changed since the backup")
            self.model._resume_at = (epoch, batch)  # trainer.fit starts there
            return

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch
        if self._counter is not None:
            self._epoch_start_shuffle = self.model._shuffle_generator().bit_generator.state

    def on_train_batch_end(self, batch, logs=None):
        if self._counter is None or not self._counter.due(batch):
            return
        if batch + 1 == (self.params or {}).get("steps"):
            # The epoch's last batch: resume at the next epoch, whose order the generator's
            # state now draws (a resumed epoch of no batches would log no loss).
            self._save(self._current_epoch + 1, 0,
                       self.model._shuffle_generator().bit_generator.state)
        else:
            self._save(self._current_epoch, batch + 1, self._epoch_start_shuffle)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch + 1, 0, self.model._shuffle_generator().bit_generator.state)

    def on_train_end(self, logs=None):
        if not self.delete_checkpoint:
            return
        for _, _, path in self._backups():
            os.remove(path)
        try:
            os.rmdir(self.backup_dir)
        except OSError:
            pass  # not empty (other files) or already gone
