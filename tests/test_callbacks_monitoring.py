"""EarlyStopping, ReduceLROnPlateau and LearningRateScheduler: their state machines driven with
made-up logs, the same through fit, bad arguments, and Keras 3 parity (the same sequence of
monitored values gives the same learning rates, stops and logs)."""
import os

import numpy as np
import pytest

from cnnkit import callbacks, optimizers
from callback_helpers import FakeModel, data, drive, tiny_model

PLATEAU = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.4999, 0.3, 0.3, 0.3]


def keras_module():
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    return pytest.importorskip("keras")


class KerasFake(FakeModel):
    """The fake model with a Keras optimizer, whose rate is a float32 variable."""

    def __init__(self, keras, learning_rate=0.1):
        super().__init__()
        self.optimizer = keras.optimizers.SGD(learning_rate=learning_rate)


def keras_rates(keras, callback, values, monitor="val_loss"):
    model = KerasFake(keras)
    rates, seen = drive(callback, values, monitor, model)
    return [float(np.asarray(r)) for r in rates], seen


# ---------------------------------------------------------------- ReduceLROnPlateau

def test_plateau_counting_cooldown_and_min_lr_by_hand(capsys):
    cb = callbacks.ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1, min_lr=0.02, verbose=1)
    rates, seen = drive(cb, PLATEAU[:10])
    # e2: 2 epochs without improvement -> 0.05; cooldown 1 epoch, which Keras lets count towards
    # the next wait, so e4 -> 0.025, e6 -> max(0.0125, min_lr); at min_lr it stays
    assert rates == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.02, 0.02, 0.02, 0.02])
    # each epoch's logs get the rate it ran with, before any reduction
    assert [logs["learning_rate"] for logs in seen] == pytest.approx([0.1, 0.1] + rates[1:-1])
    out = capsys.readouterr().out
    assert "\nEpoch 3: ReduceLROnPlateau reducing learning rate to 0.05.\n" in out
    assert out.count("reducing") == 3  # not again once at min_lr


def test_plateau_min_delta_and_max_mode():
    cb = callbacks.ReduceLROnPlateau(monitor="val_accuracy", factor=0.1, patience=1,
                                     min_delta=0.1)
    assert cb.mode == "max"
    rates, _ = drive(cb, [0.5, 0.55, 0.7, 0.75], monitor="val_accuracy")
    # 0.55 is not 0.1 better than 0.5 -> reduce; 0.7 is; 0.75 is not -> reduce
    assert rates == pytest.approx([0.1, 0.01, 0.01, 0.001])


def test_plateau_warns_when_the_monitored_value_is_missing():
    cb = callbacks.ReduceLROnPlateau(monitor="val_loss")
    cb.set_model(FakeModel())
    cb.on_train_begin()
    logs = {"loss": 1.0}
    with pytest.warns(UserWarning, match="val_loss.*not available.*loss,learning_rate"):
        cb.on_epoch_end(0, logs)
    assert logs["learning_rate"] == 0.1


@pytest.mark.parametrize("kwargs", [
    dict(factor=0.5, patience=2, cooldown=1, min_lr=0.02),
    dict(factor=0.2, patience=0, cooldown=0, min_delta=0.0),
    dict(factor=0.5, patience=1, cooldown=3, min_lr=0.0, min_delta=1e-3),
    dict(monitor="val_accuracy", mode="max", factor=0.3, patience=1),
    dict(factor=0.9, patience=1, min_lr=0.05, mode="min"),
])
def test_plateau_matches_keras(kwargs):
    keras = keras_module()
    values = PLATEAU if kwargs.get("mode") != "max" else [-v for v in PLATEAU]
    monitor = kwargs.get("monitor", "val_loss")
    ours, our_logs = drive(callbacks.ReduceLROnPlateau(**kwargs), values, monitor)
    theirs, their_logs = keras_rates(keras, keras.callbacks.ReduceLROnPlateau(**kwargs), values,
                                     monitor)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert [sorted(l) for l in our_logs] == [sorted(l) for l in their_logs]
    np.testing.assert_allclose([l["learning_rate"] for l in our_logs],
                               [l["learning_rate"] for l in their_logs], rtol=1e-6)


