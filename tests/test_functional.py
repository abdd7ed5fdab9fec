"""The model-graph engine (issue 11): the cnnkit namespace, functional and subclassed models
next to Sequential, shared layers and tensors read several times (their gradients), merge
layers in models, several inputs and outputs in fit / evaluate / predict, summary, configs,
saving and loading. Keras 3 is the reference; the few Keras results used here were checked
against keras 3.15.1 (see the comments). The clear errors are in test_model_graph_errors.py."""
import os
import subprocess
import sys

import numpy as np
import pytest

import cnnkit
from cnnkit import optimizers
from cnnkit.layers import (Activation, Add, Concatenate, Conv2D, Dense, Dropout, Flatten, Input,
                           InputLayer, MaxPooling2D, UpSampling2D)
from cnnkit.models import Sequential, load_model
from cnnkit.utils import set_random_seed, to_categorical

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(cnnkit.__file__)))


def summary_text(model):
    lines = []
    model.summary(print_fn=lines.append)
    return "\n".join(lines)


def assert_same_weights(a, b, exact=True):
    wa, wb = a.get_weights(), b.get_weights()
    assert [w.shape for w in wa] == [w.shape for w in wb]
    for x, y in zip(wa, wb):
        if exact:
            np.testing.assert_array_equal(x, y)
        else:
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


def input_gradient(model, xs, dy):
    """The gradient of sum(model(x) * dy) with respect to each input, by the engine's own
    backward pass (inference mode)."""
    xs = xs if isinstance(xs, list) else [xs]
    st = model.new_state()
    model._configure(st, [True] * len(xs), False)
    model.forward(st, xs if len(xs) > 1 else xs[0], False)
    dx = model.backward(st, dy)
    return dx if isinstance(dx, list) else [dx]


def finite_difference(model, xs, dy, eps=1e-2):
    """Central differences of sum(model.predict(x) * dy), x perturbed in float64."""
    xs = [x.astype(np.float64) for x in (xs if isinstance(xs, list) else [xs])]
    dy = dy.astype(np.float64)

    def f(values):
        out = model.predict(values if len(values) > 1 else values[0], verbose=0)
        return float(np.sum(np.asarray(out, np.float64) * dy))

    grads = []
    for i, x in enumerate(xs):
        g = np.zeros_like(x)
        for idx in np.ndindex(*x.shape):
            for sign in (1, -1):
                shifted = [v.copy() for v in xs]
                shifted[i][idx] += sign * eps
                g[idx] += sign * f(shifted) / (2 * eps)
        grads.append(g)
    return grads


# ================================================================ 1. namespace

MODULES = ["layers", "models", "optimizers", "losses", "metrics", "callbacks", "utils", "datasets",
           "initializers", "activations", "regularizers"]


def test_namespace_after_bare_import():
    import importlib
    import types
    for name in MODULES:
        module = getattr(cnnkit, name)
        assert isinstance(module, types.ModuleType) and module.__name__ == f"cnnkit.{name}"
        assert importlib.import_module(f"cnnkit.{name}") is module
    assert cnnkit.Sequential is cnnkit.models.Sequential
    assert cnnkit.Model is cnnkit.models.Model
    assert cnnkit.Input is cnnkit.layers.Input
    from cnnkit import layers as imported
    import cnnkit.layers as L
    assert imported is L is cnnkit.layers
    assert L.Dense is Dense and L.Add is Add and L.Concatenate is Concatenate
    from cnnkit.engine.symbolic import KerasTensor
    assert isinstance(cnnkit.Input((3,)), KerasTensor)


def test_import_loads_no_heavy_or_optional_package():
    heavy = ["matplotlib", "PIL", "h5py", "scipy", "keras", "tensorflow", "torch", "jax"]
    code = ("import sys, cnnkit; "
            f"missing = [n for n in {MODULES + ['Sequential', 'Model', 'Input']!r} "
            "if not hasattr(cnnkit, n)]; "
            "assert not missing, missing; "
            "m = cnnkit.Model; l = cnnkit.layers.Dense; "
            f"print(','.join(n for n in {heavy!r} if n in sys.modules))")
    env = {**os.environ, "PYTHONPATH": PYTHON_DIR + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"import cnnkit loaded {result.stdout.strip()}"


# ================================================================ 2. three ways, one network

def conv_layers():
    return [Conv2D(3, 3, activation="relu"), MaxPooling2D(2), Flatten(), Dropout(0.4, seed=7),
            Dense(4, activation="softmax")]


class ConvNet(cnnkit.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv, self.pool, self.flat, self.drop, self.head = conv_layers()

    def call(self, inputs, training=None):
        x = self.pool(self.conv(inputs))
        x = self.drop(self.flat(x), training=training)
        return self.head(x)


def three_models():
    sequential = Sequential([Input((8, 8, 2))] + conv_layers())
    inputs = Input((8, 8, 2))
    x = inputs
    for layer in conv_layers():
        x = layer(x)
    functional = cnnkit.Model(inputs, x)
    subclassed = ConvNet()
    subclassed.build((None, 8, 8, 2))
    return sequential, functional, subclassed


@pytest.mark.parametrize("optimizer", [lambda: optimizers.SGD(0.1, momentum=0.9),
                                       lambda: optimizers.Adam(0.01)], ids=["sgd", "adam"])
def test_sequential_functional_subclassed_train_identically(optimizer):
    set_random_seed(0)
    models = three_models()
    assert type(models[1]).__name__ == "Functional" and isinstance(models[1], cnnkit.Model)
    weights = models[0].get_weights()
    assert len(weights) == 4
    for model in models[1:]:
        assert [w.shape for w in model.get_weights()] == [w.shape for w in weights]
        model.set_weights(weights)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 8, 8, 2)).astype(np.float32)
    y = to_categorical(rng.integers(0, 4, 6), 4)
    before = [m.predict(x, verbose=0) for m in models]
    np.testing.assert_array_equal(before[0], before[1])
    np.testing.assert_array_equal(before[0], before[2])
    losses = []
    for model in models:
        model.compile(optimizer=optimizer(), loss="categorical_crossentropy")
        losses.append([model.train_on_batch(x, y) for _ in range(5)])
    assert losses[0] == losses[1] == losses[2]
    assert not np.array_equal(models[0].get_weights()[0], weights[0])  # it trained
    for model in models[1:]:
        assert_same_weights(models[0], model)
    after = [m.predict(x, verbose=0) for m in models]
    np.testing.assert_array_equal(after[0], after[1])
    np.testing.assert_array_equal(after[0], after[2])
    assert not np.array_equal(after[0], before[0])


