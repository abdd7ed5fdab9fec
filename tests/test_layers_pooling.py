"""The pooling and reshaping layers of issue 12: MaxPooling2D ('same' included),
AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, ZeroPadding2D, Cropping2D and
UpSampling2D(interpolation='bilinear'): numbers and shapes against Keras 3, configs, bad
arguments, training through model.fit and a warm step that allocates nothing."""
import os
import re

import numpy as np
import pytest

from cnnkit import layers, models, optimizers, reference as R
from cnnkit.utils import set_random_seed

from test_step_allocations import STEP_BOUND, traced_growth

# (class name, kwargs, input shape): each layer in the configurations a user meets.
CASES = [
    ("MaxPooling2D", dict(pool_size=2, padding="same"), (2, 5, 7, 3)),
    ("MaxPooling2D", dict(pool_size=3, strides=2, padding="same"), (2, 8, 9, 4)),
    ("MaxPooling2D", dict(pool_size=(2, 3), strides=(1, 2)), (1, 6, 7, 2)),
    ("AveragePooling2D", dict(pool_size=2), (2, 6, 6, 3)),
    ("AveragePooling2D", dict(pool_size=2, padding="same"), (2, 5, 7, 3)),
    ("AveragePooling2D", dict(pool_size=3, strides=2, padding="same"), (2, 8, 9, 4)),
    ("AveragePooling2D", dict(pool_size=(3, 2), strides=1, padding="same"), (1, 4, 5, 2)),
    ("AveragePooling2D", dict(pool_size=3, strides=2), (2, 9, 8, 5)),
    ("GlobalAveragePooling2D", dict(), (3, 5, 6, 7)),
    ("GlobalAveragePooling2D", dict(keepdims=True), (2, 8, 8, 64)),
    ("GlobalMaxPooling2D", dict(), (3, 5, 6, 7)),
    ("GlobalMaxPooling2D", dict(keepdims=True), (2, 4, 4, 3)),
    ("ZeroPadding2D", dict(), (2, 4, 5, 3)),
    ("ZeroPadding2D", dict(padding=(2, 0)), (1, 3, 3, 2)),
    ("ZeroPadding2D", dict(padding=((1, 2), (3, 0))), (2, 4, 5, 3)),
    ("Cropping2D", dict(), (1, 4, 4, 2)),
    ("Cropping2D", dict(cropping=1), (2, 5, 6, 3)),
    ("Cropping2D", dict(cropping=((0, 2), (1, 3))), (2, 5, 6, 3)),
    ("UpSampling2D", dict(), (2, 3, 4, 3)),
    ("UpSampling2D", dict(interpolation="bilinear"), (2, 3, 4, 3)),
    ("UpSampling2D", dict(size=(3, 2), interpolation="bilinear"), (2, 5, 1, 4)),
    ("UpSampling2D", dict(size=(1, 4), interpolation="bilinear"), (1, 2, 6, 5)),
    ("UpSampling2D", dict(size=3, interpolation="bilinear"), (1, 1, 1, 2)),
]
ALIASES = {"MaxPool2D": "MaxPooling2D", "AvgPool2D": "AveragePooling2D",
           "GlobalAvgPool2D": "GlobalAveragePooling2D", "GlobalMaxPool2D": "GlobalMaxPooling2D"}


def keras_or_skip():
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    return pytest.importorskip("keras")


def case_id(case):
    return f"{case[0]}-{'-'.join(f'{k}={v}' for k, v in case[1].items())}"


