"""The callbacks that write files: CSVLogger, ModelCheckpoint and BackupAndRestore. Contents and
names as Keras 3 writes them, atomic writes, and a resumed fit that ends with exactly the
weights of an uninterrupted one."""
import csv
import os

import numpy as np
import pytest

from cnnkit import callbacks
from cnnkit.callbacks import _files
from cnnkit.layers import Dense, Input
from cnnkit.models import Sequential, load_model
from cnnkit.utils import set_random_seed
from callback_helpers import FakeModel, data, tiny_model


def keras_module():
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    return pytest.importorskip("keras")


def no_temporary_files(folder):
    return not [n for n in os.listdir(folder) if n.endswith(".tmp")]


# ---------------------------------------------------------------- CSVLogger

def test_csv_logger_columns_and_values(tmp_path):
    path = tmp_path / "log.csv"
    x, y = data(8)
    history = tiny_model(metrics=["accuracy"]).fit(
        x, y, batch_size=4, epochs=3, verbose=0, validation_data=(x, y),
        callbacks=[callbacks.CSVLogger(path)])
    text = path.read_bytes().decode()
    assert text.count("\r\n") == 4  # header and a line per epoch, excel's line ends
    rows = list(csv.reader(text.splitlines()))
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [int(r[0]) for r in rows[1:]] == [0, 1, 2]
    for i, key in enumerate(rows[0][1:], start=1):
        assert [float(r[i]) for r in rows[1:]] == history.history[key]
    assert no_temporary_files(tmp_path)


def test_csv_logger_without_validation_keeps_keras_val_columns(tmp_path):
    path = tmp_path / "log.tsv"
    x, y = data(8)
    tiny_model().fit(x, y, batch_size=4, epochs=2, verbose=0,
                     callbacks=[callbacks.CSVLogger(str(path), separator="\t")])
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    assert rows[0] == ["epoch", "loss", "val_loss"]
    assert [r[2] for r in rows[1:]] == ["NA", "NA"]


def test_csv_logger_append_continues_and_overwrite_restarts(tmp_path):
    path = tmp_path / "sub" / "log.csv"
    x, y = data(8)
    model = tiny_model()
    model.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.CSVLogger(path)])
    model.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.CSVLogger(path, append=True)])
    lines = path.read_text().splitlines()
    assert len(lines) == 5 and lines[0].startswith("epoch") and lines[3].startswith("0,")
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.CSVLogger(path)])
    assert len(path.read_text().splitlines()) == 2


def test_csv_logger_a_failed_write_leaves_whole_lines(tmp_path, monkeypatch):
    path = tmp_path / "log.csv"
    cb = callbacks.CSVLogger(path)
    cb.on_train_begin()
    cb.on_epoch_end(0, {"loss": 0.5})
    before = path.read_bytes()

    def crash(fd):
        raise OSError("disk gone")
    monkeypatch.setattr(_files.os, "fsync", crash)
    with pytest.raises(OSError, match="disk gone"):
        cb.on_epoch_end(1, {"loss": 0.25})
    assert path.read_bytes() == before and before.endswith(b"\r\n")
    assert no_temporary_files(tmp_path)
    monkeypatch.undo()
    cb.on_epoch_end(1, {"loss": 0.25})  # and the next epoch's line follows whole lines
    assert path.read_bytes() == before + b"1,0.25,NA\r\n"


def test_csv_logger_bad_arguments():
    with pytest.raises(TypeError, match="filename"):
        callbacks.CSVLogger(3)
    with pytest.raises(TypeError, match="separator"):
        callbacks.CSVLogger("a.csv", separator=";;")
    with pytest.raises(TypeError, match="append"):
        callbacks.CSVLogger("a.csv", append="yes")