def test_dropout_is_active_in_training_in_all_three():
    """The seeded Dropout really drops in training (so that the test above covers it): a
    training-mode forward pass differs from predict, the same way in the three models."""
    set_random_seed(0)
    models = three_models()
    for model in models[1:]:
        model.set_weights(models[0].get_weights())
    x = np.random.default_rng(2).normal(size=(4, 8, 8, 2)).astype(np.float32)
    outs = []
    for model in models:
        st = model.new_state()
        model._configure(st, [False], True)
        outs.append(np.array(model.forward(st, x, True)))
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])
    assert not np.allclose(outs[0], models[0].predict(x, verbose=0))


# ================================================================ 3. a shared layer

def test_shared_dense_gradient_is_the_sum_of_its_calls():
    set_random_seed(0)
    a, b = Input((3,), name="a"), Input((3,), name="b")
    shared = Dense(2, bias_initializer="ones", name="shared")
    out = Add(name="sum")([shared(a), shared(b)])
    model = cnnkit.Model([a, b], out)
    assert len(shared._inbound_nodes) == 2
    assert len(model.trainable_weights) == 2 and len(model.weights) == 2
    assert model.count_params() == 3 * 2 + 2
    assert [layer.name for layer in model.layers] == ["a", "b", "shared", "sum"]
    lr = 0.1
    model.compile(optimizer=optimizers.SGD(learning_rate=lr, momentum=0.0), loss="mse")

    rng = np.random.default_rng(3)
    xa, xb = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    y = rng.normal(size=(5, 2))
    kernel, bias = [w.astype(np.float64) for w in model.get_weights()]
    # From the definition, in float64: out = (xa K + c) + (xb K + c), loss = mean((out - y)^2).
    pred = (xa @ kernel + bias) + (xb @ kernel + bias)
    dout = 2 * (pred - y) / pred.size
    grad_a = (xa.T @ dout, dout.sum(0))  # the call on a
    grad_b = (xb.T @ dout, dout.sum(0))  # the call on b
    loss = model.train_on_batch([xa, xb], y)
    assert loss == pytest.approx(np.mean((pred - y) ** 2), rel=1e-5)
    new_kernel, new_bias = model.get_weights()
    np.testing.assert_allclose(new_kernel, kernel - lr * (grad_a[0] + grad_b[0]), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(new_bias, bias - lr * (grad_a[1] + grad_b[1]), rtol=1e-5, atol=1e-6)
    # Not just one call's gradient.
    assert not np.allclose(new_kernel, kernel - lr * grad_a[0], atol=1e-4)
    assert not np.allclose(new_kernel, kernel - 2 * lr * grad_a[0], atol=1e-4)


def test_shared_layer_in_sequence_counts_weights_once_and_matches_reference():
    """One Dense applied twice in a row (x -> d -> d), checked against cnnkit.reference."""
    from cnnkit import reference as R
    set_random_seed(1)
    x_in = Input((3,))
    d = Dense(3, activation=None)
    model = cnnkit.Model(x_in, d(d(x_in)))
    assert len(model.trainable_weights) == 2 and len(model.layers) == 2
    lr = 0.05
    model.compile(optimizer=optimizers.SGD(lr), loss="mse")
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(4, 3)).astype(np.float32)
    k, b = model.get_weights()
    h = R.dense_forward(x, k, b)
    out = R.dense_forward(h, k, b)
    dout = 2 * (out - y) / out.size
    dh, dk2, db2 = R.dense_backward(dout, h, k)
    _, dk1, db1 = R.dense_backward(dh, x, k)
    model.train_on_batch(x, y)
    k2, b2 = model.get_weights()
    np.testing.assert_allclose(k2, k - lr * (dk1 + dk2), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(b2, b - lr * (db1 + db2), rtol=1e-4, atol=1e-6)


# ================================================================ 4-5. gradients through graphs

def residual_model():
    inputs = Input((6, 6, 2), name="img")
    x = Conv2D(2, 3, padding="same", activation="sigmoid", name="c1")(inputs)
    x = Conv2D(2, 3, padding="same", activation="linear", name="c2")(x)
    x = Add(name="residual")([x, inputs])
    x = Activation("sigmoid", name="act")(x)
    x = Conv2D(1, 3, activation="linear", name="c3")(x)
    return cnnkit.Model(inputs, Flatten(name="flat")(x))


def test_residual_block_input_gradient_matches_finite_differences():
    set_random_seed(2)
    model = residual_model()
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 6, 6, 2)).astype(np.float32)
    dy = rng.normal(size=(2, 16)).astype(np.float32)
    (dx,) = input_gradient(model, x, dy)
    assert dx.shape == x.shape
    (numeric,) = finite_difference(model, x, dy)
    np.testing.assert_allclose(dx, numeric, rtol=2e-2, atol=2e-3)


