"""The optimizer classes: Keras 3's names, defaults and get_config keys, numbers against Keras 3
itself (every optimizer, clipping, weight decay, EMA, schedules), the learning_rate and
iterations contract, bad input, and a save/load round trip per optimizer that resumes exactly."""
import os
import warnings

import numpy as np
import pytest

import cnnkit
from cnnkit import optimizers
from cnnkit.layers import Dense, Input
from cnnkit.models import Sequential, load_model
from cnnkit.optimizers import schedules

from test_step_allocations import traced_growth

NAMES = ["SGD", "RMSprop", "Adam", "AdamW", "Adagrad", "Nadam", "Adamax"]

# (class name, keyword arguments, schedule or None) compared with Keras.
PARITY = [
    ("SGD", {}, None),
    ("SGD", dict(momentum=0.9), None),
    ("SGD", dict(momentum=0.9, nesterov=True, weight_decay=0.01), None),
    ("SGD", dict(momentum=0.5, global_clipnorm=0.7), None),
    ("RMSprop", {}, None),
    ("RMSprop", dict(momentum=0.5, centered=True, clipvalue=0.1), None),
    ("RMSprop", dict(rho=0.8, use_ema=True, ema_momentum=0.9), None),
    ("Adam", {}, None),
    ("Adam", dict(amsgrad=True, clipnorm=0.5), None),
    ("Adam", dict(use_ema=True, ema_overwrite_frequency=2), None),
    ("Adam", {}, ("ExponentialDecay", dict(initial_learning_rate=0.05, decay_steps=2, decay_rate=0.5))),
    ("AdamW", {}, None),
    ("AdamW", dict(weight_decay=0.1, global_clipnorm=1.0), None),
    ("Adagrad", {}, None),
    ("Adagrad", dict(initial_accumulator_value=0.5, weight_decay=0.05), None),
    ("Nadam", {}, None),
    ("Nadam", dict(clipnorm=0.3, use_ema=True, ema_momentum=0.5), None),
    ("Adamax", {}, None),
    ("Adamax", dict(beta_2=0.9, clipvalue=0.2),
     ("CosineDecay", dict(initial_learning_rate=0.0, decay_steps=4, warmup_target=0.1, warmup_steps=2))),
]


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    return pytest.importorskip("keras")


def _problem(steps=6, seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(4, 3), (3,)]
    params = [rng.normal(size=s).astype(np.float32) for s in shapes]
    grads = [[rng.normal(size=s).astype(np.float32) for s in shapes] for _ in range(steps)]
    return params, grads


def _learning_rate(module, schedule, default):
    if schedule is None:
        return {} if default else {"learning_rate": 0.01}
    name, config = schedule
    return {"learning_rate": getattr(module.optimizers.schedules, name)(**config)}


@pytest.mark.parametrize("name, kwargs, schedule", PARITY,
                         ids=lambda v: v if isinstance(v, str) else "-".join(v) if isinstance(v, dict) else str(v and v[0]))
def test_numbers_match_keras(keras, name, kwargs, schedule):
    params, grads = _problem()
    ours = getattr(optimizers, name)(**kwargs, **_learning_rate(cnnkit, schedule, False))
    theirs = getattr(keras.optimizers, name)(**kwargs, **_learning_rate(keras, schedule, False))
    mine = [p.copy() for p in params]
    variables = [keras.Variable(p.copy()) for p in params]
    for step_grads in grads:
        assert ours.learning_rate == pytest.approx(float(theirs.learning_rate), rel=1e-6, abs=1e-9)
        ours.apply(step_grads, mine)
        theirs.apply([g.copy() for g in step_grads], variables)
        for a, b in zip(mine, variables):
            np.testing.assert_allclose(a, np.asarray(b), rtol=2e-5, atol=2e-6)
    assert ours.iterations == int(theirs.iterations) == len(grads)
    ours.finalize_variable_values(mine)
    theirs.finalize_variable_values(variables)
    for a, b in zip(mine, variables):
        np.testing.assert_allclose(a, np.asarray(b), rtol=2e-5, atol=2e-6)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")   # Keras' own, in its get_config
