"""Rescaling, Normalization, SpatialDropout2D and GaussianNoise: values, shapes and configs
against Keras (for the random layers: statistics, the inference identity and the exact mask
structure), gradients, argument errors, training with fit, saving, and no allocation in a warm
step."""
import os

import numpy as np
import pytest

import cnnkit
from cnnkit import layers as L, reference as R
from cnnkit.utils import set_random_seed
from test_step_allocations import traced_growth

rng = np.random.default_rng(12)


def randn(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def call(layer, x, training=True):
    state = layer.new_state()
    return layer.forward(state, np.ascontiguousarray(x, np.float32), training), state


def close(actual, expected, tol=1e-5):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=tol, atol=tol)


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    return pytest.importorskip("keras")


def base_free(config):
    """A config without the keys of the base Layer (which differ between the libraries)."""
    return {k: v for k, v in config.items() if k not in ("name", "trainable", "dtype")}


# ================================================================ Rescaling

RESCALINGS = [(1 / 255, 0.0), (1 / 127.5, -1), ([0.5, 2.0, -1.0], 0.25), (2.0, [1.0, 2.0, 3.0]),
              ([[[1.0, 2.0, 3.0]]], [0.0, 0.5, 1.0])]


@pytest.mark.parametrize("scale,offset", RESCALINGS)
def test_rescaling_matches_keras(keras, scale, offset):
    x = rng.random((2, 5, 4, 3)).astype(np.float32) * 255
    ours, theirs = L.Rescaling(scale, offset), keras.layers.Rescaling(scale, offset)
    close(ours(x), np.asarray(theirs(x)), 1e-5)
    assert ours.compute_output_shape((None, 5, 4, 3)) == (None, 5, 4, 3)
    assert base_free(ours.get_config()).keys() == base_free(theirs.get_config()).keys()
    np.testing.assert_allclose(np.asarray(ours.get_config()["scale"], float),
                               np.asarray(theirs.get_config()["scale"], float))
    again = L.Rescaling.from_config(ours.get_config())
    assert np.array_equal(again(x), ours(x))


def test_rescaling_gradient_flows_to_the_input():
    scale, offset = np.array([0.5, -2.0, 3.0]), 1.0
    layer = L.Rescaling(scale.tolist(), offset)
    x, dy = randn(2, 4, 3, 3), randn(2, 4, 3, 3)
    y, state = call(layer, x)
    close(y, R.affine_forward(x.astype(np.float64), scale, offset))
    close(layer.backward(state, dy), R.affine_backward(dy.astype(np.float64), scale))
    assert layer.weights == [] and state.grads == ()
    state.need_dx = False
    assert layer.backward(state, dy) is None


@pytest.mark.parametrize("kwargs,error,match", [
    ({"scale": "big"}, TypeError, "scale"),
    ({"scale": float("nan")}, ValueError, "scale"),
    ({"scale": 1.0, "offset": [1.0, 2.0, 3.0, 4.0]}, ValueError, "offset"),
    ({"scale": [1.0, 2.0], "offset": [1.0, 2.0, 3.0]}, ValueError, "scale"),
])
def test_rescaling_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        L.Rescaling(**kwargs)(randn(2, 3, 3, 3))


# ================================================================ Normalization

@pytest.mark.parametrize("axis", [-1, None, (1, 3), (1, 2, 3), 2])
def test_normalization_adapt_matches_keras(keras, axis):
    data = rng.random((20, 6, 5, 3)).astype(np.float32) * np.array([1, 10, 100], np.float32) + 5
    x = randn(3, 6, 5, 3) * 10
    ours, theirs = L.Normalization(axis=axis), keras.layers.Normalization(axis=axis)
    ours.adapt(data)
    theirs.adapt(data)
    for mine, keras_weight in zip(ours.get_weights(), theirs.get_weights()):
        assert mine.shape == np.shape(keras_weight)
        close(mine, keras_weight, 1e-4)
    close(ours(x), np.asarray(theirs(x)), 1e-4)
    assert ours.mean.shape == tuple(np.shape(theirs.mean))
    assert base_free(ours.get_config()) == base_free(theirs.get_config())