def test_residual_gradient_includes_the_skip_path():
    """With the convolutions' weights at zero, only the skip path carries the gradient: the
    input gradient is then exactly that of act -> c3 applied to x."""
    set_random_seed(3)
    model = residual_model()
    weights = model.get_weights()
    zeroed = [np.zeros_like(w) if i < 4 else w for i, w in enumerate(weights)]
    model.set_weights(zeroed)  # c1 and c2: kernel and bias zero, so c2's output is 0
    rng = np.random.default_rng(6)
    x = rng.normal(size=(1, 6, 6, 2)).astype(np.float32)
    dy = rng.normal(size=(1, 16)).astype(np.float32)
    (dx,) = input_gradient(model, x, dy)
    assert np.abs(dx).max() > 1e-3
    (numeric,) = finite_difference(model, x, dy)
    np.testing.assert_allclose(dx, numeric, rtol=2e-2, atol=2e-3)


def test_tensor_read_by_three_branches_gets_the_sum_of_their_gradients():
    set_random_seed(4)
    inputs = Input((4,), name="x")
    b1 = Dense(3, activation="sigmoid", name="b1")(inputs)
    b2 = Dense(2, activation="linear", name="b2")(inputs)
    b3 = Activation("sigmoid", name="b3")(inputs)
    merged = Concatenate(name="cat")([b1, b2, b3])
    model = cnnkit.Model(inputs, Dense(2, activation="sigmoid", name="head")(merged))
    rng = np.random.default_rng(7)
    x = rng.normal(size=(3, 4)).astype(np.float32)
    dy = rng.normal(size=(3, 2)).astype(np.float32)
    (dx,) = input_gradient(model, x, dy)
    (numeric,) = finite_difference(model, x, dy)
    np.testing.assert_allclose(dx, numeric, rtol=2e-2, atol=1e-3)

    # Against the sum of the three branches' own gradients (the definition, in float64).
    k1, c1, k2, c2, kh, ch = [w.astype(np.float64) for w in model.get_weights()]
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    x64 = x.astype(np.float64)
    h1, h2, h3 = sig(x64 @ k1 + c1), x64 @ k2 + c2, sig(x64)
    out = sig(np.concatenate([h1, h2, h3], 1) @ kh + ch)
    dz = dy * out * (1 - out)
    dh = dz @ kh.T
    g1 = (dh[:, :3] * h1 * (1 - h1)) @ k1.T
    g2 = dh[:, 3:5] @ k2.T
    g3 = dh[:, 5:] * h3 * (1 - h3)
    np.testing.assert_allclose(dx, g1 + g2 + g3, rtol=1e-4, atol=1e-6)
    for partial in (g1, g2, g3, g1 + g2, g2 + g3):
        assert not np.allclose(dx, partial, atol=1e-4)


def test_a_tensor_feeding_an_output_and_another_layer():
    """An output that is also read by a later layer (a two-output model): the tensor gets the
    loss gradient plus the later layer's."""
    set_random_seed(5)
    inputs = Input((3,), name="x")
    h = Dense(3, activation="sigmoid", name="h")(inputs)
    o2 = Dense(2, activation="linear", name="o2")(h)
    model = cnnkit.Model(inputs, [h, o2])
    rng = np.random.default_rng(8)
    x = rng.normal(size=(2, 3)).astype(np.float32)
    dys = [rng.normal(size=(2, 3)).astype(np.float32), rng.normal(size=(2, 2)).astype(np.float32)]
    st = model.new_state()
    model._configure(st, [True], False)
    model.forward(st, x, False)
    dx = model.backward(st, dys)
    kh, ch, k2, _ = [w.astype(np.float64) for w in model.get_weights()]
    hv = 1 / (1 + np.exp(-(x.astype(np.float64) @ kh + ch)))
    dh = dys[0] + dys[1] @ k2.T
    np.testing.assert_allclose(dx, (dh * hv * (1 - hv)) @ kh.T, rtol=1e-4, atol=1e-6)


# ================================================================ 6. several inputs and outputs

def two_in_two_out(dict_outputs=False):
    a, b = Input((6, 6, 1), name="a"), Input((4,), name="b")
    x = Flatten(name="flatten")(Conv2D(2, 3, activation="relu", name="conv2d")(a))
    c = Concatenate(name="concatenate")([x, b])
    o1 = Dense(3, activation="softmax", name="out1")(c)
    o2 = Dense(1, name="out2")(c)
    outputs = {"out1": o1, "out2": o2} if dict_outputs else [o1, o2]
    return cnnkit.Model([a, b], outputs)


def two_in_two_out_data(n=24, seed=9):
    rng = np.random.default_rng(seed)
    xa = rng.uniform(size=(n, 6, 6, 1)).astype(np.float32)
    xb = rng.uniform(size=(n, 4)).astype(np.float32)
    y1 = to_categorical(rng.integers(0, 3, n), 3)
    y2 = rng.normal(size=(n, 1)).astype(np.float32)
    return xa, xb, y1, y2


# Keras 3.15.1's History for this model and compile (metrics 'accuracy' and 'mse'): its logs
# are sorted by name (keras.src.utils.python_utils.pythonify_logs), the val_ ones after.
KERAS_KEYS = ["loss", "out1_accuracy", "out1_loss", "out2_loss", "out2_mse"]
KERAS_HISTORY = KERAS_KEYS + ["val_" + k for k in KERAS_KEYS]

COMPILES = {
    "dicts": dict(loss={"out1": "categorical_crossentropy", "out2": "mse"},
                  loss_weights={"out1": 1.0, "out2": 0.5},
                  metrics={"out1": ["accuracy"], "out2": ["mse"]}),
    "lists": dict(loss=["categorical_crossentropy", "mse"], loss_weights=[1.0, 0.5],
                  metrics=[["accuracy"], ["mse"]]),
}