def test_csv_logger_writes_what_keras_writes(tmp_path):
    keras = keras_module()
    epochs = [{"loss": 0.5, "accuracy": 0.25, "learning_rate": 0.001},
              {"loss": 0.125, "accuracy": 0.75, "learning_rate": 0.0005},
              {"loss": 1 / 3, "accuracy": 2 / 3, "learning_rate": 1e-7}]
    for append in (False, True):
        contents = []
        for name, cls in (("ours", callbacks.CSVLogger), ("keras", keras.callbacks.CSVLogger)):
            path = tmp_path / f"{name}.csv"
            for _ in range(2 if append else 1):
                cb = cls(str(path), separator=";", append=append)
                cb.on_train_begin({})
                for epoch, logs in enumerate(epochs):
                    cb.on_epoch_end(epoch, dict(logs))
                cb.on_train_end({})
            contents.append(path.read_bytes())
        assert contents[0] == contents[1]


# ---------------------------------------------------------------- ModelCheckpoint

def test_checkpoint_names_from_epoch_and_logs(tmp_path):
    x, y = data(8)
    model = tiny_model()
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0, validation_data=(x, y),
                        callbacks=[callbacks.ModelCheckpoint(
                            str(tmp_path / "ckpt_{epoch:02d}_{val_loss:.2f}.keras"))])
    expected = sorted(f"ckpt_{e + 1:02d}_{v:.2f}.keras"
                      for e, v in enumerate(history.history["val_loss"]))
    assert sorted(os.listdir(tmp_path)) == expected
    restored = load_model(tmp_path / expected[-1])
    np.testing.assert_array_equal(restored.predict(x), model.predict(x))


def test_checkpoint_every_n_batches_names_the_batch(tmp_path):
    x, y = data(12)
    tiny_model().fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[
        callbacks.ModelCheckpoint(str(tmp_path / "w_{epoch}_{batch}.weights.h5"),
                                  save_weights_only=True, save_freq=2)])
    # 3 batches an epoch, a save every 2 batches counted across epochs (Keras' counter)
    assert sorted(os.listdir(tmp_path)) == ["w_1_2.weights.h5", "w_2_1.weights.h5",
                                             "w_2_3.weights.h5"]


def test_checkpoint_best_only_threshold_and_messages(tmp_path, capsys):
    cb = callbacks.ModelCheckpoint(str(tmp_path / "best_{epoch}.keras"), monitor="val_loss",
                                   save_best_only=True, initial_value_threshold=0.8, verbose=1)
    saved = []
    cb.set_model(type("M", (), {"save": lambda self, p, overwrite: saved.append(p)})())
    for epoch, value in enumerate([0.9, 0.7, 0.75, 0.6]):
        cb.on_epoch_begin(epoch)
        cb.on_epoch_end(epoch, {"val_loss": value})
    assert [os.path.basename(p) for p in saved] == ["best_2.keras", "best_4.keras"]
    out = capsys.readouterr().out
    assert "\nEpoch 1: val_loss did not improve from 0.80000\n" in out
    assert (f"\nEpoch 2: val_loss improved from 0.80000 to 0.70000, saving model to "
            f"{tmp_path / 'best_2.keras'}\n") in out
    assert f"\nEpoch 4: finished saving model to {tmp_path / 'best_4.keras'}\n" in out


def test_checkpoint_missing_monitor_warns_and_saves_as_keras(tmp_path):
    cb = callbacks.ModelCheckpoint(str(tmp_path / "m.keras"), monitor="val_loss",
                                   save_best_only=True)
    saved = []
    cb.set_model(type("M", (), {"save": lambda self, p, overwrite: saved.append(p)})())
    with pytest.warns(UserWarning, match="Can save best model only with val_loss available"):
        cb.on_epoch_end(0, {"loss": 1.0})
    assert len(saved) == 1


