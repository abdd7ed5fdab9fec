"""Weight and activity regularizers: values, names and configs as Keras, the penalties in the
loss that fit and evaluate report, and their gradients in training."""
import os

import numpy as np
import pytest

import cnnkit
from cnnkit import layers, optimizers, regularizers


def test_penalties_and_gradients_follow_their_formulas():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 7)).astype(np.float32)
    for reg, value, grad in [
            (regularizers.L1(0.3), 0.3 * np.abs(x).sum(), 0.3 * np.sign(x)),
            (regularizers.L2(0.2), 0.2 * (x.astype(np.float64) ** 2).sum(), 0.4 * x),
            (regularizers.L1L2(0.1, 0.5), 0.1 * np.abs(x).sum() + 0.5 * (x.astype(np.float64) ** 2).sum(),
             0.1 * np.sign(x) + 1.0 * x)]:
        assert reg(x) == pytest.approx(value, rel=1e-5)
        assert reg.penalty(x, np.empty_like(x)) == pytest.approx(value, rel=1e-5)
        g = np.ones_like(x)
        reg.add_gradient(x, g, 0.5, np.empty_like(x))
        np.testing.assert_allclose(g, 1 + 0.5 * grad, rtol=1e-6)


def test_names_configs_and_bad_values():
    assert isinstance(regularizers.get("l2"), regularizers.L2)
    assert regularizers.get("l2").l2 == 0.01 and regularizers.get("L1").l1 == 0.01
    assert regularizers.get("l1l2").get_config() == {"l1": 0.0, "l2": 0.0}
    assert regularizers.l1_l2 is regularizers.L1L2 and regularizers.get(None) is None
    reg = regularizers.L2(0.25)
    config = regularizers.serialize(reg)
    assert config == {"module": "keras.regularizers", "class_name": "L2",
                      "config": {"l2": 0.25}, "registered_name": None}
    assert regularizers.get(config).l2 == 0.25
    with pytest.raises(ValueError, match="'l3'"):
        regularizers.get("l3")
    with pytest.raises(ValueError, match="l2 must be"):
        regularizers.L2(-1)
    with pytest.raises(TypeError, match="l1 must be a number"):
        regularizers.L1("big")
    with pytest.raises(TypeError, match="function"):
        regularizers.get(lambda w: 0.0)
    with pytest.raises(NotImplementedError, match="OrthogonalRegularizer"):
        regularizers.get("orthogonal_regularizer")
    with pytest.raises(NotImplementedError, match="kernel_constraint"):
        layers.Dense(2, kernel_constraint="non_neg")


def _model(seed=0, final="softmax"):
    cnnkit.utils.set_random_seed(seed)
    inputs = cnnkit.Input((6,))
    h = layers.Dense(5, activation="relu", kernel_regularizer=regularizers.L2(0.05),
                     bias_regularizer=regularizers.L1(0.02),
                     activity_regularizer=regularizers.L1L2(0.01, 0.03))(inputs)
    out = layers.Dense(3, activation=final, kernel_regularizer="l1",
                       activity_regularizer="l2" if final == "softmax" else None)(h)
    return cnnkit.Model(inputs, out)


def _data():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 6)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)]
    return x, y


def test_loss_includes_every_penalty():
    x, y = _data()
    model = _model()
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    total = model.evaluate(x, y, verbose=0)
    d1, d2 = model.layers[1], model.layers[2]
    h = d1(x)
    p = d2(h)
    data = -np.mean(np.sum(y * np.log(np.clip(p, 1e-7, 1)), axis=1))
    penalty = (0.05 * np.sum(d1.kernel.astype(np.float64) ** 2) + 0.02 * np.abs(d1.bias).sum()
               + 0.01 * np.abs(d2.kernel).sum()
               + (0.01 * np.abs(h).sum() + 0.03 * np.sum(h.astype(np.float64) ** 2)) / len(x)
               + 0.01 * np.sum(p.astype(np.float64) ** 2) / len(x))
    assert total == pytest.approx(data + penalty, rel=1e-5)
    plain = _model()
    for layer in plain.layers[1:]:
        layer.kernel_regularizer = layer.bias_regularizer = layer.activity_regularizer = None
        layer._weight_regularizers = []
    plain.compile(optimizer="sgd", loss="categorical_crossentropy")
    assert plain.evaluate(x, y, verbose=0) == pytest.approx(data, rel=1e-5)