@pytest.mark.parametrize("name", NAMES)
def test_defaults_and_config_keys_match_keras(keras, name):
    ours, theirs = getattr(optimizers, name)(), getattr(keras.optimizers, name)()
    a, b = ours.get_config(), theirs.get_config()
    assert set(a) == set(b)
    for key in set(a) - {"name"}:
        # Keras reads learning_rate back from a float32 variable.
        assert a[key] == (pytest.approx(b[key], rel=1e-6) if isinstance(b[key], float) else b[key]), key
    assert b["name"].startswith(a["name"])   # Keras adds _1, _2 to repeated names
    again = getattr(optimizers, name).from_config(a)
    assert again.get_config() == a
    assert optimizers.get(optimizers.serialize(ours)).get_config() == a


def test_serialized_form_is_keras(keras):
    lr = schedules.ExponentialDecay(0.1, 10, 0.9)
    ours = optimizers.serialize(optimizers.Adam(lr, name="adam"))
    theirs = keras.optimizers.serialize(keras.optimizers.Adam(
        keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9), name="adam"))
    assert ours == theirs
    # Keras' own dict loads here.
    assert isinstance(optimizers.get(theirs).learning_rate, float)


@pytest.mark.parametrize("name", ["rmsprop", "adam", "adamw", "adagrad", "nadam", "adamax", "sgd",
                                  "RMSprop", "Adam", "AdamW", "SGD"])
def test_get_by_keras_names(name):
    assert type(optimizers.get(name)).__name__.lower() == name.lower()


def test_get_objects_dicts_and_unknown_names():
    opt = optimizers.SGD(momentum=0.5)
    assert optimizers.get(opt) is opt
    assert optimizers.get({"class_name": "SGD", "config": {"momentum": 0.5}}).momentum == 0.5
    with pytest.raises(ValueError, match="Unknown optimizer 'adamw2'"):
        optimizers.get("adamw2")
    with pytest.raises(ValueError, match="cnnkit does not have"):
        optimizers.get("adadelta")
    with pytest.raises(ValueError, match="Could not interpret"):
        optimizers.get(3)


def test_learning_rate_reads_and_sets_a_float():
    opt = optimizers.RMSprop(learning_rate=0.01)
    assert isinstance(opt.learning_rate, float) and opt.learning_rate == 0.01
    opt.learning_rate = 0.5
    assert opt.learning_rate == 0.5 and opt.get_config()["learning_rate"] == 0.5
    opt.learning_rate = np.float32(0.25)
    assert opt.learning_rate == 0.25 and type(opt.learning_rate) is float
    with pytest.raises(ValueError, match="learning_rate"):
        opt.learning_rate = -1.0
    assert isinstance(opt.iterations, int) and opt.iterations == 0


def test_a_schedule_is_read_at_iterations_and_not_settable():
    lr = schedules.PiecewiseConstantDecay([1], [0.5, 0.1])
    opt = optimizers.SGD(lr)
    params, grads = _problem(steps=3)
    seen = []
    for g in grads:
        seen.append(opt.learning_rate)
        opt.apply(g, params)
    assert seen == [0.5, 0.5, 0.1]
    with pytest.raises(TypeError, match="not settable"):
        opt.learning_rate = 0.1
    opt.learning_rate = schedules.ExponentialDecay(1.0, 1, 0.5)   # a schedule replaces it
    assert opt.learning_rate == 0.125


def test_a_callable_learning_rate_is_called():
    opt = optimizers.Adam(learning_rate=lambda: 0.002)
    assert opt.learning_rate == 0.002