def test_checkpoint_template_naming_a_missing_key_fails_at_the_first_save(tmp_path):
    x, y = data(8)
    cb = callbacks.ModelCheckpoint(str(tmp_path / "m_{val_acc:.2f}.keras"))
    with pytest.raises(KeyError) as raised:
        tiny_model().fit(x, y, epochs=2, verbose=0, validation_data=(x, y), callbacks=[cb])
    message = str(raised.value)
    assert "'val_acc'" in message and "'val_loss'" in message and "'loss'" in message
    assert isinstance(raised.value, ValueError)
    cb = callbacks.ModelCheckpoint(str(tmp_path / "m_{val_loss:.2f}.keras"), save_freq=1)
    with pytest.raises(KeyError, match="batch logs"):
        tiny_model().fit(x, y, epochs=1, verbose=0, validation_data=(x, y), callbacks=[cb])
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(filepath="m.h5x"), ValueError, ["must end in `.keras`"]),
    (dict(filepath="m.keras", save_weights_only=True), ValueError, ["`.weights.h5`"]),
    (dict(filepath="m.keras", save_freq="batch"), ValueError, ["save_freq"]),
    (dict(filepath="m.keras", save_freq=0), ValueError, ["save_freq"]),
    (dict(filepath="m.keras", save_freq=True), ValueError, ["save_freq"]),
    (dict(filepath="m.keras", mode="best"), ValueError, ["mode"]),
    (dict(filepath="m.keras", save_best_only="yes"), TypeError, ["save_best_only"]),
    (dict(filepath="m_{epoch.keras"), ValueError, ["template"]),
    (dict(filepath="m_{}.keras"), ValueError, ["positional"]),
    (dict(filepath=3), TypeError, ["filepath"]),
    (dict(filepath="m.keras", initial_value_threshold="x"), TypeError, ["initial_value_threshold"]),
])
def test_checkpoint_bad_arguments(kwargs, error, words):
    with pytest.raises(error) as raised:
        callbacks.ModelCheckpoint(**kwargs)
    for word in words:
        assert word in str(raised.value)


def test_checkpoint_to_a_directory_is_a_clear_error(tmp_path):
    (tmp_path / "m.keras").mkdir()
    x, y = data(8)
    with pytest.raises(IsADirectoryError, match="non-directory filepath"):
        tiny_model().fit(x, y, epochs=1, verbose=0,
                         callbacks=[callbacks.ModelCheckpoint(str(tmp_path / "m.keras"))])


def test_checkpoint_names_and_decisions_match_keras(tmp_path):
    keras = keras_module()
    template = str(tmp_path / "c_{epoch:03d}_{batch}_{loss:.3f}_{val_loss:.1e}.keras")
    logs = {"loss": 0.123456, "val_loss": 0.000321}
    ours = callbacks.ModelCheckpoint(template, save_best_only=True, mode="min")
    theirs = keras.callbacks.ModelCheckpoint(template, save_best_only=True, mode="min")
    theirs.set_model(FakeModel())
    theirs._set_monitor_op()
    for epoch, batch in [(0, 0), (4, 11), (12, None)]:
        if batch is None:
            with pytest.raises(KeyError):
                theirs._get_file_path(epoch, batch, logs)
            with pytest.raises(KeyError):
                ours._path(epoch, batch, logs)
        else:
            assert ours._path(epoch, batch, logs) == theirs._get_file_path(epoch, batch, logs)
    decisions = []
    for cb, check in ((ours, lambda e, l: ours._should_save(e, l, "p")),
                      (theirs, lambda e, l: theirs._should_save_model(e, None, l, "p"))):
        decisions.append([check(e, {"val_loss": v})
                          for e, v in enumerate([0.5, 0.6, 0.4, 0.4, 0.39, 0.7])])
    assert decisions[0] == decisions[1]


# ---------------------------------------------------------------- BackupAndRestore

class Interrupt(callbacks.Callback):
    """Raises at the start of (epoch, batch): a crash mid-fit."""

    def __init__(self, epoch, batch=0):
        super().__init__()
        self.at = (epoch, batch)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise RuntimeError("interrupted")


def train(seed, epochs=4, cbs=(), **fit):
    """A model of seed `seed` (its initial weights and generators), trained with Adam, dropout
    and shuffling on 12 samples in batches of 4 (3 batches an epoch)."""
    set_random_seed(seed)
    x, y = data(12)
    model = tiny_model(dropout=True)
    history = model.fit(x, y, batch_size=4, epochs=epochs, verbose=0, callbacks=list(cbs), **fit)
    return model, history


