"""The callback base (Callback, CallbackList), LambdaCallback and TerminateOnNaN: Keras 3's
hook names, aliases and call conventions, and the package keeping every public name."""
import math
import os

import numpy as np
import pytest

from cnnkit import callbacks
from callback_helpers import data, tiny_model

PUBLIC = ["Callback", "CallbackList", "History", "ProgbarLogger", "Progbar", "EarlyStopping",
          "ReduceLROnPlateau", "ModelCheckpoint", "BackupAndRestore", "CSVLogger",
          "LearningRateScheduler", "LambdaCallback", "TerminateOnNaN"]


def test_every_public_name_is_importable_from_the_package():
    for name in PUBLIC:
        assert name in callbacks.__all__ and isinstance(getattr(callbacks, name), type)
    from cnnkit.callbacks import EarlyStopping, ModelCheckpoint  # noqa: F401  the old imports


def test_public_names_match_keras():
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    keras = pytest.importorskip("keras")
    for name in PUBLIC:
        assert hasattr(keras.callbacks, name) or name == "Progbar", name


def test_batch_aliases_are_called_by_the_train_batch_hooks():
    """Keras' Callback.on_train_batch_begin/end call on_batch_begin/end by default."""
    seen = []

    class Old(callbacks.Callback):
        def on_batch_begin(self, batch, logs=None):
            seen.append(("begin", batch))

        def on_batch_end(self, batch, logs=None):
            seen.append(("end", batch, sorted(logs)))

    x, y = data(8)
    tiny_model().fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False, callbacks=[Old()])
    assert seen == [("begin", 0), ("end", 0, ["loss"]), ("begin", 1), ("end", 1, ["loss"])]


def test_lambda_callback_hooks_and_keras_call_conventions():
    events = []
    cb = callbacks.LambdaCallback(
        on_train_begin=lambda logs: events.append("train_begin"),
        on_epoch_begin=lambda epoch, logs: events.append(f"epoch_begin {epoch}"),
        on_epoch_end=lambda epoch, logs: events.append(f"epoch_end {epoch} {sorted(logs)}"),
        on_train_batch_begin=lambda batch, logs: events.append(f"batch_begin {batch}"),
        # Keras passes logs to the batch hooks by keyword
        on_train_batch_end=lambda batch, **kw: events.append(f"batch_end {batch} {sorted(kw)}"),
        on_train_end=lambda logs: events.append("train_end"))
    x, y = data(8)
    tiny_model().fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[cb])
    assert events == ["train_begin", "epoch_begin 0", "batch_begin 0", "batch_end 0 ['logs']",
                      "epoch_end 0 ['loss']", "epoch_begin 1", "batch_begin 0",
                      "batch_end 0 ['logs']", "epoch_end 1 ['loss']", "train_end"]


def test_lambda_callback_takes_keras_aliases_and_other_hooks_by_name():
    seen = []
    cb = callbacks.LambdaCallback(on_batch_end=lambda batch, logs: seen.append(batch),
                                  on_test_begin=lambda logs: seen.append("test"))
    x, y = data(8)
    tiny_model().fit(x, y, batch_size=4, epochs=1, verbose=0, validation_data=(x, y),
                     callbacks=[cb])
    assert seen == [0, 1, "test"]


def test_lambda_callback_bad_input():
    with pytest.raises(ValueError, match="on_epoch_ends"):
        callbacks.LambdaCallback(on_epoch_ends=print)
    with pytest.raises(TypeError, match="on_epoch_end must be a function"):
        callbacks.LambdaCallback(on_epoch_end=3)


def test_callback_list_gives_each_hook_a_copy_of_the_logs():
    """A callback adding a key (as ReduceLROnPlateau adds 'learning_rate') shows it to the
    callbacks after it, but not to the caller's dict."""
    seen = []
    adder = callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: logs.update(extra=1.0))
    reader = callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(dict(logs)))
    cbs = callbacks.CallbackList([adder, reader])
    mine = {"loss": 0.5}
    cbs.on_epoch_end(0, mine)
    assert seen == [{"loss": 0.5, "extra": 1.0}] and mine == {"loss": 0.5}
    cbs.on_train_begin()  # no logs: the callbacks get {} as in Keras
    reader.on_train_begin = lambda logs: seen.append(logs)
    cbs.on_train_begin()
    assert seen[-1] == {}


def test_callback_list_adds_history_and_then_the_progress_bar_as_keras():
    cbs = callbacks.CallbackList([callbacks.TerminateOnNaN()], add_history=True, add_progbar=True)
    kinds = [type(c).__name__ for c in cbs.callbacks]
    assert kinds == ["TerminateOnNaN", "History", "ProgbarLogger"]


def test_terminate_on_nan_stops_or_raises(capsys):
    model = tiny_model()
    cb = callbacks.TerminateOnNaN()
    cb.set_model(model)
    cb.on_train_batch_end(3, {"loss": 0.5})
    assert not model.stop_training
    cb.on_train_batch_end(3, {"loss": math.inf})
    assert model.stop_training
    assert capsys.readouterr().out == "Batch 3: Invalid loss, terminating training\n"
    strict = callbacks.TerminateOnNaN(raise_error=True)
    strict.set_model(model)
    with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch 2"):
        strict.on_train_batch_end(2, {"loss": float("nan")})
    with pytest.raises(TypeError, match="raise_error"):
        callbacks.TerminateOnNaN(raise_error="yes")


def test_terminate_on_nan_raise_error_keeps_on_train_end_from_running():
    x, y = data(8)
    x[:] = np.nan
    ended = []
    with pytest.warns(RuntimeWarning):
        with pytest.raises(RuntimeError, match="NaN or Inf loss"):
            tiny_model().fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[
                callbacks.TerminateOnNaN(raise_error=True),
                callbacks.LambdaCallback(on_train_end=lambda logs: ended.append(1))])
    assert ended == []


def test_history_records_each_epoch():
    x, y = data(8)
    model = tiny_model(metrics=["accuracy"])
    history = model.fit(x, y, batch_size=4, epochs=3, verbose=0)
    assert history.epoch == [0, 1, 2] and model.history is history
    assert sorted(history.history) == ["accuracy", "loss"]
    assert all(len(v) == 3 for v in history.history.values())
