"""The convolution layers: Conv2D (dilation, groups), Conv2DTranspose, DepthwiseConv2D and
SeparableConv2D. Numbers and output shapes against Keras with the same weights, get_config keys
against Keras, config round trips, refused arguments, a small model with each layer training,
and a warm training step that allocates no array."""
import os

import numpy as np
import pytest

from cnnkit import layers, models, optimizers
from cnnkit import reference as R
from cnnkit.utils import set_random_seed
from test_step_allocations import traced_growth

LAYERS = {
    "Conv2D": [
        dict(filters=6, kernel_size=3),
        dict(filters=8, kernel_size=(3, 2), strides=2, padding="same", activation="relu"),
        dict(filters=6, kernel_size=3, padding="same", dilation_rate=2, activation="sigmoid"),
        dict(filters=8, kernel_size=3, padding="same", groups=2, use_bias=False),
        dict(filters=8, kernel_size=3, padding="same", groups=4, activation="relu"),
    ],
    "Conv2DTranspose": [
        dict(filters=5, kernel_size=3),
        dict(filters=5, kernel_size=3, strides=2, padding="same", activation="relu"),
        dict(filters=4, kernel_size=(4, 3), strides=(2, 3), output_padding=(1, 2)),
        dict(filters=3, kernel_size=3, strides=2, padding="same", output_padding=1,
             use_bias=False),
        dict(filters=4, kernel_size=3, padding="same", dilation_rate=2, activation="sigmoid"),
    ],
    "DepthwiseConv2D": [
        dict(kernel_size=3),
        dict(kernel_size=3, padding="same", activation="relu"),
        dict(kernel_size=5, strides=2, padding="same", depth_multiplier=2),
        dict(kernel_size=3, padding="same", dilation_rate=2, use_bias=False),
    ],
    "SeparableConv2D": [
        dict(filters=6, kernel_size=3),
        dict(filters=8, kernel_size=3, padding="same", activation="relu"),
        dict(filters=5, kernel_size=3, strides=2, padding="same", depth_multiplier=2),
        dict(filters=4, kernel_size=3, padding="same", dilation_rate=2, use_bias=False),
    ],
}
CASES = [(name, cfg) for name, cfgs in LAYERS.items() for cfg in cfgs]
IDS = [f"{name}-{i}" for name, cfgs in LAYERS.items() for i in range(len(cfgs))]


def keras_module():
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    return pytest.importorskip("keras")