def assert_same_weights(a, b):
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    ia, sa = a.optimizer.get_state()
    ib, sb = b.optimizer.get_state()
    assert ia == ib
    for xa, xb in zip(sa, sb):
        np.testing.assert_array_equal(xa, xb)


@pytest.mark.parametrize("save_freq, interrupt", [
    ("epoch", (2, 0)), ("epoch", (1, 2)), (2, (1, 2)), (2, (2, 1)), (3, (2, 1)), (1, (0, 2))])
def test_backup_resumes_exactly_where_an_uninterrupted_run_would_be(tmp_path, save_freq,
                                                                     interrupt):
    reference, full = train(seed=1)
    backup = tmp_path / "backup"
    with pytest.raises(RuntimeError, match="interrupted"):
        train(seed=1, cbs=[callbacks.BackupAndRestore(backup, save_freq=save_freq),
                           Interrupt(*interrupt)])
    assert os.listdir(backup) and no_temporary_files(backup)
    # a new process: another model (other initial weights and generators) and optimizer
    resumed, history = train(seed=99, cbs=[callbacks.BackupAndRestore(backup,
                                                                      save_freq=save_freq)])
    assert_same_weights(resumed, reference)
    assert history.epoch[-1] == 3 and not backup.exists()  # deleted at the end, as Keras
    if save_freq == "epoch":  # whole epochs: the same logs too
        start = interrupt[0]
        assert history.epoch == list(range(start, 4))
        assert history.history["loss"] == full.history["loss"][start:]


def test_backup_restores_the_learning_rate_a_callback_lowered(tmp_path):
    backup = tmp_path / "b"
    lower = callbacks.LearningRateScheduler(lambda epoch: 0.01 / (epoch + 1))
    reference, _ = train(seed=3, cbs=[lower])
    with pytest.raises(RuntimeError):
        train(seed=3, cbs=[lower, callbacks.BackupAndRestore(backup), Interrupt(2)])
    # no scheduler this time: the rate comes from the backup (that of epoch 2's end, 0.01/2)
    resumed, _ = train(seed=5, epochs=2, cbs=[callbacks.BackupAndRestore(backup)])
    assert resumed.optimizer.learning_rate == pytest.approx(0.005)
    with pytest.raises(RuntimeError):
        train(seed=3, cbs=[lower, callbacks.BackupAndRestore(backup), Interrupt(2)])
    resumed, _ = train(seed=5, cbs=[lower, callbacks.BackupAndRestore(backup)])
    assert_same_weights(resumed, reference)


def test_backup_keeps_one_file_or_two_and_falls_back_to_the_previous(tmp_path):
    reference, _ = train(seed=2)
    single, backup = tmp_path / "single", tmp_path / "double"
    with pytest.raises(RuntimeError):
        train(seed=2, cbs=[callbacks.BackupAndRestore(single), Interrupt(3)])
    assert sorted(os.listdir(single)) == ["backup-e000003-b000000.keras"]
    with pytest.raises(RuntimeError):
        train(seed=2, cbs=[callbacks.BackupAndRestore(backup, double_checkpoint=True),
                           Interrupt(3)])
    names = sorted(os.listdir(backup))
    assert names == ["backup-e000002-b000000.keras", "backup-e000003-b000000.keras"]
    (backup / names[-1]).write_bytes(b"damaged")
    with pytest.warns(UserWarning, match="cannot be read"):
        resumed, history = train(seed=7, cbs=[callbacks.BackupAndRestore(
            backup, double_checkpoint=True, delete_checkpoint=False)])
    assert history.epoch == [2, 3]
    assert_same_weights(resumed, reference)
    assert os.listdir(backup)  # delete_checkpoint=False keeps them


def test_backup_damaged_without_a_previous_one_is_an_error(tmp_path):
    backup = tmp_path / "b"
    backup.mkdir()
    (backup / "backup-e000001-b000000.keras").write_bytes(b"damaged")
    with pytest.raises(ValueError, match="damaged"):
        train(seed=2, cbs=[callbacks.BackupAndRestore(backup)])