def test_normalization_adapts_over_batches_as_over_the_whole(keras):
    data = rng.random((50, 4, 4, 3)).astype(np.float32) * 7 - 2
    labels = rng.integers(0, 2, 50)
    whole = L.Normalization()
    whole.adapt(data)
    by_tuples, by_arrays = L.Normalization(), L.Normalization()
    by_tuples.adapt((data[i:i + 16], labels[i:i + 16]) for i in range(0, 50, 16))
    by_arrays.adapt([data[i:i + 16] for i in range(0, 50, 16)])
    for other in (by_tuples, by_arrays):
        for a, b in zip(whole.get_weights()[:2], other.get_weights()[:2]):
            close(a, b, 1e-5)
    pytest.importorskip("tensorflow", reason="Keras adapts over batches through tf.data")
    theirs = keras.layers.Normalization()
    theirs.adapt([(data[i:i + 16], labels[i:i + 16]) for i in range(0, 50, 16)])
    close(whole.get_weights()[0], theirs.get_weights()[0], 1e-4)
    close(whole.get_weights()[1], theirs.get_weights()[1], 1e-4)
    of_uint8 = L.Normalization()  # CIFAR-10's images as load_data returns them
    images = rng.integers(0, 256, (10, 4, 4, 3)).astype(np.uint8)
    of_uint8.adapt(images)
    close(of_uint8.get_weights()[0], images.reshape(-1, 3).mean(axis=0), 1e-4)


@pytest.mark.parametrize("mean,variance,axis", [(3.0, 2.0, -1), ([1.0, 2.0, 3.0], [4.0, 0.5, 9.0], -1),
                                                ([[1.0, 2.0, 3.0]], [[4.0, 1.0, 0.0]], (2, 3)),
                                                (0.5, 0.0, None)])
@pytest.mark.parametrize("invert", [False, True])
def test_normalization_given_values_match_keras(keras, mean, variance, axis, invert):
    x = randn(2, 4, 5, 3) * 3
    x[..., 2] = np.float32(3.0)
    ours = L.Normalization(axis=axis, mean=mean, variance=variance, invert=invert)
    theirs = keras.layers.Normalization(axis=axis, mean=mean, variance=variance, invert=invert)
    close(ours(x), np.asarray(theirs(x)), 1e-4)
    assert ours.weights == [] == theirs.weights
    assert base_free(ours.get_config()) == base_free(theirs.get_config())
    again = L.Normalization.from_config(ours.get_config())
    assert np.array_equal(again(x), ours(x))


def test_normalization_before_adapt_is_the_identity_as_in_keras(keras):
    x = randn(2, 3, 3, 4)
    ours, theirs = L.Normalization(), keras.layers.Normalization()
    close(ours(x), np.asarray(theirs(x)), 1e-6)
    close(ours(x), x, 1e-6)
    assert [w.shape for w in ours.get_weights()] == [np.shape(w) for w in theirs.get_weights()]


def test_normalization_gradient_and_invert_round_trip():
    data = randn(30, 3, 3, 4) * 5 + 2
    forward, inverse = L.Normalization(), L.Normalization(invert=True)
    forward.adapt(data)
    inverse.adapt(data)
    x, dy = randn(2, 3, 3, 4), randn(2, 3, 3, 4)
    y, state = call(forward, x)
    close(inverse(y), x, 1e-4)
    mean, variance = (w.astype(np.float64) for w in forward.get_weights()[:2])
    close(y, R.normalization_forward(x.astype(np.float64), mean, variance), 1e-4)
    close(forward.backward(state, dy), dy / np.sqrt(variance), 1e-5)
    assert state.grads == () and forward.trainable_weights == []
    assert len(forward.non_trainable_weights) == 3


def test_normalization_follows_set_weights():
    layer = L.Normalization()
    x = randn(2, 2, 2, 3)
    layer(x)
    layer.set_weights([np.array([1.0, 2.0, 3.0]), np.array([4.0, 4.0, 0.25]), np.zeros(())])
    close(layer(x), (x - [1.0, 2.0, 3.0]) / [2.0, 2.0, 0.5], 1e-5)


