"""cnnkit.initializers against Keras 3: names, classes, aliases, configs and serialize forms,
Keras' fan rules and distributions (statistics on large shapes), orthogonality, seeds, and
argument errors."""
import math
import os

import numpy as np
import pytest

from cnnkit import initializers as I
from cnnkit.layers import Conv2D, Dense
from cnnkit.utils import set_random_seed


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    return pytest.importorskip("keras")


NAMES = {"zeros": "Zeros", "ones": "Ones", "constant": "Constant", "identity": "Identity",
         "random_normal": "RandomNormal", "random_uniform": "RandomUniform",
         "truncated_normal": "TruncatedNormal", "variance_scaling": "VarianceScaling",
         "glorot_uniform": "GlorotUniform", "glorot_normal": "GlorotNormal",
         "he_normal": "HeNormal", "he_uniform": "HeUniform", "lecun_normal": "LecunNormal",
         "lecun_uniform": "LecunUniform", "orthogonal": "Orthogonal"}
ALIASES = {"normal": "RandomNormal", "uniform": "RandomUniform", "one": "Ones", "zero": "Zeros",
           "IdentityInitializer": "Identity", "OrthogonalInitializer": "Orthogonal"}


@pytest.mark.parametrize("name,class_name", sorted({**NAMES, **ALIASES}.items()))
def test_every_name_class_and_alias_resolves(name, class_name):
    cls = getattr(I, class_name)
    assert type(I.get(name)) is cls
    assert type(I.get(class_name)) is cls
    assert type(I.get(cls)) is cls
    if name in NAMES:
        assert getattr(I, name) is cls  # keras.initializers.he_uniform is the class too
    instance = cls()
    assert I.get(instance) is instance


def test_get_takes_none_callables_and_arrays_and_refuses_unknown_names():
    assert I.get(None) is None
    fn = lambda shape, dtype=None: np.full(shape, 7.0, np.float32)  # noqa: E731
    assert I.get(fn) is fn
    value = np.arange(6.0).reshape(2, 3)
    assert np.array_equal(I.get(value)((2, 3)), value)
    with pytest.raises(ValueError, match="shape"):
        I.get(value)((3, 2))
    for bad in ("foo", "HENORMAL", "He_Normal", 5, {"class_name": "Foo", "config": {}}):
        with pytest.raises(ValueError, match="initializer|Unknown"):
            I.get(bad)


def test_names_are_case_sensitive_as_in_keras(keras):
    for name in ("HENORMAL", "Glorot_Uniform", "Normal"):
        with pytest.raises(ValueError):
            keras.initializers.get(name)
        with pytest.raises(ValueError):
            I.get(name)


# ---------------------------------------------------------------- configs against Keras

INSTANCES = [
    ("Zeros", {}), ("Ones", {}), ("Constant", {"value": 3.5}),
    ("RandomNormal", {"mean": 1.0, "stddev": 0.2, "seed": 4}),
    ("RandomUniform", {"minval": -1.0, "maxval": 2.0}),
    ("TruncatedNormal", {"mean": 0.5, "stddev": 2.0, "seed": 1}),
    ("VarianceScaling", {"scale": 2.0, "mode": "fan_avg", "distribution": "uniform", "seed": 3}),
    ("VarianceScaling", {"distribution": "normal"}),
    ("VarianceScaling", {"input_axes": [0, 1], "output_axes": [2]}),
    ("GlorotUniform", {"seed": 7}), ("GlorotNormal", {}), ("HeNormal", {}), ("HeUniform", {"seed": 0}),
    ("LecunNormal", {}), ("LecunUniform", {}), ("Orthogonal", {"gain": 2.0, "seed": 5}),
]


@pytest.mark.parametrize("class_name,kwargs", INSTANCES)
def test_configs_and_serialize_forms_match_keras(keras, class_name, kwargs):
    ours = getattr(I, class_name)(**kwargs)
    theirs = getattr(keras.initializers, class_name)(**kwargs)
    assert ours.get_config() == theirs.get_config()
    assert I.serialize(ours) == keras.initializers.serialize(theirs)
    # Keras' serialize form and a bare {"class_name", "config"} both come back
    back = I.get(keras.initializers.serialize(theirs))
    assert type(back) is type(ours) and back.get_config() == ours.get_config()
    bare = I.deserialize({"class_name": class_name, "config": ours.get_config()})
    assert bare.get_config() == ours.get_config()
    assert ours.clone().get_config() == ours.get_config()


def test_plain_names_give_keras_defaults(keras):
    for name in NAMES:
        if name == "constant":  # Keras' get("constant") fails (its from_config wants a value)
            continue
        ours, theirs = I.get(name), keras.initializers.get(name)
        expected = theirs.get_config()
        if name == "identity":
            expected = {"gain": 1.0}  # Keras' Identity forgets gain in its config; cnnkit keeps it
        assert ours.get_config() == expected, name


