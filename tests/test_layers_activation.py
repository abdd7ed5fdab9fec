"""cnnkit.activations and the activation layers (ReLU, LeakyReLU, PReLU, ELU, Softmax, and
Activation / Dense / Conv2D with any activation): lookup by name and by Keras' functions, layer
forward and backward against cnnkit.reference, Keras parity (values, configs), bad arguments,
training through fit, and no allocation in a warm step."""
import os

import numpy as np
import pytest

import cnnkit
from cnnkit import activations, layers, reference as R
from cnnkit.layers import ELU, PReLU, ReLU, LeakyReLU, Softmax, Activation, Conv2D, Dense
from cnnkit.models import Sequential
from cnnkit.utils import set_random_seed
from test_step_allocations import traced_growth

# Keras' numpy backend warns about NumPy 2's copy keyword when its set_weights reads our arrays.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

rng = np.random.default_rng(21)

NAMES = ["relu", "leaky_relu", "relu6", "sigmoid", "tanh", "softmax", "log_softmax", "linear",
         "exponential", "gelu", "silu", "swish", "elu", "selu", "softplus", "softsign",
         "hard_sigmoid", "hard_silu", "hard_swish", "mish"]
ALIASES = {"swish": "silu", "hard_swish": "hard_silu"}

# name -> (reference forward, reference backward, backward takes the input)
REFERENCE = {
    "relu": (R.relu_forward, R.relu_backward, False),
    "leaky_relu": (R.leaky_relu_forward, R.leaky_relu_backward, True),
    "relu6": (R.relu6_forward, R.relu6_backward, True),
    "sigmoid": (R.sigmoid_forward, R.sigmoid_backward, False),
    "tanh": (R.tanh_forward, R.tanh_backward, False),
    "softmax": (R.softmax_forward, R.softmax_backward, False),
    "log_softmax": (R.log_softmax_forward, R.log_softmax_backward, False),
    "exponential": (R.exponential_forward, R.exponential_backward, False),
    "gelu": (R.gelu_forward, R.gelu_backward, True),
    "silu": (R.silu_forward, R.silu_backward, True),
    "elu": (R.elu_forward, R.elu_backward, True),
    "selu": (R.selu_forward, R.selu_backward, True),
    "softplus": (R.softplus_forward, R.softplus_backward, True),
    "softsign": (R.softsign_forward, R.softsign_backward, True),
    "hard_sigmoid": (R.hard_sigmoid_forward, R.hard_sigmoid_backward, True),
    "hard_silu": (R.hard_silu_forward, R.hard_silu_backward, True),
    "mish": (R.mish_forward, R.mish_backward, True),
}