def batch(seed=0, shape=(2, 9, 10, 8)):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# Keras' set_weights on the NumPy backend warns about NumPy 2's copy keyword: not ours.
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
@pytest.mark.parametrize("name,cfg", CASES, ids=IDS)
def test_numbers_and_shapes_match_keras(name, cfg):
    keras = keras_module()
    x = batch()
    ours = getattr(layers, name)(**cfg)
    y = ours(x)
    theirs = getattr(keras.layers, name)(**cfg)
    theirs.build(x.shape)
    rng = np.random.default_rng(1)  # random biases too, so that they are compared
    weights = [w + 0.1 * rng.standard_normal(w.shape).astype(np.float32) for w in ours.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    want = np.asarray(theirs(x))
    y = ours(x)
    assert y.shape == want.shape
    assert ours.compute_output_shape((None,) + x.shape[1:]) == (None,) + want.shape[1:]
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name,cfg", CASES, ids=IDS)
def test_get_config_has_keras_keys_and_round_trips(name, cfg):
    keras = keras_module()
    ours = getattr(layers, name)(**cfg)
    theirs = getattr(keras.layers, name)(**cfg)
    config = ours.get_config()
    assert set(config) == set(theirs.get_config()) - {"dtype"}
    again = type(ours).from_config(config)
    assert again.get_config() == {**config, "name": again.name}
    x = batch(2)
    ours(x)
    again(x)
    again.set_weights(ours.get_weights())
    np.testing.assert_array_equal(again(x), ours(x))


def test_weights_follow_keras_shapes():
    x = batch()
    conv = layers.Conv2D(8, 3, groups=4)
    conv(x)
    assert [w.shape for w in conv.weights] == [(3, 3, 2, 8), (8,)]
    tconv = layers.Conv2DTranspose(5, (3, 2))
    tconv(x)
    assert [w.shape for w in tconv.weights] == [(3, 2, 5, 8), (5,)]
    dconv = layers.DepthwiseConv2D(3, depth_multiplier=2)
    dconv(x)
    assert [w.shape for w in dconv.weights] == [(3, 3, 8, 2), (16,)]
    sconv = layers.SeparableConv2D(4, 3, depth_multiplier=3, use_bias=False)
    sconv(x)
    assert [w.shape for w in sconv.weights] == [(3, 3, 8, 3), (1, 1, 24, 4)]


def test_separable_gradients_are_the_reference_chain():
    """SeparableConv2D's backward (pointwise conv, then depthwise) against the reference's."""
    x = batch(3)
    layer = layers.SeparableConv2D(5, 3, strides=2, padding="same", depth_multiplier=2)
    layer(x)
    call = layer.new_state()
    y = layer.forward(call, x, training=True)
    dy = np.random.default_rng(4).standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(call, dy)
    dk, pk, b = (w.astype(np.float64) for w in layer.weights)
    x64 = x.astype(np.float64)
    mid = R.depthwise_conv2d_forward(x64, dk, strides=2, padding="same")
    np.testing.assert_allclose(y, R.conv2d_forward(mid, pk, b), rtol=1e-4, atol=1e-4)
    dmid, dpk, db = R.conv2d_backward(dy.astype(np.float64), mid, pk)
    dx_ref, ddk, _ = R.depthwise_conv2d_backward(dmid, x64, dk, strides=2, padding="same")
    for got, want in zip([dx] + list(call.grads), [dx_ref, ddk, dpk, db]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("make,error,words", [
    (lambda: layers.Conv2D(0, 3), ValueError, ["filters"]),
    (lambda: layers.Conv2D(8, 3, groups=3), ValueError, ["groups=3", "filters=8"]),
    (lambda: layers.Conv2D(8, 3, groups=0), ValueError, ["groups"]),
    (lambda: layers.Conv2D(8, 3, strides=2, dilation_rate=2), ValueError,
     ["strides", "dilation_rate"]),
    (lambda: layers.Conv2D(8, 3, dilation_rate=0), ValueError, ["dilation_rate"]),
    (lambda: layers.Conv2D(8, 3, padding="full"), ValueError, ["padding"]),
    (lambda: layers.Conv2D(8, 3, data_format="channels_first"), ValueError, ["data_format"]),
    (lambda: layers.Conv2D(8, 3, kernel_constraint="non_neg"), NotImplementedError,
     ["kernel_constraint"]),
    (lambda: layers.Conv2D(8, 3, lora_rank=2), NotImplementedError, ["lora_rank"]),
    (lambda: layers.Conv2DTranspose(4, 3, strides=2, output_padding=2), ValueError,
     ["output_padding", "strides"]),
    (lambda: layers.Conv2DTranspose(4, 3, output_padding=(0, 1)), ValueError,
     ["output_padding"]),
    (lambda: layers.Conv2DTranspose(4, 3, strides=2, dilation_rate=2), ValueError,
     ["dilation_rate"]),
    (lambda: layers.Conv2DTranspose(0, 3), ValueError, ["filters"]),
    (lambda: layers.DepthwiseConv2D(3, depth_multiplier=0), ValueError, ["depth_multiplier"]),
    (lambda: layers.DepthwiseConv2D(0), ValueError, ["kernel_size"]),
    (lambda: layers.DepthwiseConv2D(3, depthwise_constraint="non_neg"), NotImplementedError,
     ["depthwise_constraint"]),
    (lambda: layers.SeparableConv2D(4, 3, pointwise_constraint="non_neg"), NotImplementedError,
     ["pointwise_constraint"]),
    (lambda: layers.SeparableConv2D(4, 3, bias_constraint="non_neg"), NotImplementedError,
     ["bias_constraint"]),
    (lambda: layers.SeparableConv2D(-1, 3), ValueError, ["filters"]),
    (lambda: layers.SeparableConv2D(4, 3, strides=0), ValueError, ["strides"]),
])
def test_bad_arguments_name_the_argument(make, error, words):
    with pytest.raises(error) as info:
        make()
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("layer,words", [
    (lambda: layers.Conv2D(8, 3, groups=4), ["groups=4", "6 input channels"]),
    (lambda: layers.Conv2D(8, 3, dilation_rate=4), ["dilated to 9x9", "larger than the image"]),
    (lambda: layers.DepthwiseConv2D(9), ["9x9", "larger than the image"]),
    (lambda: layers.SeparableConv2D(4, 9), ["9x9"]),
])
def test_bad_input_shapes_at_build(layer, words):
    with pytest.raises(ValueError) as info:
        layer()(np.zeros((1, 8, 8, 6), np.float32))
    for word in words:
        assert word in str(info.value)


def test_regularizer_arguments_go_to_the_regularizers_module():
    """None is no regularizer; anything else is whatever cnnkit.regularizers.get makes of it."""
    from cnnkit import regularizers
    try:
        regularizers.get("l2")
    except NotImplementedError:
        for make in (lambda: layers.Conv2D(4, 3, kernel_regularizer="l2"),
                     lambda: layers.DepthwiseConv2D(3, depthwise_regularizer="l2"),
                     lambda: layers.SeparableConv2D(4, 3, pointwise_regularizer="l2"),
                     lambda: layers.Conv2DTranspose(4, 3, bias_regularizer="l2")):
            with pytest.raises(NotImplementedError):
                make()
    conv = layers.Conv2D(4, 3)
    config = conv.get_config()
    assert config["kernel_regularizer"] is None and config["activity_regularizer"] is None


def model_with(layer, input_shape=(8, 8, 3)):
    return models.Sequential([layers.Input(input_shape), layer, layers.Flatten(),
                              layers.Dense(2, activation="softmax")])


TRAINING = [
    lambda: layers.Conv2D(4, 3, padding="same", dilation_rate=2, groups=1, activation="relu"),
    lambda: layers.Conv2D(6, 3, strides=2, groups=3, activation="relu"),
    lambda: layers.Conv2DTranspose(3, 3, strides=2, padding="same", activation="relu"),
    lambda: layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="relu"),
    lambda: layers.SeparableConv2D(4, 3, padding="same", activation="relu"),
]


@pytest.mark.parametrize("make", TRAINING, ids=["dilated", "grouped", "transpose", "depthwise",
                                                "separable"])
def test_a_small_model_trains(make):
    set_random_seed(0)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 64)
    # Class 1 has a brighter top half in channel 0: local features any of these layers sees.
    x = rng.standard_normal((64, 8, 8, 3)).astype(np.float32)
    x[:, :4, :, 0] += 1.5 * (2 * labels[:, None, None] - 1)
    y = np.eye(2, dtype=np.float32)[labels]
    model = model_with(make())
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01), loss="categorical_crossentropy")
    history = model.fit(x, y, batch_size=16, epochs=10, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0], losses


def test_a_warm_step_allocates_no_array():
    set_random_seed(0)
    model = models.Sequential([
        layers.Input((16, 16, 4)),
        layers.Conv2D(8, 3, padding="same", groups=2, activation="relu"),
        layers.DepthwiseConv2D(3, padding="same", activation="relu"),
        layers.SeparableConv2D(16, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2DTranspose(4, 3, strides=2, padding="same", activation="sigmoid"),
        layers.Conv2D(8, 3, padding="same", dilation_rate=2),
        layers.Flatten(), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 16, 16, 4)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 32)]
    model.train_on_batch(x, y)
    model.train_on_batch(x, y)
    # Every convolution's output is at least 128 KiB; a warm step may allocate the logs and a
    # few small arrays (tests/test_step_allocations.py: 64 KiB), never one of those.
    rises = traced_growth(lambda: model.train_on_batch(x, y))
    assert max(rises) < 64 * 1024, rises