@pytest.mark.parametrize("make, error, words", [
    (lambda: optimizers.Adam(learning_rate=-1.0), ValueError, ["learning_rate"]),
    (lambda: optimizers.Adam(learning_rate="fast"), ValueError, ["learning_rate"]),
    (lambda: optimizers.Adam(learning_rate=None), ValueError, ["learning_rate"]),
    (lambda: optimizers.SGD(clipvalue=-1.0), ValueError, ["clipvalue"]),
    (lambda: optimizers.SGD(clipnorm=-1.0), ValueError, ["clipnorm"]),
    (lambda: optimizers.SGD(global_clipnorm=-1.0), ValueError, ["global_clipnorm"]),
    (lambda: optimizers.SGD(clipnorm=1.0, clipvalue=1.0), ValueError, ["Only one of"]),
    (lambda: optimizers.AdamW(weight_decay=-0.1), ValueError, ["weight_decay"]),
    (lambda: optimizers.AdamW(weight_decay=None), ValueError, ["weight_decay"]),
    (lambda: optimizers.SGD(momentum=1.5), ValueError, ["momentum"]),
    (lambda: optimizers.SGD(momentum=-0.1), ValueError, ["momentum"]),
    (lambda: optimizers.RMSprop(momentum=2.0), ValueError, ["momentum"]),
    (lambda: optimizers.RMSprop(rho=-0.5), ValueError, ["rho"]),
    (lambda: optimizers.Adam(beta_1=1.0), ValueError, ["beta_1"]),
    (lambda: optimizers.Adagrad(initial_accumulator_value=-1.0), ValueError, ["initial_accumulator_value"]),
    (lambda: optimizers.Adam(use_ema=True, ema_momentum=1.5), ValueError, ["ema_momentum"]),
    (lambda: optimizers.Adam(use_ema=True, ema_overwrite_frequency=0.5), ValueError, ["ema_overwrite_frequency"]),
    (lambda: optimizers.Adam(lr=0.1), ValueError, ["not recognized", "lr", "learning_rate"]),
    (lambda: optimizers.Adam(foo=1), ValueError, ["not recognized", "foo"]),
    (lambda: optimizers.Adam(loss_scale_factor=128.0), NotImplementedError, ["loss_scale_factor", "cnnkit"]),
    (lambda: optimizers.Adam(gradient_accumulation_steps=2), NotImplementedError,
     ["gradient_accumulation_steps", "cnnkit"]),
    (lambda: schedules.ExponentialDecay(schedules.ExponentialDecay(0.1, 1, 0.5), 1, 0.5), TypeError,
     ["initial_learning_rate"]),
])
def test_bad_arguments(make, error, words):
    with pytest.raises(error) as info:
        make()
    assert all(w in str(info.value) for w in words), str(info.value)


def test_decay_warns_and_goes_on_like_keras(keras):
    with pytest.warns(UserWarning, match="`decay` is no longer supported") as ours:
        opt = optimizers.RMSprop(learning_rate=1e-4, decay=1e-6)
    with warnings.catch_warnings(record=True) as theirs:
        warnings.simplefilter("always")
        keras.optimizers.RMSprop(learning_rate=1e-4, decay=1e-6)
    assert [str(w.message) for w in ours] == [str(w.message) for w in theirs]
    assert opt.learning_rate == 1e-4 and "decay" not in opt.get_config()


def test_weight_decay_exclusion():
    params, grads = _problem(steps=1)
    zero = [np.zeros_like(g) for g in grads[0]]
    opt = optimizers.SGD(learning_rate=0.5, weight_decay=0.1)
    opt.exclude_from_weight_decay(var_list=[params[1]])
    before = [p.copy() for p in params]
    opt.apply(zero, params)
    np.testing.assert_allclose(params[0], before[0] * 0.95, rtol=1e-6)
    np.testing.assert_array_equal(params[1], before[1])
    with pytest.raises(ValueError, match="before the optimizer is built"):
        opt.exclude_from_weight_decay(var_list=[params[0]])


@pytest.mark.parametrize("name", NAMES)
def test_a_warm_step_allocates_no_array(name):
    params, grads = _problem(steps=1)
    params = [np.ones((128, 128), np.float32)] + params
    grads = [np.full((128, 128), 0.1, np.float32)] + grads[0]
    opt = getattr(optimizers, name)(clipnorm=1.0, use_ema=True, weight_decay=0.01)
    opt.apply(grads, params)
    assert max(traced_growth(lambda: opt.apply(grads, params))) < 16384


# ---------------------------------------------------------------- saving and loading