def randn(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def f64(a):
    return np.asarray(a, np.float64)


def close(actual, expected, tol=1e-5):
    expected = f64(expected)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(f64(actual), expected, rtol=tol, atol=tol * scale)


def run(layer, x, training=True):
    """A built layer's forward on a call state of its own; (output, state)."""
    state = layer.new_state()
    return layer.forward(state, np.ascontiguousarray(x, np.float32), training), state


# ---------------------------------------------------------------- activations by name

@pytest.mark.parametrize("name", NAMES)
def test_get_serialize_and_deserialize_round_trip(name):
    function = activations.get(name)
    canonical = ALIASES.get(name, name)
    assert function is getattr(activations, name) and callable(function)
    assert activations.serialize(name) == canonical
    assert activations.serialize(function) == canonical
    assert activations.deserialize(canonical) is function
    assert activations.get({"module": "keras.activations", "class_name": "function",
                            "config": canonical, "registered_name": None}) is function
    x = randn(3, 4, scale=2.0)
    if name != "linear":
        ref = REFERENCE[canonical][0]
        close(function(x), ref(f64(x)))


def test_get_none_is_linear_and_unknown_names_list_what_exists():
    assert activations.get(None) is activations.linear
    assert activations.serialize(None) == "linear"
    with pytest.raises(ValueError, match="gelu") as info:
        activations.get("gleu")
    assert "'gleu'" in str(info.value) and "hard_swish" in str(info.value)
    with pytest.raises(ValueError, match="Unknown activation"):
        activations.get(lambda x: x)
    with pytest.raises(ValueError, match="Unknown activation"):
        Dense(3, activation="nope")
    with pytest.raises(ValueError, match="Unknown activation"):
        Activation("threshold")


def test_functions_take_keras_arguments():
    x = np.array([-4.0, -1.0, 0.25, 0.5, 2.0, 9.0], np.float32)
    close(activations.relu(x, negative_slope=0.1, max_value=5.0, threshold=0.5),
          R.relu_general_forward(f64(x), 0.1, 5.0, 0.5))
    close(activations.relu(x), np.maximum(x, 0))
    close(activations.leaky_relu(x), np.where(x > 0, x, 0.2 * x))
    close(activations.elu(x, alpha=0.5), R.elu_forward(f64(x), 0.5))
    close(activations.gelu(x, approximate=True), R.gelu_forward(f64(x), approximate=True))
    m = randn(2, 3, 4)
    close(activations.softmax(m, axis=1), R.softmax_forward(f64(m), 1))
    close(activations.log_softmax(m, axis=0), R.log_softmax_forward(f64(m), 0))
    close(activations.relu([1, -2, 3]), [1, 0, 3])  # integers, as Keras casts them


# ---------------------------------------------------------------- Keras parity

def keras_module():
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    return pytest.importorskip("keras")


@pytest.mark.parametrize("name", NAMES)
def test_functions_match_keras(name):
    keras = keras_module()
    x = randn(4, 7, scale=3.0)
    x[0, :4] = [0.0, -30.0, 30.0, 3.0]
    expected = np.asarray(getattr(keras.activations, name)(x))
    close(getattr(activations, name)(x), expected, 2e-5)
    # Keras' own function object names the same activation
    assert activations.get(getattr(keras.activations, name)) is activations.get(name)


def test_keras_function_arguments_match():
    keras = keras_module()
    x = randn(5, 6, scale=3.0)
    for kwargs in [dict(negative_slope=0.1), dict(max_value=2.0), dict(threshold=0.5),
                   dict(negative_slope=0.2, max_value=6.0, threshold=1.0)]:
        close(activations.relu(x, **kwargs), keras.activations.relu(x, **kwargs))
    close(activations.gelu(x, approximate=True), keras.activations.gelu(x, approximate=True), 2e-5)
    close(activations.elu(x, alpha=0.3), keras.activations.elu(x, alpha=0.3))
    close(activations.leaky_relu(x, negative_slope=0.05),
          keras.activations.leaky_relu(x, negative_slope=0.05))
    close(activations.softmax(x, axis=0), keras.activations.softmax(x, axis=0))


LAYER_CASES = [(ReLU, {}), (ReLU, dict(max_value=6.0)), (ReLU, dict(negative_slope=0.1)),
               (ReLU, dict(max_value=3.0, negative_slope=0.2, threshold=0.5)),
               (LeakyReLU, {}), (LeakyReLU, dict(negative_slope=0.05)), (ELU, {}),
               (ELU, dict(alpha=0.4)), (Softmax, {}), (Softmax, dict(axis=1)),
               (Softmax, dict(axis=[2])), (PReLU, {}), (PReLU, dict(shared_axes=[1, 2])),
               (PReLU, dict(shared_axes=3))]


@pytest.mark.parametrize("cls,kwargs", LAYER_CASES)
def test_layers_match_keras_values_and_configs(cls, kwargs):
    keras = keras_module()
    ours, theirs = cls(**kwargs), getattr(keras.layers, cls.__name__)(**kwargs)
    x = randn(2, 5, 4, 3, scale=2.0)
    theirs.build(x.shape)
    ours(x)  # builds
    if cls is PReLU:
        alpha = rng.uniform(-0.5, 1.5, ours.alpha.shape).astype(np.float32)
        ours.set_weights([alpha])
        theirs.set_weights([alpha])
        assert [w.shape for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    close(ours(x), np.asarray(theirs(x)))
    config, keras_config = ours.get_config(), theirs.get_config()
    keras_config.pop("dtype", None)
    assert set(config) - {"batch_input_shape"} == set(keras_config)
    for key, value in keras_config.items():
        if key not in ("name", "alpha_initializer"):
            assert config[key] == value, key
    if cls is PReLU:
        assert config["alpha_initializer"]["class_name"] == keras_config["alpha_initializer"]["class_name"]
    again = cls.from_config(config)
    assert again.get_config() == config
    assert layers.Layer  # the package re-exports the layers
    assert getattr(layers, cls.__name__) is cls


def test_default_names_match_keras():
    for cls, name in [(ReLU, "re_lu"), (LeakyReLU, "leaky_re_lu"), (PReLU, "p_re_lu"),
                      (ELU, "elu"), (Softmax, "softmax")]:
        assert cls().name.startswith(name)


@pytest.mark.parametrize("activation", ["gelu", "swish", "elu", "mish", "tanh", "hard_silu"])
def test_dense_and_conv2d_activations_match_keras(activation):
    keras = keras_module()
    x = randn(2, 6, 5, 3)
    ours = Conv2D(4, 3, padding="same", activation=activation)
    theirs = keras.layers.Conv2D(4, 3, padding="same", activation=activation)
    ours(x)
    theirs.build(x.shape)
    theirs.set_weights(ours.get_weights())
    close(ours(x), np.asarray(theirs(x)), 2e-5)
    assert ours.get_config()["activation"] == theirs.get_config()["activation"]
    dense = Dense(3, activation=getattr(keras.activations, activation))
    kdense = keras.layers.Dense(3, activation=activation)
    flat = x.reshape(2, -1)
    dense(flat)
    kdense.build(flat.shape)
    kdense.set_weights(dense.get_weights())
    close(dense(flat), np.asarray(kdense(flat)), 2e-5)
    assert dense.get_config()["activation"] == kdense.get_config()["activation"]


# ---------------------------------------------------------------- layers against the reference

@pytest.mark.parametrize("name", sorted(REFERENCE))
@pytest.mark.parametrize("where", ["Activation", "Dense", "Conv2D"])
def test_any_activation_runs_forward_and_backward_like_the_reference(name, where):
    forward, backward, saves_input = REFERENCE[name]
    x = randn(2, 5, 4, 3)
    if where == "Activation":
        layer = Activation(name)
        y, state = run(layer, x)
        z = f64(x)
    elif where == "Dense":
        layer = Dense(6, activation=name, bias_initializer="random_normal")
        x = x.reshape(20, 6)
        layer(x)
        y, state = run(layer, x)
        w, b = layer.get_weights()
        z = f64(x) @ f64(w) + b
    else:
        layer = Conv2D(4, 3, padding="same", activation=name, bias_initializer="random_normal")
        layer(x)
        y, state = run(layer, x)
        w, b = layer.get_weights()
        z = R.conv2d_forward(f64(x), f64(w), f64(b), (1, 1), "same")
    close(y, forward(z))
    dy = randn(*y.shape)
    dz = backward(f64(dy), z if saves_input else f64(y))
    dx = layer.backward(state, dy)
    if where == "Activation":
        close(dx, dz)
    elif where == "Dense":
        close(dx, dz @ f64(w).T)
        close(state.grads[0], f64(x).T @ dz, 1e-4)
    else:
        rdx, rdw, rdb = R.conv2d_backward(dz, f64(x), f64(w), (1, 1), "same")
        close(dx, rdx, 1e-4)
        close(state.grads[0], rdw, 1e-4)


@pytest.mark.parametrize("cls,kwargs", LAYER_CASES)
def test_activation_layers_backward_matches_the_reference(cls, kwargs):
    layer = cls(**kwargs)
    x = randn(3, 4, 5, 6, scale=2.0)
    layer(x)
    if cls is PReLU:
        layer.set_weights([rng.uniform(-0.5, 1.5, layer.alpha.shape)])
    y, state = run(layer, x)
    dy = randn(*y.shape)
    dx = layer.backward(state, dy)
    x64, dy64 = f64(x), f64(dy)
    if cls is ReLU:
        args = dict(negative_slope=layer.negative_slope, max_value=layer.max_value,
                    threshold=layer.threshold)
        close(y, R.relu_general_forward(x64, **args))
        close(dx, R.relu_general_backward(dy64, x64, **args))
    elif cls is LeakyReLU:
        close(y, R.leaky_relu_forward(x64, layer.negative_slope))
        close(dx, R.leaky_relu_backward(dy64, x64, layer.negative_slope))
    elif cls is ELU:
        close(y, R.elu_forward(x64, layer.alpha))
        close(dx, R.elu_backward(dy64, x64, layer.alpha))
    elif cls is Softmax:
        axis = layer._axis
        close(y, R.softmax_forward(x64, axis))
        close(dx, R.softmax_backward(dy64, f64(y), axis))
    else:
        alpha = f64(layer.alpha)
        close(y, R.prelu_forward(x64, alpha))
        rdx, rdalpha = R.prelu_backward(dy64, x64, alpha)
        close(dx, rdx)
        close(state.grads[0], rdalpha, 1e-4)
    assert len(state.grads) == len(layer.trainable_weights)
    state.need_dx = False
    assert layer.backward(state, dy) is None


def test_prelu_alpha_shape_and_shared_axes_of_any_size():
    layer = PReLU(shared_axes=[1, 2])
    layer.build((None, 8, 8, 5))
    assert layer.alpha.shape == (1, 1, 5) and layer.count_params() == 5
    assert layer(randn(2, 3, 4, 5)).shape == (2, 3, 4, 5)  # shared axes may change size
    with pytest.raises(ValueError, match="p_re_lu|PReLU"):
        layer(randn(2, 3, 4, 6))
    full = PReLU(alpha_initializer="ones")
    full.build((None, 4, 3))
    assert full.alpha.shape == (4, 3)
    x = randn(2, 4, 3)
    np.testing.assert_array_equal(full(x), x)  # alpha 1: the identity


# ---------------------------------------------------------------- bad arguments

@pytest.mark.parametrize("make,argument", [
    (lambda: ReLU(max_value=-1.0), "max_value"),
    (lambda: ReLU(negative_slope=-0.1), "negative_slope"),
    (lambda: ReLU(negative_slope=None), "negative_slope"),
    (lambda: ReLU(threshold=-0.5), "threshold"),
    (lambda: ReLU(max_value="six"), "max_value"),
    (lambda: LeakyReLU(negative_slope=-0.3), "negative_slope"),
    (lambda: LeakyReLU(negative_slope=None), "negative_slope"),
    (lambda: ELU(alpha="one"), "alpha"),
    (lambda: Softmax(axis="last"), "axis"),
    (lambda: PReLU(shared_axes=["h"]), "shared_axes"),
])
def test_bad_arguments_are_value_errors_naming_the_argument(make, argument):
    with pytest.raises(ValueError, match=argument):
        make()


def test_bad_axes_and_unsupported_features():
    with pytest.raises(ValueError, match="axis"):
        Softmax(axis=3)(randn(2, 3, 4))
    with pytest.raises(ValueError, match="axis"):
        Softmax(axis=-4).build((None, 3, 4))
    with pytest.raises(ValueError, match="shared_axes"):
        PReLU(shared_axes=[3]).build((None, 3, 4))
    with pytest.raises(ValueError, match="shared_axes"):
        PReLU(shared_axes=[0]).build((None, 3, 4))
    with pytest.raises(NotImplementedError, match="mask"):
        Softmax()(randn(2, 3), mask=np.ones((2, 3), bool))
    with pytest.raises(NotImplementedError, match="axis"):
        Softmax(axis=(1, 2))
    with pytest.raises(NotImplementedError, match="alpha_constraint"):
        PReLU(alpha_constraint="non_neg")
    with pytest.warns(UserWarning, match="negative_slope"):
        assert LeakyReLU(alpha=0.1).negative_slope == 0.1


# ---------------------------------------------------------------- training

def test_dense_gelu_and_conv2d_swish_models_train_with_fit():
    set_random_seed(0)
    r = np.random.default_rng(0)
    x = r.random((64, 8, 8, 3), dtype=np.float32)
    labels = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))).astype(int)
    y = np.eye(2, dtype=np.float32)[labels]
    model = Sequential([cnnkit.Input((8, 8, 3)), Conv2D(8, 3, padding="same", activation="swish"),
                        PReLU(shared_axes=[1, 2]), layers.Flatten(),
                        Dense(16, activation="gelu"), ELU(), LeakyReLU(),
                        Dense(2), Softmax()])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=8, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < 0.8 * losses[0], losses
    # the trained PReLU moved its alpha
    prelu = model.layers[1]
    assert np.abs(prelu.get_weights()[0]).max() > 0