def run(layer, x, dy=None):
    """Forward in training mode and backward of dy through `layer`, on a state of its own."""
    layer._ensure_built((None,) + x.shape[1:])
    state = layer.new_state()
    y = layer.forward(state, x, training=True)
    return y, (None if dy is None else layer.backward(state, dy))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_numbers_and_shapes_match_keras(case):
    keras = keras_or_skip()
    name, kwargs, shape = case
    x = np.random.default_rng(len(shape) + shape[1]).standard_normal(shape).astype(np.float32)
    theirs = getattr(keras.layers, name)(**kwargs)
    expected = np.asarray(theirs(x))
    y = getattr(layers, name)(**kwargs)(x)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    for unknown in [(None,) + shape[1:], (None, None, None, shape[3]), (None, shape[1], None, shape[3])]:
        assert getattr(layers, name)(**kwargs).compute_output_shape(unknown) == \
            tuple(theirs.compute_output_shape(unknown))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_gradients_match_the_reference(case):
    """The layer's backward (C++) against the float64 reference of the same op."""
    name, kwargs, shape = case
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(np.float32)
    layer = getattr(layers, name)(**kwargs)
    y = layer(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    _, dx = run(layer, x, dy)
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    if name in ("MaxPooling2D", "AveragePooling2D"):
        op = "maxpool2d" if name == "MaxPooling2D" else "avgpool2d"
        geometry = {k: kwargs.get(k, d) for k, d in
                    [("pool_size", (2, 2)), ("strides", None), ("padding", "valid")]}
        y_ref = getattr(R, op + "_forward")(x64, **geometry)
        dx_ref = getattr(R, op + "_backward")(dy64, x64, **geometry)
    elif name.startswith("Global"):
        op = "global_avgpool2d" if "Average" in name else "global_maxpool2d"
        y_ref = getattr(R, op + "_forward")(x64)
        dx_ref = getattr(R, op + "_backward")(dy64.reshape(len(x), -1), x64)
        y_ref = y_ref.reshape(y.shape)
    elif name == "UpSampling2D":
        args = (kwargs.get("size", (2, 2)), kwargs.get("interpolation", "nearest"))
        y_ref, dx_ref = R.upsampling2d_forward(x64, *args), R.upsampling2d_backward(dy64, *args)
    else:
        op, arg = ("zero_padding2d", "padding") if name == "ZeroPadding2D" else ("cropping2d", "cropping")
        sides = kwargs.get(arg, (1, 1) if arg == "padding" else 0)
        y_ref = getattr(R, op + "_forward")(x64, sides)
        dx_ref = getattr(R, op + "_backward")(dy64, sides)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_config_round_trips(case):
    name, kwargs, _ = case
    layer = getattr(layers, name)(name="mine", trainable=False, **kwargs)
    config = layer.get_config()
    again = type(layer).from_config(config)
    assert type(again) is type(layer) and again.get_config() == config
    assert config["name"] == "mine" and config["trainable"] is False
    assert config["data_format"] == "channels_last"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_config_keys_and_values_match_keras(case):
    keras = keras_or_skip()
    name, kwargs, _ = case
    config = getattr(layers, name)(**kwargs).get_config()
    theirs = getattr(keras.layers, name)(**kwargs).get_config()
    assert set(config) == set(theirs) - {"dtype"}
    for key in set(config) - {"name", "trainable"}:  # the same values, as JSON would hold them
        assert config[key] == _as_lists(theirs[key]), key


def _as_lists(value):
    return [_as_lists(v) for v in value] if isinstance(value, (tuple, list)) else value


def test_aliases_and_default_names_match_keras():
    keras = keras_or_skip()
    for alias, name in ALIASES.items():
        assert getattr(layers, alias) is getattr(layers, name)
        assert getattr(keras.layers, alias) is getattr(keras.layers, name)
    for name in set(ALIASES.values()) | {"ZeroPadding2D", "Cropping2D", "UpSampling2D"}:
        args = (2,) if name == "AveragePooling2D" else ()  # Keras has no default pool_size there
        ours, theirs = getattr(layers, name)(*args), getattr(keras.layers, name)(*args)
        assert re.sub(r"_\d+$", "", ours.name) == re.sub(r"_\d+$", "", theirs.name)


def test_interpolation_is_lower_cased_as_keras_does():
    keras = keras_or_skip()
    assert layers.UpSampling2D(interpolation="Bilinear").get_config()["interpolation"] == \
        keras.layers.UpSampling2D(interpolation="Bilinear").get_config()["interpolation"] == "bilinear"


# ---------------------------------------------------------------- bad arguments

V, T = ValueError, TypeError
BAD = [
    (lambda: layers.AveragePooling2D(0), V, ["AveragePooling2D", "pool_size"]),
    (lambda: layers.AveragePooling2D((2, -1)), V, ["pool_size"]),
    (lambda: layers.AveragePooling2D(2, strides=0), V, ["strides"]),
    (lambda: layers.AveragePooling2D(2, strides=(1, 2, 3)), V, ["strides"]),
    (lambda: layers.AveragePooling2D(2.5), T, ["pool_size"]),
    (lambda: layers.AveragePooling2D(2, padding="full"), V, ["padding"]),
    (lambda: layers.MaxPooling2D(data_format="channels_first"), V, ["MaxPooling2D", "data_format"]),
    (lambda: layers.AveragePooling2D(data_format="channels_first"), V, ["data_format"]),
    (lambda: layers.GlobalAveragePooling2D(data_format="channels_first"), V, ["data_format"]),
    (lambda: layers.GlobalMaxPooling2D(keepdims="yes"), T, ["GlobalMaxPooling2D", "keepdims"]),
    (lambda: layers.ZeroPadding2D(-1), V, ["ZeroPadding2D", "padding"]),
    (lambda: layers.ZeroPadding2D((1, 2, 3)), V, ["padding"]),
    (lambda: layers.ZeroPadding2D(((1, 2), 3)), T, ["padding"]),
    (lambda: layers.ZeroPadding2D(((1, 2), (3,))), V, ["padding[1]"]),
    (lambda: layers.ZeroPadding2D(((1, 2), (3, -1))), V, ["padding[1]", "negative"]),
    (lambda: layers.ZeroPadding2D("same"), T, ["padding"]),
    (lambda: layers.ZeroPadding2D(data_format="channels_first"), V, ["data_format"]),
    (lambda: layers.Cropping2D(-2), V, ["Cropping2D", "cropping"]),
    (lambda: layers.Cropping2D(((0, 0), (0, 0), (0, 0))), V, ["cropping"]),
    (lambda: layers.Cropping2D((1.0, 2)), T, ["cropping"]),
    (lambda: layers.Cropping2D(data_format="channels_first"), V, ["data_format"]),
    (lambda: layers.UpSampling2D(0), V, ["UpSampling2D", "size"]),
    (lambda: layers.UpSampling2D(interpolation="bicubic"), V, ["UpSampling2D", "interpolation"]),
    (lambda: layers.UpSampling2D(interpolation=1), T, ["interpolation"]),
    (lambda: layers.UpSampling2D(data_format="channels_first"), V, ["data_format"]),
    (lambda: models.Sequential([layers.Input((3, 3, 1)), layers.AveragePooling2D(4)]), V,
     ["4x4", "larger than the image"]),
    (lambda: models.Sequential([layers.Input((4, 5, 1)), layers.Cropping2D(((2, 2), (0, 0)))]), V,
     ["Cropping2D", "cropping"]),
    (lambda: layers.Cropping2D((1, 3))(np.zeros((1, 5, 6, 1))), V, ["cropping"]),
    (lambda: layers.GlobalAveragePooling2D()(np.zeros((1, 5, 6))), V, ["ndim=4"]),
]


@pytest.mark.parametrize("call,exc,words", BAD)
def test_bad_arguments_name_the_layer_and_argument(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_cropping_that_leaves_nothing_is_refused_by_keras_too():
    keras = keras_or_skip()
    with pytest.raises(ValueError):
        keras.layers.Cropping2D(((2, 2), (0, 0))).compute_output_shape((None, 4, 5, 1))


# ---------------------------------------------------------------- training

def small_model():
    """A model through every layer of the family, ending in a classifier."""
    return models.Sequential([
        layers.Input((8, 8, 2)),
        layers.ZeroPadding2D(((1, 0), (0, 1))),
        layers.Conv2D(6, 3, padding="same", activation="relu"),
        layers.AveragePooling2D(3, strides=2, padding="same"),
        layers.UpSampling2D(interpolation="bilinear"),
        layers.Cropping2D(1),
        layers.MaxPooling2D(2, padding="same"),
        layers.Conv2D(8, 3, padding="same", activation="relu"),
        layers.GlobalAveragePooling2D(keepdims=True),
        layers.Flatten(),
        layers.Dense(3, activation="softmax"),
    ])


def data(n=48):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, n)
    x = rng.standard_normal((n, 8, 8, 2)).astype(np.float32) * 0.3
    x[:, :, :, 0] += labels[:, None, None] - 1.0  # learnable: the class shifts channel 0
    return x, np.eye(3, dtype=np.float32)[labels]


def test_a_model_of_the_family_trains_with_fit():
    set_random_seed(0)
    model = small_model()
    assert model.output_shape == (None, 3)
    model.compile(optimizer=optimizers.Adam(0.01), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    x, y = data()
    history = model.fit(x, y, batch_size=8, epochs=8, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.7 * losses[0], losses


def test_global_max_pooling_model_trains_with_fit():
    set_random_seed(1)
    model = models.Sequential([layers.Input((8, 8, 2)), layers.Conv2D(6, 3, activation="relu"),
                               layers.GlobalMaxPooling2D(), layers.Dense(3, activation="softmax")])
    model.compile(optimizer=optimizers.Adam(0.01), loss="categorical_crossentropy")
    x, y = data()
    losses = model.fit(x, y, batch_size=8, epochs=8, verbose=0).history["loss"]
    assert losses[-1] < 0.7 * losses[0], losses


def test_a_warm_step_allocates_no_array():
    set_random_seed(0)
    model = small_model()
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    x, y = data(16)
    model.train_on_batch(x, y)
    rises = traced_growth(lambda: model.train_on_batch(x, y))
    assert max(rises) < STEP_BOUND, rises


def test_a_warm_step_of_global_max_pooling_allocates_no_array():
    set_random_seed(0)
    model = models.Sequential([layers.Input((8, 8, 2)), layers.Conv2D(6, 3),
                               layers.GlobalMaxPooling2D(keepdims=True), layers.Flatten(),
                               layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    x, y = data(16)
    model.train_on_batch(x, y)
    rises = traced_growth(lambda: model.train_on_batch(x, y))
    assert max(rises) < STEP_BOUND, rises


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # Keras' own
def test_a_trained_model_of_the_family_matches_keras_with_the_same_weights():
    keras = keras_or_skip()
    set_random_seed(0)
    ours = small_model()
    theirs = keras.Sequential([keras.layers.Input((8, 8, 2))] + [
        getattr(keras.layers, type(layer).__name__).from_config(
            {k: v for k, v in layer.get_config().items() if k != "name"})
        for layer in ours.layers])
    theirs.set_weights(ours.get_weights())
    x, _ = data(4)
    np.testing.assert_allclose(ours.predict(x, verbose=0), np.asarray(theirs(x)), rtol=1e-4,
                               atol=1e-5)


def test_eager_calls_return_new_arrays():
    x = np.random.default_rng(0).standard_normal((2, 4, 4, 3)).astype(np.float32)
    for layer in [layers.AveragePooling2D(), layers.GlobalAveragePooling2D(),
                  layers.ZeroPadding2D(), layers.Cropping2D(1), layers.UpSampling2D(interpolation="bilinear")]:
        a, b = layer(x), layer(x)
        assert a is not b and not np.shares_memory(a, b)


GRADIENT_SCRIPT = r"""
import numpy as np, jax, jax.numpy as jnp, keras
from cnnkit import layers
from test_layers_pooling import CASES
# the cases whose gradient has something to get wrong: clipped windows, interpolation, overlap
CASES = [c for c in CASES if c[1].get("padding") == "same" or c[1].get("interpolation")
         or c[0].startswith("Global") or c[0] == "Cropping2D" and c[1]]
rng = np.random.default_rng(0)
worst = 0.0
for name, kwargs, shape in CASES:
    x = rng.standard_normal(shape).astype(np.float32)
    theirs = getattr(keras.layers, name)(**kwargs)
    dy = rng.standard_normal(np.asarray(theirs(x)).shape).astype(np.float32)
    expected = np.asarray(jax.grad(lambda t: jnp.sum(theirs(t) * dy))(jnp.asarray(x)))
    ours = getattr(layers, name)(**kwargs)
    ours._ensure_built((None,) + shape[1:])
    state = ours.new_state()
    ours.forward(state, x, training=True)
    np.testing.assert_allclose(ours.backward(state, dy), expected, rtol=1e-5, atol=1e-5,
                               err_msg=f"{name} {kwargs}")
print("ok", len(CASES))
"""


def test_gradients_match_keras_on_jax():
    """Keras' numpy backend has no gradients: jax's, in a process of its own (the backend is
    chosen at import). Random ties are improbable, so max pooling's tie rule does not matter."""
    import subprocess
    import sys
    keras_or_skip()
    pytest.importorskip("jax")
    here = os.path.dirname(os.path.abspath(__file__))
    # the cnnkit this process runs (the installed one in CI, whose source tree has no _core)
    import cnnkit
    cnnkit_parent = os.path.dirname(os.path.dirname(os.path.abspath(cnnkit.__file__)))
    env = dict(os.environ, KERAS_BACKEND="jax",
               PYTHONPATH=os.pathsep.join([cnnkit_parent, here,
                                           os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", GRADIENT_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and "ok " in done.stdout, done.stderr[-3000:]