def test_plateau_through_fit_lowers_the_optimizer_rate_and_logs_it():
    x, y = data(8)
    model = tiny_model(optimizer=optimizers.SGD(learning_rate=0.0))  # the loss never moves
    history = model.fit(x, y, batch_size=8, epochs=4, verbose=0, callbacks=[
        callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=0.0)])
    assert history.history["learning_rate"] == [0.0] * 4  # at min_lr 0 from the start
    model = tiny_model(optimizer=optimizers.SGD(learning_rate=1e-9))
    history = model.fit(x, y, batch_size=8, epochs=4, verbose=0, callbacks=[
        callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=1.0)])
    # each epoch logs the rate it ran with; the reductions follow epochs 1, 2 and 3
    assert history.history["learning_rate"] == pytest.approx([1e-9, 1e-9, 5e-10, 2.5e-10])
    assert model.optimizer.learning_rate == pytest.approx(1.25e-10)


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(factor=1.0), ValueError, ["factor >= 1.0", "factor=1.0"]),
    (dict(factor=-0.5), ValueError, ["factor", "0.0 or more"]),
    (dict(factor="half"), TypeError, ["factor", "number"]),
    (dict(patience=-1), ValueError, ["patience", "0 or more"]),
    (dict(patience=1.5), TypeError, ["patience", "integer"]),
    (dict(cooldown=-2), ValueError, ["cooldown"]),
    (dict(min_lr=-1e-3), ValueError, ["min_lr"]),
    (dict(mode="lowest"), ValueError, ["mode", "'auto', 'min' or 'max'"]),
    (dict(monitor=3), TypeError, ["monitor"]),
    (dict(verbose="loud"), TypeError, ["verbose"]),
    (dict(min_delta=float("nan")), ValueError, ["min_delta"]),
    (dict(epsilon=1e-4), TypeError, ["epsilon"]),
])
def test_plateau_bad_arguments(kwargs, error, words):
    with pytest.raises(error) as raised:
        callbacks.ReduceLROnPlateau(**kwargs)
    for word in words:
        assert word in str(raised.value)


def test_auto_mode_for_an_unknown_name_asks_the_metric_or_fails_as_keras():
    cb = callbacks.ReduceLROnPlateau(monitor="val_score", patience=0)
    assert cb.mode == "auto"
    model = FakeModel()
    cb.set_model(model)
    cb.on_train_begin()
    with pytest.raises(ValueError, match="mode='max'"):
        cb.on_epoch_end(0, {"val_score": 1.0})

    class Score:
        name, _direction = "score", "up"
    model.metrics = [Score()]
    cb.on_epoch_end(0, {"val_score": 1.0})
    assert cb.mode == "max"


# ---------------------------------------------------------------- LearningRateScheduler

def test_scheduler_with_two_and_one_arguments_and_logs(capsys):
    x, y = data(8)
    model = tiny_model(optimizer=optimizers.SGD(learning_rate=0.1))
    cb = callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch else lr, verbose=1)
    history = model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[cb])
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.025])
    assert model.optimizer.learning_rate == pytest.approx(0.025)
    out = capsys.readouterr().out
    assert "\nEpoch 2: LearningRateScheduler setting learning rate to 0.05.\n" in out
    one_argument = callbacks.LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1))
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[one_argument])
    assert history.history["learning_rate"] == pytest.approx([0.01, 0.02])


def test_scheduler_rate_is_used_by_the_update():
    """The rate the scheduler sets is the one the step uses: a rate 0 epoch changes nothing."""
    x, y = data(8)
    model = tiny_model(optimizer=optimizers.SGD(learning_rate=0.1))
    model.fit(x, y, batch_size=4, epochs=1, verbose=0,
              callbacks=[callbacks.LearningRateScheduler(lambda epoch: 0.0)])
    before = model.get_weights()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0,
              callbacks=[callbacks.LearningRateScheduler(lambda epoch: 0.0)])
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0,
              callbacks=[callbacks.LearningRateScheduler(lambda epoch: 0.1)])
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize("returned", [1, "0.1", None, np.array([0.1])])
def test_scheduler_non_float_is_a_clear_error(returned):
    cb = callbacks.LearningRateScheduler(lambda epoch, lr: returned)
    cb.set_model(FakeModel())
    with pytest.raises(ValueError, match="should be a float"):
        cb.on_epoch_begin(0)


def test_scheduler_bad_rates_and_arguments():
    cb = callbacks.LearningRateScheduler(lambda epoch: float("nan"))
    cb.set_model(FakeModel())
    with pytest.raises(ValueError, match="finite number"):
        cb.on_epoch_begin(0)
    with pytest.raises(TypeError, match="schedule must be a function"):
        callbacks.LearningRateScheduler(0.1)
    with pytest.raises(TypeError, match="verbose"):
        callbacks.LearningRateScheduler(lambda e: 0.1, verbose=None)


def test_scheduler_names_itself_when_the_optimizer_refuses_a_rate():
    """An optimizer built with a schedule refuses assignment with a TypeError (Keras 3)."""
    class Scheduled:
        @property
        def learning_rate(self):
            return 0.1

        @learning_rate.setter
        def learning_rate(self, value):
            raise TypeError("This optimizer was created with a `LearningRateSchedule`")
    model = FakeModel()
    model.optimizer = Scheduled()
    for cb in (callbacks.LearningRateScheduler(lambda e: 0.5),
               callbacks.ReduceLROnPlateau(monitor="loss", patience=0)):
        cb.set_model(model)
        cb.on_train_begin()
        with pytest.raises(TypeError, match=f"{type(cb).__name__} cannot set the learning rate"):
            cb.on_epoch_begin(0)
            cb.on_epoch_end(0, {"loss": 1.0})
            cb.on_epoch_end(1, {"loss": 1.0})