def _model(optimizer):
    cnnkit.utils.set_random_seed(0)
    model = Sequential([Input((5,)), Dense(4, activation="relu"), Dense(2)])
    model.compile(optimizer=optimizer, loss="mse")
    return model


SAVED = [
    optimizers.SGD(momentum=0.9, nesterov=True, use_ema=True),
    optimizers.RMSprop(momentum=0.5, centered=True, clipnorm=1.0),
    optimizers.Adam(amsgrad=True, use_ema=True, ema_overwrite_frequency=3),
    optimizers.AdamW(schedules.CosineDecay(0.01, 10, warmup_target=0.02, warmup_steps=2)),
    optimizers.Adagrad(global_clipnorm=0.5),
    optimizers.Nadam(use_ema=True, ema_momentum=0.9),
    optimizers.Adamax(clipvalue=0.5, weight_decay=0.01),
]


@pytest.mark.parametrize("optimizer", SAVED, ids=lambda o: type(o).__name__)
def test_save_and_load_resumes_exactly(tmp_path, optimizer):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 5)).astype(np.float32), rng.normal(size=(8, 2)).astype(np.float32)
    model = _model(optimizers.deserialize(optimizers.serialize(optimizer)))
    for _ in range(4):
        model.train_on_batch(x, y)
    model.save(tmp_path / "m.keras")
    restored = load_model(tmp_path / "m.keras")
    assert restored.optimizer.get_config() == model.optimizer.get_config()
    assert restored.optimizer.iterations == model.optimizer.iterations == 4
    for a, b in zip(restored.optimizer.get_state()[1], model.optimizer.get_state()[1]):
        np.testing.assert_array_equal(a, b)
    for _ in range(3):
        model.train_on_batch(x, y)
        restored.train_on_batch(x, y)
    for a, b in zip(restored.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    model.optimizer.finalize_variable_values(model.trainable_weights)
    restored.optimizer.finalize_variable_values(restored.trainable_weights)
    for a, b in zip(restored.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_finalize_variable_values_takes_the_average():
    params, grads = _problem(steps=3)
    opt = optimizers.SGD(learning_rate=0.1, use_ema=True, ema_momentum=0.5)
    for g in grads:
        opt.apply(g, params)
    average = [a.copy() for a in opt.variables]
    assert not np.array_equal(average[0], params[0])
    opt.finalize_variable_values(params)
    for p, a in zip(params, average):
        np.testing.assert_array_equal(p, a)


def test_keras_optimizers_cnnkit_lacks_say_so():
    with pytest.raises(AttributeError, match="cnnkit does not have"):
        optimizers.Lion
    assert not hasattr(optimizers, "Adadelta")


def test_compile_default_is_rmsprop_and_trains():
    model = Sequential([Input((3,)), Dense(1)])
    model.compile(loss="mse")
    assert type(model.optimizer) is optimizers.RMSprop and model.optimizer.name == "rm_sprop"
    x, y = np.ones((4, 3), np.float32), np.zeros((4, 1), np.float32)
    before = model.get_weights()
    model.train_on_batch(x, y)
    assert model.optimizer.iterations == 1
    assert not np.array_equal(before[0], model.get_weights()[0])


def test_fit_ends_with_the_moving_averages_when_use_ema():
    """As Keras' fit: at the end of training, use_ema puts each weight's moving average in
    place of the weight itself (finalize_variable_values)."""
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 3)).astype(np.float32), rng.random((32, 2)).astype(np.float32)
    cnnkit.utils.set_random_seed(0)
    model = Sequential([Input((3,)), Dense(2)])
    optimizer = optimizers.SGD(0.1, use_ema=True, ema_momentum=0.5)
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    _, averages = optimizer.get_state()
    assert len(averages) == len(model.trainable_weights) == 2
    for weight, average in zip(model.trainable_weights, averages):
        np.testing.assert_array_equal(weight, average)
    cnnkit.utils.set_random_seed(0)
    plain = Sequential([Input((3,)), Dense(2)])
    plain.compile(optimizer=optimizers.SGD(0.1), loss="mse")
    plain.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert not np.allclose(plain.get_weights()[0], model.get_weights()[0])