@pytest.mark.parametrize("make,error,match", [
    (lambda: L.Normalization(axis=4)(randn(2, 3, 3, 3)), ValueError, "axis"),
    (lambda: L.Normalization(axis=-5)(randn(2, 3, 3, 3)), ValueError, "axis"),
    (lambda: L.Normalization(axis="last"), TypeError, "axis"),
    (lambda: L.Normalization(axis=(1, 1)), ValueError, "axis"),
    (lambda: L.Normalization(axis=(1, -3))(randn(2, 3, 3, 3)), ValueError, "axis"),
    (lambda: L.Normalization(mean=1.0), ValueError, "variance"),
    (lambda: L.Normalization(mean=[1.0, 2.0], variance=[1.0]), ValueError, "variance"),
    (lambda: L.Normalization(mean=[[1.0]], variance=[[1.0]]), ValueError, "mean"),
    (lambda: L.Normalization(mean=[1.0, 2.0], variance=[1.0, -1.0]), ValueError, "variance"),
    (lambda: L.Normalization(mean=[1.0, 2.0], variance=[1.0, 1.0])(randn(2, 3, 3, 3)),
     ValueError, "mean"),
    (lambda: L.Normalization(invert=1), TypeError, "invert"),
    (lambda: L.Normalization(mean=1.0, variance=1.0).adapt(randn(4, 3)), ValueError, "adapt"),
    (lambda: L.Normalization().adapt([]), ValueError, "no batch"),
    (lambda: L.Normalization().adapt(3.0), TypeError, "data"),
    (lambda: L.Normalization().adapt([randn(4, 3), randn(4, 5)]), ValueError, "shape"),
])
def test_normalization_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_normalization_refuses_another_channel_count_after_adapt():
    layer = L.Normalization()
    layer.adapt(randn(5, 3, 3, 3))
    with pytest.raises(ValueError, match="normalization"):
        layer(randn(2, 3, 3, 4))


# ================================================================ SpatialDropout2D

def test_spatial_dropout_drops_whole_channels_scaled_in_training_only():
    x = randn(64, 5, 6, 32) + 3
    layer = L.SpatialDropout2D(0.3, seed=4)
    assert np.array_equal(layer(x), x)  # inference: the identity
    y, state = call(layer, x)
    planes = y.transpose(0, 3, 1, 2).reshape(64, 32, -1)
    source = x.transpose(0, 3, 1, 2).reshape(64, 32, -1)
    dropped = np.all(planes == 0, axis=2)
    kept = ~dropped
    assert np.array_equal(planes[kept], source[kept] * np.float32(1 / 0.7))  # scaled exactly
    assert abs(dropped.mean() - 0.3) < 0.05
    dy = randn(*x.shape)
    dx = layer.backward(state, dy)
    close(dx, dy * kept[:, None, None, :] / 0.7, 1e-6)  # the same mask on the way back
    again = L.SpatialDropout2D(0.3, seed=4)
    assert np.array_equal(again(x, training=True), y)  # same seed, same mask
    assert np.array_equal(L.SpatialDropout2D(0.0)(x, training=True), x)


def test_spatial_dropout_agrees_with_keras(keras):
    x = rng.random((40, 4, 4, 16)).astype(np.float32) + 1
    theirs = np.asarray(keras.layers.SpatialDropout2D(0.4, seed=1)(x, training=True))
    ours = L.SpatialDropout2D(0.4, seed=1)(x, training=True)
    for y in (theirs, ours):
        planes = y.transpose(0, 3, 1, 2).reshape(40, 16, -1)
        whole = np.all(planes == 0, axis=2) | np.all(planes != 0, axis=2)
        assert whole.all()  # each (image, channel) plane dropped or kept as a whole
        assert abs(np.all(planes == 0, axis=2).mean() - 0.4) < 0.08
        close(y.sum() / x.sum(), 1.0, 0.1)
    assert np.array_equal(keras.layers.SpatialDropout2D(0.4)(x), x)
    config = L.SpatialDropout2D(0.4, seed=1).get_config()
    assert base_free(config) == base_free(keras.layers.SpatialDropout2D(0.4, seed=1).get_config())
    assert L.SpatialDropout2D.from_config(config).get_config() == config


@pytest.mark.parametrize("make,error,match", [
    (lambda: L.SpatialDropout2D(1.0), ValueError, "rate"),
    (lambda: L.SpatialDropout2D(-0.1), ValueError, "rate"),
    (lambda: L.SpatialDropout2D("half"), TypeError, "rate"),
    (lambda: L.SpatialDropout2D(0.2, data_format="channels_first"), ValueError, "data_format"),
    (lambda: L.SpatialDropout2D(0.2, data_format="nhwc"), ValueError, "data_format"),
    (lambda: L.SpatialDropout2D(0.2, seed=-1), ValueError, "seed"),
    (lambda: L.SpatialDropout2D(0.2)(randn(2, 3, 4)), ValueError, "ndim=4"),
])
def test_spatial_dropout_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