def test_scheduler_matches_keras():
    keras = keras_module()
    schedules = [lambda epoch, lr: lr * 0.9 if epoch > 1 else lr,
                 lambda epoch: 0.5 / (epoch + 1)]
    for schedule in schedules:
        ours, theirs = FakeModel(), KerasFake(keras)
        for model, cb in ((ours, callbacks.LearningRateScheduler(schedule)),
                          (theirs, keras.callbacks.LearningRateScheduler(schedule))):
            cb.set_model(model)
            model.rates, model.logs = [], []
            for epoch in range(5):
                logs = {"loss": 1.0}
                cb.on_epoch_begin(epoch)
                cb.on_epoch_end(epoch, logs)
                model.rates.append(float(np.asarray(model.optimizer.learning_rate)))
                model.logs.append(logs)
        np.testing.assert_allclose(ours.rates, theirs.rates, rtol=1e-6)
        assert [sorted(l) for l in ours.logs] == [sorted(l) for l in theirs.logs]


# ---------------------------------------------------------------- EarlyStopping

def test_early_stopping_state_machine_and_baseline():
    cb = callbacks.EarlyStopping(monitor="val_loss", patience=2)
    model = FakeModel()
    drive(cb, [1.0, 0.9, 0.95, 0.91, 0.8], model=model)
    assert cb.stopped_epoch == 3 and model.stop_training and cb.best == 0.9
    cb = callbacks.EarlyStopping(patience=1, baseline=0.5)  # never beats the baseline
    model = FakeModel()
    drive(cb, [1.0, 1.1, 1.2], model=model)
    assert cb.stopped_epoch == 1 and cb.best == 1.0
    cb = callbacks.EarlyStopping(patience=0, start_from_epoch=2)
    model = FakeModel()
    drive(cb, [1.0, 2.0, 3.0, 4.0], model=model)
    assert cb.stopped_epoch == 3


def test_early_stopping_restores_the_best_weights_at_the_end(capsys):
    cb = callbacks.EarlyStopping(monitor="loss", patience=5, restore_best_weights=True, verbose=1)
    model = FakeModel()
    cb.set_model(model)
    cb.on_train_begin()
    for epoch, value in enumerate([1.0, 0.5, 0.7]):
        model.weights = [np.full(1, float(epoch))]
        cb.on_epoch_end(epoch, {"loss": value})
    cb.on_train_end()  # Keras 3 restores whether or not training stopped early
    assert model.weights[0][0] == 1.0
    assert "Restoring model weights from the end of the best epoch: 2." in capsys.readouterr().out


@pytest.mark.parametrize("kwargs, error, word", [
    (dict(patience=-1), ValueError, "patience"), (dict(patience="2"), TypeError, "patience"),
    (dict(start_from_epoch=-1), ValueError, "start_from_epoch"),
    (dict(mode="up"), ValueError, "mode"), (dict(baseline="low"), TypeError, "baseline"),
    (dict(restore_best_weights=1), TypeError, "restore_best_weights"),
])
def test_early_stopping_bad_arguments(kwargs, error, word):
    with pytest.raises(error, match=word):
        callbacks.EarlyStopping(**kwargs)


@pytest.mark.parametrize("kwargs, values", [
    (dict(patience=2), [1.0, 0.9, 0.95, 0.91, 0.8, 0.85, 0.9, 1.0]),
    (dict(patience=1, baseline=0.5), [1.0, 0.9, 0.8]),
    (dict(patience=1, min_delta=0.1), [1.0, 0.95, 0.8, 0.75, 0.7]),
    (dict(patience=0, start_from_epoch=2), [1.0, 2.0, 3.0, 4.0]),
    (dict(monitor="val_accuracy", mode="max", patience=1), [0.1, 0.2, 0.2, 0.15, 0.3]),
])
def test_early_stopping_matches_keras(kwargs, values):
    keras = keras_module()
    monitor = kwargs.get("monitor", "val_loss")
    results = []
    for cls in (callbacks.EarlyStopping, keras.callbacks.EarlyStopping):
        cb, model = cls(**kwargs), FakeModel()
        drive(cb, values, monitor, model)
        results.append((cb.stopped_epoch, cb.best, cb.wait, model.stop_training))
    assert results[0] == results[1]


def test_early_stopping_through_fit_says_when_it_stopped(capsys):
    x, y = data(8)
    model = tiny_model(optimizer=optimizers.SGD(learning_rate=0.0))  # the loss never moves
    history = model.fit(x, y, batch_size=8, epochs=10, verbose=0, callbacks=[
        callbacks.EarlyStopping(monitor="loss", patience=2, verbose=1, min_delta=1e-6)])
    assert len(history.history["loss"]) == 3
    assert capsys.readouterr().out == "Epoch 3: early stopping\n"