@pytest.mark.parametrize("style", sorted(COMPILES))
def test_two_inputs_two_outputs_fit_evaluate_predict(style):
    set_random_seed(6)
    model = two_in_two_out()
    assert model.input_names == ["a", "b"] and model.output_names == ["out1", "out2"]
    model.compile(optimizer=optimizers.Adam(0.01), **COMPILES[style])
    xa, xb, y1, y2 = two_in_two_out_data()
    history = model.fit([xa, xb], {"out1": y1, "out2": y2}, epochs=3, batch_size=8, verbose=0,
                        validation_split=0.25)
    assert set(history.history) == set(KERAS_HISTORY)
    assert all(len(v) == 3 for v in history.history.values())
    h = history.history
    assert h["loss"][-1] < h["loss"][0]
    for i in range(3):  # the training loss is the weighted sum of the outputs' losses
        assert h["loss"][i] == pytest.approx(h["out1_loss"][i] + 0.5 * h["out2_loss"][i], rel=1e-5)
        assert h["val_loss"][i] == pytest.approx(
            h["val_out1_loss"][i] + 0.5 * h["val_out2_loss"][i], rel=1e-5)
        assert h["out2_mse"][i] == pytest.approx(h["out2_loss"][i], rel=1e-5)

    logs = model.evaluate({"a": xa, "b": xb}, [y1, y2], return_dict=True, verbose=0)
    assert set(logs) == set(KERAS_KEYS)
    assert logs["loss"] == pytest.approx(logs["out1_loss"] + 0.5 * logs["out2_loss"], rel=1e-5)
    p1, p2 = preds = model.predict([xa, xb], verbose=0)
    assert isinstance(preds, list) and p1.shape == (24, 3) and p2.shape == (24, 1)
    # The losses from the definition, on the predictions.
    ce = -np.mean(np.sum(y1 * np.log(np.clip(p1, 1e-7, 1)), axis=1))
    mse = np.mean((p2 - y2) ** 2)
    assert logs["out1_loss"] == pytest.approx(ce, rel=1e-4)
    assert logs["out2_loss"] == pytest.approx(mse, rel=1e-4)
    assert logs["out1_accuracy"] == pytest.approx(np.mean(p1.argmax(1) == y1.argmax(1)))
    # x by input name, in any order; y as a list or a dict: the same numbers.
    same = model.evaluate({"b": xb, "a": xa}, {"out2": y2, "out1": y1}, return_dict=True,
                          verbose=0)
    assert same == pytest.approx(logs)
    by_name = model.predict({"b": xb, "a": xa}, verbose=0)
    np.testing.assert_array_equal(by_name[0], p1)
    np.testing.assert_array_equal(by_name[1], p2)
    values = model.evaluate([xa, xb], [y1, y2], verbose=0)
    assert isinstance(values, list) and values[0] == pytest.approx(logs["loss"])


def test_history_keys_in_keras_order():
    set_random_seed(6)
    model = two_in_two_out()
    model.compile(optimizer="adam", **COMPILES["dicts"])
    xa, xb, y1, y2 = two_in_two_out_data()
    history = model.fit([xa, xb], [y1, y2], epochs=1, batch_size=8, verbose=0,
                        validation_split=0.25)
    assert list(history.history) == KERAS_HISTORY
    assert list(model.evaluate([xa, xb], [y1, y2], return_dict=True, verbose=0)) == KERAS_KEYS


def test_dict_outputs_and_inputs():
    set_random_seed(7)
    model = two_in_two_out(dict_outputs=True)
    assert model.output_names == ["out1", "out2"]
    model.compile(optimizer="adam", loss={"out1": "categorical_crossentropy", "out2": "mse"},
                  metrics={"out1": ["accuracy"]})
    xa, xb, y1, y2 = two_in_two_out_data()
    history = model.fit({"a": xa, "b": xb}, {"out1": y1, "out2": y2}, epochs=1, batch_size=8,
                        verbose=0)
    assert set(history.history) == {"loss", "out1_loss", "out2_loss", "out1_accuracy"}
    preds = model.predict({"a": xa, "b": xb}, verbose=0)
    assert isinstance(preds, dict) and list(preds) == ["out1", "out2"]
    assert preds["out1"].shape == (24, 3) and preds["out2"].shape == (24, 1)


def test_one_loss_for_every_output_and_a_scalar_weight():
    set_random_seed(8)
    a = Input((4,), name="a")
    o1, o2 = Dense(2, name="o1")(a), Dense(3, name="o2")(a)
    model = cnnkit.Model(a, [o1, o2])
    model.compile(optimizer="sgd", loss="mse", loss_weights=[2.0, 0.25])
    rng = np.random.default_rng(10)
    x, y1, y2 = rng.normal(size=(8, 4)), rng.normal(size=(8, 2)), rng.normal(size=(8, 3))
    logs = model.evaluate(x, [y1, y2], return_dict=True, verbose=0)
    p1, p2 = model.predict(x, verbose=0)
    assert logs["o1_loss"] == pytest.approx(np.mean((p1 - y1) ** 2), rel=1e-5)
    assert logs["o2_loss"] == pytest.approx(np.mean((p2 - y2) ** 2), rel=1e-5)
    assert logs["loss"] == pytest.approx(2.0 * logs["o1_loss"] + 0.25 * logs["o2_loss"], rel=1e-5)


def test_flat_metrics_list_on_two_outputs_is_a_value_error():
    model = two_in_two_out()
    xa, xb, y1, y2 = two_in_two_out_data(8)
    with pytest.raises(ValueError, match="metrics"):
        model.compile(optimizer="adam", loss=["categorical_crossentropy", "mse"], metrics=["mse"])
        model.fit([xa, xb], [y1, y2], epochs=1, verbose=0)


def test_loss_weights_change_the_gradient_as_keras():
    """An output with loss weight 0 does not move the weights only it feeds."""
    set_random_seed(9)
    a = Input((3,), name="a")
    o1, o2 = Dense(2, name="o1")(a), Dense(2, name="o2")(a)
    model = cnnkit.Model(a, [o1, o2])
    model.compile(optimizer=optimizers.SGD(0.1), loss="mse", loss_weights={"o1": 1.0, "o2": 0.0})
    before = model.get_weights()
    rng = np.random.default_rng(11)
    y = [rng.normal(size=(4, 2)), rng.normal(size=(4, 2))]
    model.train_on_batch(rng.normal(size=(4, 3)), y)
    after = model.get_weights()
    assert not np.allclose(after[0], before[0])
    np.testing.assert_array_equal(after[2], before[2])
    np.testing.assert_array_equal(after[3], before[3])