def test_a_warm_step_with_unfused_activations_allocates_nothing():
    set_random_seed(0)
    model = Sequential([cnnkit.Input((8, 8, 2)),
                        Conv2D(4, 3, padding="same", activation="gelu"),
                        Activation("elu"), PReLU(shared_axes=[1, 2]), ReLU(max_value=6.0),
                        layers.Flatten(), Dense(8, activation="mish"), LeakyReLU(),
                        Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    r = np.random.default_rng(1)
    x = r.random((16, 8, 8, 2), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[r.integers(0, 3, 16)]
    for _ in range(2):
        model.train_on_batch(x, y)
    rises = traced_growth(lambda: model.train_on_batch(x, y), steps=4)
    # the logs and a few small objects; an activation array alone would be 16*8*8*4*4 = 16 KiB
    assert max(rises) < 12 * 1024, rises


def test_functions_on_symbolic_tensors_add_layers_to_a_functional_model():
    inputs = cnnkit.Input((6,))
    h = activations.gelu(Dense(5)(inputs))
    h = activations.relu(h, max_value=1.0)
    h = activations.leaky_relu(h, negative_slope=0.1)
    outputs = activations.softmax(Dense(3)(h))
    model = cnnkit.Model(inputs, outputs)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds[-5:] == ["Activation", "ReLU", "LeakyReLU", "Dense", "Softmax"], kinds
    x = randn(4, 6)
    d1, d2 = model.layers[1], model.layers[-2]
    h = R.gelu_forward(f64(x) @ d1.get_weights()[0] + d1.get_weights()[1])
    h = R.leaky_relu_forward(R.relu_general_forward(h, max_value=1.0), 0.1)
    close(model.predict(x, verbose=0), R.softmax_forward(h @ d2.get_weights()[0] + d2.get_weights()[1]))
    with pytest.raises(NotImplementedError, match="approximate"):
        activations.gelu(inputs, approximate=True)


@pytest.mark.parametrize("name", ["swish", "hard_swish", "gelu", "relu6", "log_softmax", None])
def test_activation_layer_config_matches_keras_and_round_trips(name):
    keras = keras_module()
    ours, theirs = Activation(name), keras.layers.Activation(name)
    assert ours.get_config()["activation"] == theirs.get_config()["activation"]
    again = Activation.from_config(ours.get_config())
    assert again.get_config() == ours.get_config()
    x = randn(3, 5, scale=2.0)
    close(ours(x), np.asarray(theirs(x)), 2e-5)
    dense = Dense(4, activation=name)
    assert Dense.from_config(dense.get_config()).get_config() == dense.get_config()