@pytest.mark.parametrize("final", ["softmax", "linear"])
def test_training_gradient_is_the_derivative_of_the_reported_loss(final):
    """One SGD step moves each weight by lr * d(total loss)/dw; the total loss (penalties
    included) is what evaluate reports, so compare with its central differences."""
    x, y = _data()
    loss = "categorical_crossentropy" if final == "softmax" else "mse"
    model = _model(final=final)
    model.compile(optimizer=optimizers.SGD(learning_rate=1.0), loss=loss)
    before = [w.copy() for w in model.weights]
    # The reported training loss is the loss of the weights before the step.
    reported = model.train_on_batch(x, y)
    after = [w.copy() for w in model.weights]
    model.set_weights(before)
    assert reported == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-5)
    rng = np.random.default_rng(2)
    for k, w in enumerate(model.weights):
        for idx in [tuple(rng.integers(0, s) for s in w.shape) for _ in range(3)]:
            eps = 1e-2
            old = w[idx]
            w[idx] = old + eps
            up = model.evaluate(x, y, verbose=0)
            w[idx] = old - eps
            down = model.evaluate(x, y, verbose=0)
            w[idx] = old
            numeric = (up - down) / (2 * eps)
            step = before[k][idx] - after[k][idx]
            assert step == pytest.approx(numeric, rel=0.05, abs=2e-3), (k, idx)


def test_frozen_layer_penalty_counts_without_moving_it():
    x, y = _data()
    model = _model()
    model.layers[1].trainable = False
    model.compile(optimizer=optimizers.SGD(learning_rate=0.1), loss="categorical_crossentropy")
    frozen = model.layers[1].kernel.copy()
    model.train_on_batch(x, y)
    np.testing.assert_array_equal(model.layers[1].kernel, frozen)
    assert 0.05 * np.sum(frozen.astype(np.float64) ** 2) > 0


def test_config_round_trip_and_keras_values():
    layer = layers.Dense(4, kernel_regularizer=regularizers.L1L2(0.1, 0.2),
                         activity_regularizer="l1")
    config = layer.get_config()
    again = layers.Dense.from_config(config)
    assert again.kernel_regularizer.get_config() == {"l1": 0.1, "l2": 0.2}
    assert isinstance(again.activity_regularizer, regularizers.L1)
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    keras = pytest.importorskip("keras")
    theirs = keras.layers.Dense(4, kernel_regularizer=keras.regularizers.L1L2(0.1, 0.2),
                                activity_regularizer="l1").get_config()
    assert config["kernel_regularizer"]["class_name"] == theirs["kernel_regularizer"]["class_name"]
    for key, value in theirs["kernel_regularizer"]["config"].items():
        assert config["kernel_regularizer"]["config"][key] == pytest.approx(value)
    assert set(config) <= set(theirs)
    # Keras' evaluate of the same model and weights reports the same total.
    x, y = _data()
    ours = _model()
    ours.compile(optimizer="sgd", loss="categorical_crossentropy")
    inputs = keras.Input((6,))
    h = keras.layers.Dense(5, activation="relu", kernel_regularizer=keras.regularizers.L2(0.05),
                           bias_regularizer=keras.regularizers.L1(0.02),
                           activity_regularizer=keras.regularizers.L1L2(0.01, 0.03))(inputs)
    out = keras.layers.Dense(3, activation="softmax", kernel_regularizer="l1",
                             activity_regularizer="l2")(h)
    model = keras.Model(inputs, out)
    model.set_weights(ours.get_weights())
    # Keras' total: the loss of the prediction plus model.losses (the penalties of that call;
    # evaluate itself fails under the numpy backend with regularizers).
    pred = model(x)
    keras_total = float(np.mean(keras.losses.categorical_crossentropy(y, pred)))
    keras_total += sum(float(v) for v in model.losses)
    assert ours.evaluate(x, y, verbose=0) == pytest.approx(keras_total, rel=1e-4)


def test_a_warm_regularized_step_allocates_no_array():
    """Penalties and their gradients go through scratch buffers: a warm step's traced peak
    stays far below one copy of the layer's 64x512 activations and 1024x512 kernel."""
    import tracemalloc
    cnnkit.utils.set_random_seed(0)
    inputs = cnnkit.Input((1024,))
    h = layers.Dense(512, activation="relu", kernel_regularizer=regularizers.L1L2(1e-4, 1e-4),
                     activity_regularizer=regularizers.L1L2(1e-4, 1e-4))(inputs)
    model = cnnkit.Model(inputs, layers.Dense(10, activation="softmax")(h))
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.random((64, 1024), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 64)]
    for _ in range(2):
        model.train_on_batch(x, y)
        model.test_on_batch(x, y)
    tracemalloc.start()
    try:
        for _ in range(3):
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            model.train_on_batch(x, y)
            model.test_on_batch(x, y)
            rise = tracemalloc.get_traced_memory()[1] - before
            assert rise < 64 * 512 * 4 // 2, rise
    finally:
        tracemalloc.stop()