# ================================================================ GaussianNoise

def test_gaussian_noise_adds_normal_noise_in_training_only(keras):
    x = randn(64, 16, 16, 4)
    layer = L.GaussianNoise(0.3, seed=2)
    assert np.array_equal(layer(x), x)
    y, state = call(layer, x)
    noise = (y - x).astype(np.float64)
    assert abs(noise.mean()) < 0.01 and abs(noise.std() - 0.3) < 0.01
    theirs = (np.asarray(keras.layers.GaussianNoise(0.3, seed=2)(x, training=True)) - x)
    assert abs(theirs.std() - noise.std()) < 0.01 and abs(theirs.mean()) < 0.01
    assert np.array_equal(keras.layers.GaussianNoise(0.3)(x), x)
    dy = randn(*x.shape)
    assert np.array_equal(layer.backward(state, dy), dy)
    assert np.array_equal(L.GaussianNoise(0.3, seed=2)(x, training=True), y)
    assert not np.array_equal(layer(x, training=True), y)  # the generator moves on
    config = layer.get_config()
    assert base_free(config) == base_free(keras.layers.GaussianNoise(0.3, seed=2).get_config())
    assert L.GaussianNoise.from_config(config).get_config() == config


@pytest.mark.parametrize("stddev,error", [(-0.1, ValueError), (1.5, ValueError),
                                          (float("inf"), ValueError), ("0.1", TypeError)])
def test_gaussian_noise_bad_stddev(stddev, error):
    with pytest.raises(error, match="stddev"):
        L.GaussianNoise(stddev)


# ================================================================ in models

def image_task(n=96):
    x = rng.random((n, 8, 8, 3)).astype(np.float32) * 255
    labels = (x[..., 0].mean(axis=(1, 2)) > x[..., 1].mean(axis=(1, 2))).astype(int)
    return x, np.eye(2, dtype=np.float32)[labels]


@pytest.mark.parametrize("name", ["Rescaling", "Normalization", "SpatialDropout2D", "GaussianNoise"])
def test_each_layer_trains_in_a_model_with_fit(name, tmp_path):
    set_random_seed(3)
    x, y = image_task()
    first = L.Rescaling(1 / 255) if name != "Normalization" else L.Normalization()
    if name == "Normalization":
        first.adapt(x)
    middle = {"Rescaling": L.Rescaling([2.0, 1.0, 0.5, 1.0], -0.5),
              "Normalization": L.Normalization(mean=0.1, variance=4.0),
              "SpatialDropout2D": L.SpatialDropout2D(0.25, seed=1),
              "GaussianNoise": L.GaussianNoise(0.1, seed=1)}[name]
    model = cnnkit.Sequential([cnnkit.Input((8, 8, 3)), first, L.Conv2D(4, 3, activation="relu"),
                               middle, L.Flatten(), L.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, epochs=4, batch_size=16, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    conv_kernel = model.layers[1].get_weights()[0]
    assert not np.array_equal(conv_kernel, before[len(first.get_weights())])  # gradients flowed
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = cnnkit.models.load_model(path)
    close(loaded.predict(x[:8], verbose=0), model.predict(x[:8], verbose=0), 1e-6)


def test_a_warm_step_through_these_layers_allocates_nothing_large():
    set_random_seed(0)
    x, y = image_task(32)
    x = np.repeat(np.repeat(x, 4, axis=1), 4, axis=2)  # (32, 32, 32, 3): activations of 256 KiB+
    normalization = L.Normalization()
    normalization.adapt(x)
    model = cnnkit.Sequential([
        cnnkit.Input((32, 32, 3)), normalization, L.Conv2D(16, 3, padding="same"),
        L.Rescaling([0.5] * 16, 0.1), L.Normalization(mean=0.0, variance=2.0),
        L.GaussianNoise(0.1), L.SpatialDropout2D(0.2), L.Flatten(), L.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    for _ in range(2):
        model.train_on_batch(x, y)
    rises = traced_growth(lambda: model.train_on_batch(x, y), steps=4)
    one_activation = x[..., :1].size * 16 * 4  # a (32, 32, 32, 16) float32 array
    assert max(rises) < min(128 * 1024, one_activation // 4), rises