def test_layers_round_trip_their_initializers():
    layer = Dense(4, kernel_initializer=I.Orthogonal(gain=0.5, seed=1), bias_initializer="ones")
    config = layer.get_config()
    assert config["kernel_initializer"]["class_name"] == "Orthogonal"
    again = Dense.from_config(config)
    assert again.kernel_initializer.get_config() == {"seed": 1, "gain": 0.5}
    conv = Conv2D(8, 3, kernel_initializer="lecun_uniform")
    conv(np.zeros((1, 5, 5, 2), np.float32))
    limit = math.sqrt(3 / (3 * 3 * 2))
    assert np.abs(conv.get_weights()[0]).max() <= limit


# ---------------------------------------------------------------- distributions

SHAPE = (3, 3, 64, 256)          # fan_in = 576, fan_out = 2304 (Keras' conv fan rule)
FAN_IN, FAN_OUT = 3 * 3 * 64, 3 * 3 * 256


@pytest.mark.parametrize("name,variance,uniform", [
    ("glorot_uniform", 2 / (FAN_IN + FAN_OUT), True),
    ("glorot_normal", 2 / (FAN_IN + FAN_OUT), False),
    ("he_uniform", 2 / FAN_IN, True),
    ("he_normal", 2 / FAN_IN, False),
    ("lecun_uniform", 1 / FAN_IN, True),
    ("lecun_normal", 1 / FAN_IN, False),
])
def test_variance_scaling_presets_follow_keras_fans(name, variance, uniform):
    w = I.get(name)(SHAPE).astype(np.float64)
    assert w.dtype == np.float64 and w.shape == SHAPE
    std = math.sqrt(variance)
    assert abs(w.mean()) < 0.02 * std
    assert abs(w.std() - std) < 0.02 * std
    if uniform:
        limit = math.sqrt(3 * variance)
        assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit
    else:
        # truncated at two standard deviations of the untruncated normal, std / 0.8796...
        bound = 2 * std / 0.87962566103423978
        assert np.abs(w).max() <= bound * (1 + 1e-6) and np.abs(w).max() > 0.98 * bound


def test_variance_scaling_modes_distributions_and_axes():
    shape = (200, 100, 30)  # fan_in = 200 * 100, fan_out = 200 * 30
    for mode, fan in (("fan_in", 200 * 100), ("fan_out", 200 * 30), ("fan_avg", 200 * 65)):
        w = I.VarianceScaling(3.0, mode, "untruncated_normal", seed=1)(shape)
        assert abs(w.std() - math.sqrt(3.0 / fan)) < 0.01 * math.sqrt(3.0 / fan)
        assert np.abs(w).max() > 3 * math.sqrt(3.0 / fan)  # untruncated: tails beyond 2 std
    dense = I.VarianceScaling(1.0, "fan_in", "uniform")((500, 300))
    assert abs(dense.std() - math.sqrt(1 / 500)) < 0.02 * math.sqrt(1 / 500)
    assert I.compute_fans((7,)) == (7, 7) and I.compute_fans(()) == (1, 1)
    assert I.compute_fans((4, 5, 6), input_axes=[0, 1], output_axes=[2]) == (20, 6)
    w = I.VarianceScaling(1.0, "fan_in", "uniform", input_axes=[0, 1], output_axes=[2])((40, 50, 60))
    assert np.abs(w).max() <= math.sqrt(3 / 2000)


def test_plain_random_initializers():
    w = I.RandomNormal(mean=1.0, stddev=0.5)((400, 500))
    assert abs(w.mean() - 1.0) < 0.005 and abs(w.std() - 0.5) < 0.005
    w = I.RandomUniform(minval=-2.0, maxval=1.0)((400, 500))
    assert w.min() >= -2.0 and w.max() <= 1.0 and abs(w.mean() + 0.5) < 0.01
    assert abs(w.std() - 3 / math.sqrt(12)) < 0.01
    w = I.TruncatedNormal(mean=0.5, stddev=2.0)((400, 500))
    assert np.abs(w - 0.5).max() <= 4.0 + 1e-5 and np.abs(w - 0.5).max() > 3.9
    assert abs(w.mean() - 0.5) < 0.02 and abs(w.std() - 2.0 * 0.87962566) < 0.02
    assert np.array_equal(I.Constant(2.5)((3, 4)), np.full((3, 4), 2.5, np.float32))
    assert np.array_equal(I.Ones()((2, 2)), np.ones((2, 2), np.float32))
    assert np.array_equal(I.Zeros()(()), np.zeros((), np.float32))  # a scalar stays 0-d
    assert np.array_equal(I.Identity(3.0)((2, 3)), 3 * np.eye(2, 3, dtype=np.float32))
    assert I.Ones()((2, 2), dtype="float64").dtype == np.float64
    assert I.HeNormal()((0, 4)).shape == (0, 4)