# ================================================================ 7. summary

def test_functional_summary_has_connected_to():
    model = two_in_two_out()
    text = summary_text(model)
    assert "Connected to" in text
    for entry in ("a[0][0]", "conv2d[0][0]", "flatten[0][0]", "b[0][0]", "concatenate[0][0]"):
        assert entry in text
    rows = {line.split()[0]: line for line in text.splitlines()
            if line.strip() and line.split()[0] in ("conv2d", "concatenate", "out1")}
    assert rows["conv2d"].rstrip().endswith("a[0][0]")
    assert "flatten[0][0]" in rows["concatenate"] and "b[0][0]" in rows["concatenate"]
    assert rows["out1"].rstrip().endswith("concatenate[0][0]")
    assert "Total params: 168" in text  # 2*(9+1) + 36*3+3 + 36+1


def test_summary_of_a_shared_layer_shows_each_call():
    a, b = Input((3,), name="a"), Input((3,), name="b")
    shared = Dense(2, name="shared")
    model = cnnkit.Model([a, b], Add(name="sum")([shared(a), shared(b)]))
    text = summary_text(model)
    assert "shared[0][0]" in text and "shared[1][0]" in text
    assert "Total params: 8" in text


def test_subclassed_summary_needs_a_built_model():
    model = ConvNet()
    with pytest.raises(ValueError, match="not yet been built|not been built"):
        model.summary(print_fn=lambda line: None)
    model.build((None, 8, 8, 2))
    text = summary_text(model)
    for name in ("conv", "pool", "flat", "drop", "head"):
        assert getattr(model, name).name in text
    assert f"Total params: {model.count_params()}" in text
    assert "Connected to" not in text


# ================================================================ 8. configs, saving, loading

def functional_with_dropout():
    inputs = Input((6, 6, 2), name="img")
    x = Conv2D(3, 3, activation="relu", name="conv")(inputs)
    skip = Conv2D(3, 1, name="proj")(inputs)
    x = Concatenate(name="cat")([Flatten(name="f1")(x), Flatten(name="f2")(skip)])
    x = Dropout(0.3, name="drop")(x)
    return cnnkit.Model(inputs, Dense(3, activation="softmax", name="head")(x), name="net")


def classification_data(n=20, seed=12):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 6, 6, 2)).astype(np.float32),
            to_categorical(rng.integers(0, 3, n), 3))


def test_get_config_from_config_round_trip():
    set_random_seed(10)
    model = functional_with_dropout()
    config = model.get_config()
    assert config["name"] == "net"
    assert [entry["name"] for entry in config["layers"]] == [l.name for l in model.layers]
    clone = cnnkit.models.Functional.from_config(config)
    assert type(clone) is type(model) and clone is not model
    assert [l.name for l in clone.layers] == [l.name for l in model.layers]
    assert [type(l) for l in clone.layers] == [type(l) for l in model.layers]
    assert all(a is not b for a, b in zip(clone.layers, model.layers))
    assert summary_text(clone) == summary_text(model)
    assert clone.get_config() == config
    clone.set_weights(model.get_weights())
    x, _ = classification_data()
    np.testing.assert_array_equal(clone.predict(x, verbose=0), model.predict(x, verbose=0))


def test_from_config_of_a_model_with_a_shared_layer_keeps_the_sharing():
    a, b = Input((3,), name="a"), Input((3,), name="b")
    shared = Dense(2, name="shared")
    model = cnnkit.Model([a, b], Add(name="sum")([shared(a), shared(b)]))
    clone = cnnkit.models.Functional.from_config(model.get_config())
    assert len(clone.weights) == 2
    assert len(clone.get_layer("shared")._inbound_nodes) == 2
    clone.set_weights(model.get_weights())
    x = [np.ones((2, 3)), np.arange(6.0).reshape(2, 3)]
    np.testing.assert_array_equal(clone.predict(x, verbose=0), model.predict(x, verbose=0))


def test_save_and_load_resume_exactly(tmp_path):
    set_random_seed(11)
    model = functional_with_dropout()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    x, y = classification_data()
    model.fit(x, y, epochs=1, batch_size=6, verbose=0)
    path = tmp_path / "functional.cnnkit"
    model.save(path)
    loaded = load_model(path)
    assert type(loaded) is type(model) and loaded.name == "net"
    assert [l.name for l in loaded.layers] == [l.name for l in model.layers]
    assert_same_weights(model, loaded)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    h1 = model.fit(x, y, epochs=1, batch_size=6, verbose=0).history
    h2 = loaded.fit(x, y, epochs=1, batch_size=6, verbose=0).history
    assert h1 == h2
    assert_same_weights(model, loaded)
    assert not np.array_equal(model.get_weights()[0], np.load(path)["weight_0000"])


def nested_model():
    inner = Sequential([Input((6, 6, 2)), Conv2D(2, 3, padding="same", activation="relu"),
                        MaxPooling2D(2)], name="features")
    inputs = Input((6, 6, 2), name="img")
    x = inner(inputs)
    x = Add(name="mix")([x, MaxPooling2D(2, name="pool_in")(inputs)])
    x = Dropout(0.2, name="drop")(Flatten(name="flat")(x))
    return cnnkit.Model(inputs, Dense(3, activation="softmax", name="head")(x), name="outer"), inner