def test_backup_of_another_architecture_is_refused(tmp_path):
    backup = tmp_path / "b"
    with pytest.raises(RuntimeError):
        train(seed=2, cbs=[callbacks.BackupAndRestore(backup), Interrupt(1)])
    x, y = data(12)
    other = Sequential([Input((5,)), Dense(4), Dense(3, activation="softmax")])
    other.compile(optimizer="adam", loss="categorical_crossentropy")
    with pytest.raises(ValueError, match="different architecture"):
        other.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.BackupAndRestore(backup)])


@pytest.mark.parametrize("kwargs, error, word", [
    (dict(backup_dir=""), ValueError, "Empty `backup_dir`"),
    (dict(backup_dir=3), TypeError, "backup_dir"),
    (dict(backup_dir="b", save_freq="batch"), ValueError, "save_freq"),
    (dict(backup_dir="b", save_freq=False), ValueError, "save_freq"),
    (dict(backup_dir="b", save_freq=-2), ValueError, "save_freq"),
    (dict(backup_dir="b", double_checkpoint=None), TypeError, "double_checkpoint"),
    (dict(backup_dir="b", delete_checkpoint="no"), TypeError, "delete_checkpoint"),
])
def test_backup_bad_arguments(kwargs, error, word):
    with pytest.raises(error, match=word):
        callbacks.BackupAndRestore(**kwargs)


def test_backup_arguments_are_keras_ones():
    keras = keras_module()
    import inspect
    ours = inspect.signature(callbacks.BackupAndRestore).parameters
    theirs = inspect.signature(keras.callbacks.BackupAndRestore).parameters
    assert [(n, p.default) for n, p in ours.items()] == [(n, p.default) for n, p in theirs.items()]
    for cls in ("ModelCheckpoint", "CSVLogger", "ReduceLROnPlateau", "EarlyStopping",
                "LearningRateScheduler", "TerminateOnNaN", "LambdaCallback"):
        ours = inspect.signature(getattr(callbacks, cls)).parameters
        theirs = inspect.signature(getattr(keras.callbacks, cls)).parameters
        assert [(n, p.default) for n, p in ours.items()] == \
            [(n, p.default) for n, p in theirs.items()], cls


def test_batch_counting_matches_keras():
    """Which batches an integer save_freq saves after, across epochs (Keras' counter)."""
    keras = keras_module()
    from cnnkit.callbacks.checkpointing import _BatchCounter
    batches = [b for _ in range(4) for b in range(5)] + [0, 1, 0, 2]
    for every in (1, 2, 3, 7):
        counter = _BatchCounter(every)
        theirs = keras.callbacks.ModelCheckpoint("m.keras", save_freq=every)
        assert [counter.due(b) for b in batches] == \
            [theirs._should_save_on_batch(b) for b in batches]


def test_csv_logger_after_a_rate_callback_logs_the_rate(tmp_path):
    path = tmp_path / "log.csv"
    x, y = data(8)
    from cnnkit import optimizers
    model = tiny_model(optimizer=optimizers.SGD(learning_rate=0.1))
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[
        callbacks.LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1)),
        callbacks.CSVLogger(path)])
    rows = list(csv.DictReader(path.read_text().splitlines()))
    assert [float(r["learning_rate"]) for r in rows] == pytest.approx([0.1, 0.05])


def test_backup_mid_epoch_with_other_batches_is_refused(tmp_path):
    backup = tmp_path / "b"
    with pytest.raises(RuntimeError):  # a backup at batch 2 of epoch 1 (3 batches an epoch)
        train(seed=2, cbs=[callbacks.BackupAndRestore(backup, save_freq=2), Interrupt(1, 2)])
    x, y = data(12)
    with pytest.raises(ValueError, match=r"resumes at batch 1 of epoch 2.*have 1 batch\(es\)"):
        tiny_model(dropout=True).fit(x, y, batch_size=12, epochs=4, verbose=0,
                                     callbacks=[callbacks.BackupAndRestore(backup, save_freq=2)])
