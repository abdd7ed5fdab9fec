"""Learning-rate schedules (cnnkit.optimizers.schedules) against keras.optimizers.schedules
over many steps, their configs and serialized form, bad input, and a model compiled with a
schedule that saves and loads."""
import os

import numpy as np
import pytest

import cnnkit
from cnnkit.layers import Dense, Input
from cnnkit.models import Sequential, load_model
from cnnkit.optimizers import schedules

CASES = [
    ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=7, decay_rate=0.9)),
    ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=7, decay_rate=0.5, staircase=True)),
    ("PiecewiseConstantDecay", dict(boundaries=[10, 25, 40], values=[1.0, 0.5, 0.1, 0.01])),
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=30)),
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=13, end_learning_rate=0.01,
                             power=2.0, cycle=True)),
    ("InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=5, decay_rate=0.5)),
    ("InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=5, decay_rate=0.5, staircase=True)),
    ("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=40)),
    ("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=30, alpha=0.1)),
    ("CosineDecay", dict(initial_learning_rate=0.0, decay_steps=30, warmup_target=0.2,
                         warmup_steps=10, alpha=0.05)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=7)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=5, t_mul=1.0,
                                 m_mul=0.5, alpha=0.1)),
]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(CASES)]


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    return pytest.importorskip("keras")


@pytest.mark.parametrize("name, config", CASES, ids=IDS)
def test_values_match_keras(keras, name, config):
    ours = getattr(schedules, name)(**config)
    theirs = getattr(keras.optimizers.schedules, name)(**config)
    got = [ours(step) for step in range(100)]
    want = [float(theirs(step)) for step in range(100)]
    assert all(type(v) is float for v in got)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-8)
    assert len(set(np.round(got, 6))) > 1   # the schedule does change


@pytest.mark.parametrize("name, config", CASES, ids=IDS)
def test_config_and_serialized_form_match_keras(keras, name, config):
    ours = getattr(schedules, name)(**config)
    theirs = getattr(keras.optimizers.schedules, name)(**config)
    assert ours.get_config() == theirs.get_config()
    assert schedules.serialize(ours) == keras.optimizers.schedules.serialize(theirs)
    again = schedules.deserialize(schedules.serialize(ours))
    assert type(again) is type(ours) and again.get_config() == ours.get_config()
    assert type(ours).from_config(ours.get_config())(17) == ours(17)


def test_numpy_steps_and_custom_schedules():
    s = schedules.ExponentialDecay(1.0, 1, 0.5)
    assert s(np.int64(3)) == 0.125
    with pytest.raises(TypeError, match="step"):
        s("3")

    class Halving(schedules.LearningRateSchedule):
        def __call__(self, step):
            return 1.0 / 2 ** step

        def get_config(self):
            return {}
    config = schedules.serialize(Halving())
    assert schedules.deserialize(config, custom_objects={"Halving": Halving})(1) == 0.5
    with pytest.raises(ValueError, match="Unknown learning rate schedule"):
        schedules.deserialize(config)
    with pytest.raises(NotImplementedError, match="__call__"):
        schedules.LearningRateSchedule()(0)


@pytest.mark.parametrize("make, error, words", [
    (lambda: schedules.ExponentialDecay(0.1, 0, 0.5), ValueError, ["decay_steps"]),
    (lambda: schedules.ExponentialDecay(-0.1, 10, 0.5), ValueError, ["initial_learning_rate"]),
    (lambda: schedules.ExponentialDecay("0.1", 10, 0.5), TypeError, ["initial_learning_rate"]),
    (lambda: schedules.PolynomialDecay(0.1, -3), ValueError, ["decay_steps"]),
    (lambda: schedules.InverseTimeDecay(0.1, 10, -1.0), ValueError, ["decay_rate"]),
    (lambda: schedules.CosineDecay(0.1, 10, warmup_target=-1.0, warmup_steps=2), ValueError, ["warmup_target"]),
    (lambda: schedules.CosineDecay(0.1, 10, warmup_steps=-2), ValueError, ["warmup_steps"]),
    (lambda: schedules.CosineDecayRestarts(0.1, 0), ValueError, ["first_decay_steps"]),
    (lambda: schedules.PiecewiseConstantDecay([1, 2], [0.1, 0.2]), ValueError, ["boundaries", "values"]),
    (lambda: schedules.PiecewiseConstantDecay([2, 1], [0.1, 0.2, 0.3]), ValueError, ["increasing"]),
    (lambda: schedules.deserialize("ExponentialDecay"), TypeError, ["class_name"]),
])
def test_bad_arguments(make, error, words):
    with pytest.raises(error) as info:
        make()
    assert all(w in str(info.value) for w in words), str(info.value)


def test_a_model_compiled_with_a_schedule_saves_and_loads(tmp_path):
    cnnkit.utils.set_random_seed(0)
    schedule = schedules.InverseTimeDecay(0.05, 2, 1.0)
    model = Sequential([Input((3,)), Dense(2)])
    model.compile(optimizer=cnnkit.optimizers.SGD(schedule, momentum=0.5), loss="mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 3)).astype(np.float32), rng.normal(size=(6, 2)).astype(np.float32)
    for _ in range(3):
        model.train_on_batch(x, y)
    model.save(tmp_path / "s.keras")
    restored = load_model(tmp_path / "s.keras")
    assert isinstance(restored.optimizer._learning_rate, schedules.InverseTimeDecay)
    assert restored.optimizer.learning_rate == model.optimizer.learning_rate == schedule(3)
    model.train_on_batch(x, y)
    restored.train_on_batch(x, y)
    for a, b in zip(restored.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