@pytest.mark.parametrize("shape", [(50, 20), (20, 50), (3, 3, 16, 32), (3, 3, 64, 8), (6, 6)])
@pytest.mark.parametrize("gain", [1.0, 0.5])
def test_orthogonal_is_orthogonal(shape, gain):
    w = I.Orthogonal(gain=gain, seed=3)(shape).astype(np.float64)
    assert w.shape == shape
    flat = w.reshape(-1, shape[-1])
    small = min(flat.shape)
    gram = flat.T @ flat if flat.shape[0] >= flat.shape[1] else flat @ flat.T
    np.testing.assert_allclose(gram, gain ** 2 * np.eye(small), atol=1e-5)


@pytest.mark.parametrize("shape", [(40, 10), (10, 40), (2, 2, 3, 24)])
def test_orthogonal_orients_as_keras(keras, shape):
    """Keras makes the columns orthonormal for tall flattened shapes and the rows for wide
    ones; so does cnnkit."""
    for w in (I.Orthogonal(gain=1.5)(shape), keras.initializers.Orthogonal(gain=1.5)(shape)):
        flat = np.asarray(w, np.float64).reshape(-1, shape[-1])
        gram = flat.T @ flat if flat.shape[0] >= flat.shape[1] else flat @ flat.T
        np.testing.assert_allclose(gram, 2.25 * np.eye(min(flat.shape)), atol=1e-4)


@pytest.mark.parametrize("class_name", ["RandomNormal", "RandomUniform", "TruncatedNormal",
                                        "VarianceScaling", "GlorotUniform", "GlorotNormal",
                                        "HeNormal", "HeUniform", "LecunNormal", "LecunUniform",
                                        "Orthogonal"])
@pytest.mark.parametrize("shape", [(30, 20), (3, 3, 4, 8)])
def test_seeded_values_are_keras_numpy_backend_values(keras, class_name, shape):
    """Keras' NumPy backend draws from numpy.random.default_rng(seed) as cnnkit does, with the
    same calls: a seeded initializer gives the very same values (up to float32 rounding)."""
    if keras.backend.backend() != "numpy":
        pytest.skip("Keras runs another backend, with its own generator")
    ours = getattr(I, class_name)(seed=3)(shape)
    theirs = np.asarray(getattr(keras.initializers, class_name)(seed=3)(shape))
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)


def test_seeds_repeat_and_unseeded_draws_follow_set_random_seed():
    for cls in (I.RandomNormal, I.RandomUniform, I.TruncatedNormal, I.GlorotUniform, I.HeNormal,
                I.LecunNormal, I.Orthogonal, I.VarianceScaling):
        seeded = cls(seed=11)
        assert np.array_equal(seeded((8, 9)), seeded((8, 9)))
        assert np.array_equal(seeded((8, 9)), cls(seed=11)((8, 9)))
        assert not np.array_equal(seeded((8, 9)), cls(seed=12)((8, 9)))
        unseeded = cls()
        set_random_seed(5)
        first = unseeded((8, 9))
        assert not np.array_equal(first, unseeded((8, 9)))
        set_random_seed(5)
        assert np.array_equal(first, unseeded((8, 9)))


@pytest.mark.parametrize("make,match", [
    (lambda: I.VarianceScaling(scale=0.0), "scale"),
    (lambda: I.VarianceScaling(mode="fan_sum"), "mode"),
    (lambda: I.VarianceScaling(distribution="cauchy"), "distribution"),
    (lambda: I.RandomNormal(stddev=-1.0), "stddev"),
    (lambda: I.TruncatedNormal(stddev=-1.0), "stddev"),
    (lambda: I.RandomUniform(minval=1.0, maxval=0.0), "maxval"),
    (lambda: I.HeNormal(seed="x"), "seed"),
    (lambda: I.HeNormal(seed=-3), "seed"),
    (lambda: I.Orthogonal()((5,)), "two-dimensional"),
    (lambda: I.Identity()((2, 2, 2)), "2D"),
    (lambda: I.deserialize({"class_name": "HeNormal", "config": {"sead": 1}}), "HeNormal"),
    (lambda: I.deserialize(["he_normal"]), "class_name"),
    (lambda: I.Zeros()((2, -1)), "shape"),
])
def test_bad_arguments_are_value_errors_naming_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_non_numbers_are_type_errors():
    with pytest.raises(TypeError, match="value"):
        I.Constant("one")
    with pytest.raises(TypeError, match="gain"):
        I.Orthogonal(gain=None)