def test_functional_with_a_nested_sequential(tmp_path):
    set_random_seed(12)
    model, inner = nested_model()
    assert inner in model.layers and isinstance(model.layers[0], InputLayer)
    assert len(model.weights) == 4
    assert "features" in summary_text(model)
    x, y = classification_data()
    # The nested model's weights train with the rest.
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    before = inner.get_weights()
    model.fit(x, y, epochs=1, batch_size=5, verbose=0)
    assert not np.allclose(inner.get_weights()[0], before[0])
    # Config round trip.
    clone = cnnkit.models.Functional.from_config(model.get_config())
    assert isinstance(clone.get_layer("features"), Sequential)
    assert clone.get_layer("features") is not inner
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone.predict(x, verbose=0), model.predict(x, verbose=0))
    # Saving resumes exactly.
    path = tmp_path / "nested.keras"
    model.save(path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    model.fit(x, y, epochs=1, batch_size=5, verbose=0)
    loaded.fit(x, y, epochs=1, batch_size=5, verbose=0)
    assert_same_weights(model, loaded)


def test_two_input_two_output_model_saves_and_loads(tmp_path):
    set_random_seed(13)
    model = two_in_two_out()
    model.compile(optimizer="adam", **COMPILES["dicts"])
    xa, xb, y1, y2 = two_in_two_out_data()
    model.fit([xa, xb], [y1, y2], epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    assert loaded.input_names == ["a", "b"] and loaded.output_names == ["out1", "out2"]
    for p, q in zip(loaded.predict([xa, xb], verbose=0), model.predict([xa, xb], verbose=0)):
        np.testing.assert_array_equal(p, q)
    assert loaded.evaluate([xa, xb], [y1, y2], return_dict=True, verbose=0) == pytest.approx(
        model.evaluate([xa, xb], [y1, y2], return_dict=True, verbose=0))
    model.fit([xa, xb], [y1, y2], epochs=1, batch_size=8, verbose=0)
    loaded.fit([xa, xb], [y1, y2], epochs=1, batch_size=8, verbose=0)
    assert_same_weights(model, loaded)


# ================================================================ 9. subclassed models

class Tiny(cnnkit.Model):
    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.conv = Conv2D(2, 3, activation="relu")
        self.flat = Flatten()
        self.head = Dense(units, activation="softmax")

    def call(self, inputs, training=None):
        return self.head(self.flat(self.conv(inputs)))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def test_subclassed_model_fit_evaluate_predict_save_weights(tmp_path):
    set_random_seed(14)
    model = Tiny()
    assert not model.built
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    x, y = classification_data()
    history = model.fit(x, y, epochs=4, batch_size=5, verbose=0)
    assert model.built and set(history.history) == {"loss", "accuracy"}
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert len(model.trainable_weights) == 4
    assert [l.name for l in model.layers] == [model.conv.name, model.flat.name, model.head.name]
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert 0 <= accuracy <= 1 and np.isfinite(loss)
    pred = model.predict(x, verbose=0)
    assert pred.shape == (20, 3)
    np.testing.assert_allclose(pred.sum(1), 1, rtol=1e-5)
    assert model.count_params() == 2 * (9 * 2 + 1) + 32 * 3 + 3
    assert str(model.count_params()) in summary_text(model)

    model.save_weights(tmp_path / "tiny.weights.npz")
    other = Tiny()
    other.load_weights(tmp_path / "tiny.weights.npz")  # builds it from the file
    np.testing.assert_array_equal(other.predict(x, verbose=0), pred)
    third = Tiny()
    third.build((None, 6, 6, 2))
    third.load_weights(tmp_path / "tiny.weights.npz")
    np.testing.assert_array_equal(third.predict(x, verbose=0), pred)


def test_load_model_of_a_subclassed_model_needs_custom_objects(tmp_path):
    set_random_seed(15)
    model = Tiny(units=4)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    x, _ = classification_data()
    y = to_categorical(np.arange(20) % 4, 4)
    model.fit(x, y, epochs=1, batch_size=5, verbose=0)
    path = tmp_path / "tiny.keras"
    model.save(path)
    with pytest.raises(ValueError, match=r"(?s)Tiny.*custom_objects"):
        load_model(path)
    loaded = load_model(path, custom_objects={"Tiny": Tiny})
    assert type(loaded) is Tiny and loaded.units == 4
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    model.fit(x, y, epochs=1, batch_size=5, verbose=0)
    loaded.fit(x, y, epochs=1, batch_size=5, verbose=0)
    assert_same_weights(model, loaded)


def test_subclassed_model_with_two_inputs_and_a_list_of_layers():
    class TwoTower(cnnkit.Model):
        def __init__(self):
            super().__init__()
            self.towers = [Dense(3, activation="sigmoid"), Dense(3, activation="sigmoid")]
            self.head = Dense(1)

        def call(self, inputs):
            a, b = inputs
            return self.head(self.towers[0](a) + self.towers[1](b))

    set_random_seed(16)
    model = TwoTower()
    rng = np.random.default_rng(13)
    xa, xb = rng.normal(size=(10, 2)), rng.normal(size=(10, 5))
    y = rng.normal(size=(10, 1))
    model.compile(optimizer=optimizers.Adam(0.05), loss="mse")
    history = model.fit([xa, xb], y, epochs=5, batch_size=5, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert len(model.trainable_weights) == 6
    k1, c1, k2, c2, kh, ch = model.get_weights()
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    expected = (sig(xa @ k1 + c1) + sig(xb @ k2 + c2)) @ kh + ch
    np.testing.assert_allclose(model.predict([xa, xb], verbose=0), expected, rtol=1e-4, atol=1e-5)


# ================================================================ 10. no silent wrong models

def autoencoder_class(base):
    class Autoencoder(base):
        """A subclass whose call() is the model, as users write it (Keras runs call())."""

        def __init__(self):
            super().__init__()
            self.encoder = Sequential([Conv2D(4, 3, padding="same", activation="relu"),
                                       MaxPooling2D(2)])
            self.decoder = Sequential([UpSampling2D(2),
                                       Conv2D(1, 3, padding="same", activation="sigmoid")])

        def call(self, inputs, training=None):
            return self.decoder(self.encoder(inputs))

    return Autoencoder


def autoencoder_data():
    """Smooth images (a brightness and a horizontal ramp each), easy to reconstruct."""
    rng = np.random.default_rng(14)
    level, slope = rng.uniform(0.3, 0.7, (2, 16, 1, 1, 1))
    ramp = np.linspace(-0.2, 0.2, 8).reshape(1, 1, 8, 1)
    return (level + (slope - 0.5) * ramp * np.ones((1, 8, 1, 1))).astype(np.float32)


@pytest.mark.parametrize("base", [cnnkit.Model,
                                  Sequential],
                         ids=["Model", "Sequential"])
def test_subclass_with_call_trains_what_call_says(base):
    set_random_seed(17)
    x = autoencoder_data()
    model = autoencoder_class(base)()
    model.compile(optimizer=optimizers.Adam(0.02), loss="mse")
    history = model.fit(x, x, epochs=15, batch_size=8, verbose=0)
    assert [l.name for l in model.layers] == [model.encoder.name, model.decoder.name]
    assert len(model.trainable_weights) == 4 and model.count_params() == 4 * 10 + 37
    losses = history.history["loss"]
    assert losses[0] > 1e-3 and losses[-1] < 0.7 * losses[0], losses


@pytest.mark.parametrize("base", [cnnkit.Model, Sequential], ids=["Model", "Sequential"])
def test_subclass_with_call_predicts_what_call_says(base):
    set_random_seed(17)
    x = autoencoder_data()
    model = autoencoder_class(base)()
    pred = model.predict(x, verbose=0)
    assert pred.shape == x.shape and not np.allclose(pred, x, atol=1e-2)
    manual = model.decoder.predict(model.encoder.predict(x, verbose=0), verbose=0)
    np.testing.assert_allclose(pred, manual, rtol=1e-5, atol=1e-6)


def test_numpy_on_a_symbolic_tensor_in_call_raises_at_build():
    class UsesNumpy(cnnkit.Model):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn
            self.dense = Dense(2)

        def call(self, inputs):
            return self.dense(self.fn(inputs))

    for fn in (np.tanh, np.mean, lambda t: np.asarray(t) * 2, lambda t: np.exp(t) + 1):
        model = UsesNumpy(fn)
        with pytest.raises(TypeError):
            model.build((None, 4))
        with pytest.raises(TypeError):
            model.predict(np.ones((2, 4)), verbose=0)


def test_arithmetic_with_a_constant_raises_naming_layers():
    x = Input((3,))
    for expr in (lambda t: 0.5 * t, lambda t: t * 0.5, lambda t: t + 1, lambda t: 1 - t,
                 lambda t: t * np.float32(2)):
        with pytest.raises(TypeError, match="layers"):
            expr(x)

    class Scales(cnnkit.Model):
        def __init__(self):
            super().__init__()
            self.dense = Dense(2)

        def call(self, inputs):
            return self.dense(0.5 * inputs)

    with pytest.raises(TypeError, match="layers"):
        Scales().build((None, 3))


def test_plus_between_symbolic_tensors_is_the_add_layer():
    set_random_seed(18)
    x = Input((3,), name="x")
    h1 = Dense(2, activation="sigmoid", name="h1")(x)
    h2 = Dense(2, activation="linear", name="h2")(x)
    s = h1 + h2
    assert isinstance(s.node.layer, Add) and s.node.inputs == [h1, h2]
    d = h1 - h2
    assert type(d.node.layer).__name__ == "Subtract"
    m = h1 * h2
    assert type(m.node.layer).__name__ == "Multiply"
    model = cnnkit.Model(x, [s, d, m])
    rng = np.random.default_rng(15)
    xv = rng.normal(size=(3, 3)).astype(np.float32)
    ps, pd, pm = model.predict(xv, verbose=0)
    a = model.get_layer("h1")(xv)
    b = model.get_layer("h2")(xv)
    np.testing.assert_allclose(ps, a + b, rtol=1e-6)
    np.testing.assert_allclose(pd, a - b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(pm, a * b, rtol=1e-6)
    dys = [rng.normal(size=(3, 2)).astype(np.float32) for _ in range(3)]
    st = model.new_state()
    model._configure(st, [True], False)
    model.forward(st, xv, False)
    dx = model.backward(st, dys)
    k1, c1, k2, c2 = [w.astype(np.float64) for w in model.get_weights()]
    x64 = xv.astype(np.float64)
    av, bv = 1 / (1 + np.exp(-(x64 @ k1 + c1))), x64 @ k2 + c2
    da = dys[0] + dys[1] + dys[2] * bv
    db = dys[0] - dys[1] + dys[2] * av
    np.testing.assert_allclose(dx, (da * av * (1 - av)) @ k1.T + db @ k2.T, rtol=1e-4, atol=1e-6)


# ================================================================ 12. Sequential as before

def test_sequential_with_input_and_add():
    set_random_seed(19)
    a = Sequential([Input((6, 6, 1)), Conv2D(2, 3, activation="relu"), Flatten(), Dense(2)])
    b = Sequential()
    b.add(Input((6, 6, 1)))
    b.add(Conv2D(2, 3, activation="relu"))
    b.add(Flatten())
    b.add(Dense(2))
    for model in (a, b):
        assert model.built and [type(l).__name__ for l in model.layers] == [
            "Conv2D", "Flatten", "Dense"]
        assert not any(isinstance(l, InputLayer) for l in model.layers)
        assert model.input_shape == (None, 6, 6, 1) and model.output_shape == (None, 2)
        assert "Connected to" not in summary_text(model)
    b.set_weights(a.get_weights())
    x = np.random.default_rng(16).normal(size=(4, 6, 6, 1))
    np.testing.assert_array_equal(a.predict(x, verbose=0), b.predict(x, verbose=0))
    a.compile(optimizer="adam", loss="mse")
    history = a.fit(x, np.zeros((4, 2)), epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    # Without Input: built on first use.
    c = Sequential([Dense(3), Dense(1)])
    assert not c.built
    assert c.predict(np.ones((2, 5)), verbose=0).shape == (2, 1) and c.built
    assert len(c.layers) == 2


def test_functional_layers_start_with_input_layers():
    inputs = Input((6, 6, 1), name="img")
    x = Conv2D(2, 3, name="c")(inputs)
    model = cnnkit.Model(inputs, Dense(2, name="d")(Flatten(name="f")(x)))
    assert isinstance(model.layers[0], InputLayer) and model.layers[0].name == "img"
    assert [l.name for l in model.layers] == ["img", "c", "f", "d"]
    two = two_in_two_out()
    assert isinstance(two.layers[0], InputLayer)
    assert {l.name for l in two.layers if isinstance(l, InputLayer)} == {"a", "b"}
    # A Sequential built on the same engine hides its InputLayer.
    seq = Sequential([Input((6, 6, 1)), Conv2D(2, 3), Flatten(), Dense(2)])
    assert [type(l).__name__ for l in seq.layers] == ["Conv2D", "Flatten", "Dense"]


def test_functional_layers_order_as_keras_with_inputs_of_different_depths():
    # keras 3.15.1 on the same graph: ['a', 'conv2d', 'flatten', 'b', 'concatenate', 'out1', 'out2']
    model = two_in_two_out()
    assert [l.name for l in model.layers] == ["a", "conv2d", "flatten", "b", "concatenate",
                                              "out1", "out2"]


def test_a_functional_model_used_as_a_layer():
    """A functional model called inside another, twice (shared), trains and saves."""
    set_random_seed(20)
    inner_in = Input((4,), name="inner_in")
    inner = cnnkit.Model(inner_in, Dense(2, activation="sigmoid", name="enc")(inner_in),
                         name="encoder")
    a, b = Input((4,), name="a"), Input((4,), name="b")
    out = Dense(1, name="head")(Concatenate(name="cat")([inner(a), inner(b)]))
    model = cnnkit.Model([a, b], out)
    assert len(model.weights) == 4 and len(model.trainable_weights) == 4
    rng = np.random.default_rng(17)
    xa, xb = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    k, c, kh, ch = model.get_weights()
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    expected = np.concatenate([sig(xa @ k + c), sig(xb @ k + c)], 1) @ kh + ch
    np.testing.assert_allclose(model.predict([xa, xb], verbose=0), expected, rtol=1e-4, atol=1e-5)


def test_training_argument_of_a_call_is_kept_in_the_graph():
    """Dropout(...)(x, training=True) drops in predict too (Keras keeps a node's training)."""
    set_random_seed(21)
    x = Input((50,), name="x")
    model = cnnkit.Model(x, [Dropout(0.5, seed=3, name="always")(x, training=True),
                             Dropout(0.5, seed=3, name="usual")(x)])
    always, usual = model.predict(np.ones((2, 50)), verbose=0)
    np.testing.assert_array_equal(usual, 1)
    assert set(np.unique(always)) == {0.0, 2.0}
    clone = cnnkit.models.Functional.from_config(model.get_config())
    always, usual = clone.predict(np.ones((2, 50)), verbose=0)
    assert set(np.unique(always)) == {0.0, 2.0} and np.all(usual == 1)


def test_frozen_layer_in_a_functional_model():
    set_random_seed(22)
    x = Input((3,))
    frozen, top = Dense(2, trainable=False, name="frozen"), Dense(1, name="top")
    model = cnnkit.Model(x, top(frozen(x)))
    assert len(model.trainable_weights) == 2 and len(model.non_trainable_weights) == 2
    model.compile(optimizer=optimizers.SGD(0.1), loss="mse")
    before = model.get_weights()
    rng = np.random.default_rng(18)
    model.train_on_batch(rng.normal(size=(4, 3)), rng.normal(size=(4, 1)))
    after = model.get_weights()
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])
    assert not np.array_equal(after[2], before[2])


def test_layer_shared_between_two_models_configs_count_their_own_nodes():
    shared = Dense(2, name="shared_across")
    x1 = Input((3,), name="x1")
    first = cnnkit.Model(x1, shared(x1))
    x2 = Input((3,), name="x2")
    second = cnnkit.Model(x2, Dense(1, name="top")(shared(x2)))
    assert len(shared._inbound_nodes) == 2
    entry = [e for e in second.get_config()["layers"] if e["name"] == "shared_across"][0]
    assert len(entry["inbound_nodes"]) == 1
    assert entry["inbound_nodes"][0]["args"][0]["config"]["keras_history"] == ["x2", 0, 0]
    assert "shared_across[0][0]" in summary_text(second)
    clone = cnnkit.models.Functional.from_config(second.get_config())
    clone.set_weights(second.get_weights())
    v = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(clone.predict(v, verbose=0), second.predict(v, verbose=0))
    np.testing.assert_array_equal(first.predict(v, verbose=0), shared(v))


def test_same_tensor_as_two_outputs_gets_both_loss_gradients():
    set_random_seed(23)
    x = Input((3,), name="x")
    h = Dense(2, name="h")(x)
    twice = cnnkit.Model(x, [h, h])
    once = cnnkit.Model(x, h)
    twice.compile(optimizer=optimizers.SGD(0.1), loss="mse")
    once.compile(optimizer=optimizers.SGD(0.2), loss="mse")  # twice the loss: twice the step
    rng = np.random.default_rng(19)
    xv, y = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    start = twice.get_weights()
    twice.train_on_batch(xv, [y, y])
    moved = twice.get_weights()
    twice.set_weights(start)  # `once` shares the layer h
    once.train_on_batch(xv, y)
    for p, q in zip(moved, once.get_weights()):
        np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-7)
