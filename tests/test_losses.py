"""cnnkit.losses against Keras 3: values (with sample weights, label smoothing and every
reduction) through Keras' numpy backend, gradients through Keras on jax (in a subprocess, as a
process has one backend), config keys, names, functions; and the loss objects' own checks."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from cnnkit import layers, losses, models

os.environ.setdefault("KERAS_BACKEND", "numpy")

RNG = np.random.default_rng(1)
N, K = 6, 4
PROBS = RNG.uniform(0.05, 1, (N, K)).astype(np.float32)
PROBS /= PROBS.sum(1, keepdims=True)
ONEHOT = np.eye(K, dtype=np.float32)[RNG.integers(0, K, N)]
LABELS = RNG.integers(0, K, N)
LOGITS = RNG.normal(0, 2, (N, K)).astype(np.float32)
WEIGHTS = RNG.uniform(0, 2, N).astype(np.float32)
TARGETS = RNG.uniform(0, 1, (N, K)).astype(np.float32)
BINARY = (ONEHOT > 0).astype(np.float32)

# (class, arguments, y_true, y_pred)
CASES = [
    ("CategoricalCrossentropy", {}, ONEHOT, PROBS),
    ("CategoricalCrossentropy", {"label_smoothing": 0.1}, ONEHOT, PROBS),
    ("CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.2}, ONEHOT, LOGITS),
    ("SparseCategoricalCrossentropy", {}, LABELS, PROBS),
    ("SparseCategoricalCrossentropy", {"from_logits": True}, LABELS, LOGITS),
    ("SparseCategoricalCrossentropy", {"from_logits": True, "ignore_class": 2}, LABELS, LOGITS),
    ("BinaryCrossentropy", {"label_smoothing": 0.1}, BINARY, PROBS),
    ("BinaryCrossentropy", {"from_logits": True}, BINARY, LOGITS),
    ("BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.3}, BINARY, LOGITS),
    ("CategoricalFocalCrossentropy", {}, ONEHOT, PROBS),
    ("CategoricalFocalCrossentropy", {"label_smoothing": 0.1, "gamma": 0.5}, ONEHOT, PROBS),
    ("CategoricalFocalCrossentropy", {"from_logits": True, "alpha": 0.5, "gamma": 1.5}, ONEHOT,
     LOGITS),
    ("MeanSquaredError", {}, TARGETS, PROBS),
    ("MeanAbsoluteError", {}, TARGETS, PROBS),
    ("Huber", {"delta": 0.3}, TARGETS, PROBS),
    ("Huber", {}, TARGETS * 4, LOGITS),
    ("KLDivergence", {}, TARGETS, PROBS),
]
IDS = [f"{c}-{'-'.join(f'{k}={v}' for k, v in a.items())}" for c, a, _, _ in CASES]
REDUCTIONS = ["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", None, "none"]


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_values_match_keras(keras, case):
    cls, kwargs, y_true, y_pred = case
    for reduction in REDUCTIONS:
        for weights in (None, WEIGHTS):
            want = getattr(keras.losses, cls)(reduction=reduction, **kwargs)(
                y_true, y_pred, sample_weight=weights)
            got = getattr(losses, cls)(reduction=reduction, **kwargs)(
                y_true, y_pred, sample_weight=weights)
            np.testing.assert_allclose(got, np.asarray(want), rtol=2e-6, atol=1e-7,
                                       err_msg=f"{reduction} {weights is not None}")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_config_matches_keras(keras, case):
    cls, kwargs, _, _ = case
    want = getattr(keras.losses, cls)(**kwargs).get_config()
    got = getattr(losses, cls)(**kwargs).get_config()
    if cls == "Huber":  # Keras 3 drops delta from the config; cnnkit keeps it to round-trip
        assert got.pop("delta") == kwargs.get("delta", 1.0)
    assert got == want
    again = losses.deserialize(losses.serialize(getattr(losses, cls)(**kwargs)))
    assert again.get_config() == getattr(losses, cls)(**kwargs).get_config()


FUNCTIONS = [("categorical_crossentropy", {"label_smoothing": 0.1}, ONEHOT, PROBS),
             ("sparse_categorical_crossentropy", {"from_logits": True}, LABELS, LOGITS),
             ("binary_crossentropy", {"from_logits": True}, BINARY, LOGITS),
             ("categorical_focal_crossentropy", {"gamma": 1.0}, ONEHOT, PROBS),
             ("mean_squared_error", {}, TARGETS, PROBS), ("mae", {}, TARGETS, PROBS),
             ("huber", {"delta": 0.5}, TARGETS, LOGITS), ("kld", {}, TARGETS, PROBS)]


@pytest.mark.parametrize("name, kwargs, y_true, y_pred", FUNCTIONS, ids=[f[0] for f in FUNCTIONS])
def test_functions_and_names_match_keras(keras, name, kwargs, y_true, y_pred):
    want = np.asarray(keras.losses.get(name)(y_true, y_pred, **kwargs))
    got = getattr(losses, name)(y_true, y_pred, **kwargs)
    assert got.shape == want.shape == (N,)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7)
    # the string name gives the loss whose mean is the function's mean
    if not kwargs:
        assert losses.get(name)(y_true, y_pred) == pytest.approx(float(np.mean(want)), rel=2e-6)


@pytest.mark.parametrize("name", ["mse", "MSE", "mae", "MAE", "mean_absolute_error", "huber",
                                  "kld", "KLD", "kl_divergence", "categorical_focal_crossentropy",
                                  "binary_crossentropy", "sparse_categorical_crossentropy"])
def test_keras_string_identifiers_are_known(keras, name):
    keras.losses.get(name)  # Keras knows it too
    loss = losses.get(name)
    assert isinstance(loss, losses.Loss) and loss.reduction == "sum_over_batch_size"
    assert losses.get(type(loss).__name__).get_config()["name"] == type(loss)().name


GRAD_SCRIPT = r"""
import json, sys
import numpy as np, jax, jax.numpy as jnp, keras
cases = json.loads(sys.stdin.read())
out = []
for cls, kwargs, y_true, y_pred, w in cases:
    loss = getattr(keras.losses, cls)(**kwargs)
    y_true = jnp.asarray(y_true); w = jnp.asarray(w)
    g = jax.grad(lambda p: loss(y_true, p, sample_weight=w))(jnp.asarray(y_pred, jnp.float32))
    out.append(np.asarray(g, np.float64).tolist())
print(json.dumps(out))
"""


def test_gradients_match_keras_on_jax(keras):
    pytest.importorskip("jax")
    cases = [(c, a, t, p) for c, a, t, p in CASES]
    payload = [(c, a, np.asarray(t).tolist(), p.tolist(), WEIGHTS.tolist()) for c, a, t, p in cases]
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    run = subprocess.run([sys.executable, "-c", GRAD_SCRIPT], input=json.dumps(payload),
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    wants = json.loads(run.stdout.strip().splitlines()[-1])
    for (cls, kwargs, y_true, y_pred), want in zip(cases, wants):
        loss = getattr(losses, cls)(**kwargs)
        y = loss.prepare_targets(y_true, y_pred.shape)
        _, grad = loss.value_and_grad(y, y_pred, sample_weight=WEIGHTS)
        np.testing.assert_allclose(grad, np.array(want), rtol=2e-5, atol=1e-7,
                                   err_msg=f"{cls} {kwargs}")
        if getattr(loss, "fuses_softmax", False):  # the fused path: the same on the logits
            _, dlogits = loss.from_logits_value_and_grad(y, LOGITS, sample_weight=WEIGHTS)
            logits_loss = getattr(losses, cls)(**{**kwargs, "from_logits": True})
            np.testing.assert_allclose(
                dlogits, logits_loss.value_and_grad(y, LOGITS, sample_weight=WEIGHTS)[1],
                rtol=1e-6, atol=1e-8)


def test_value_and_grad_takes_out_and_sample_weight():
    loss = losses.CategoricalCrossentropy(label_smoothing=0.1)
    out = np.empty_like(LOGITS)
    value, grad = loss.from_logits_value_and_grad(ONEHOT, LOGITS, out=out, sample_weight=WEIGHTS)
    assert grad is out
    p = np.exp(LOGITS) / np.exp(LOGITS).sum(1, keepdims=True)
    np.testing.assert_allclose(grad, WEIGHTS[:, None] * (p - (ONEHOT * 0.9 + 0.1 / K)) / N,
                               atol=1e-7)
    assert value == pytest.approx(losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=0.1)(ONEHOT, LOGITS, sample_weight=WEIGHTS), rel=1e-6)
    for cls in (losses.MeanSquaredError, losses.Huber, losses.KLDivergence):
        out = np.empty_like(PROBS)
        assert cls().value_and_grad(TARGETS, PROBS, out=out)[1] is out


@pytest.mark.parametrize("make, error, words", [
    (lambda: losses.MeanSquaredError(reduction="average"), ValueError, ["reduction", "average"]),
    (lambda: losses.CategoricalCrossentropy(axis=1), NotImplementedError, ["axis"]),
    (lambda: losses.CategoricalCrossentropy(label_smoothing=2), ValueError, ["label_smoothing"]),
    (lambda: losses.SparseCategoricalCrossentropy(ignore_class=1.5), TypeError, ["ignore_class"]),
    (lambda: losses.Huber(delta=-1), ValueError, ["delta"]),
    (lambda: losses.Huber(delta=float("inf")), ValueError, ["delta"]),
    (lambda: losses.CategoricalFocalCrossentropy(alpha=float("nan")), ValueError, ["alpha"]),
    (lambda: losses.CategoricalFocalCrossentropy(gamma="2"), TypeError, ["gamma"]),
    (lambda: losses.MeanSquaredError(dtype="float16"), ValueError, ["dtype"]),
    (lambda: losses.get("huber_loss2"), ValueError, ["Unknown loss"]),
    (lambda: losses.MeanSquaredError()(TARGETS, PROBS, sample_weight=np.ones(5)), ValueError,
     ["sample_weight", "(6,)"]),
    (lambda: losses.MeanSquaredError(reduction="none").value_and_grad(TARGETS, PROBS),
     ValueError, ["reduction", "none"]),
    (lambda: losses.SparseCategoricalCrossentropy()(np.array([0, 4]), PROBS[:2]), ValueError,
     ["[0, 4)"]),
])
def test_bad_arguments_raise_clear_errors(make, error, words):
    with pytest.raises(error) as info:
        make()
    for word in words:
        assert word in str(info.value)


def test_compile_refuses_a_reduction_it_cannot_train_with():
    model = models.Sequential([layers.Input((3,)), layers.Dense(2)])
    with pytest.raises(ValueError, match="reduction"):
        model.compile("sgd", losses.MeanSquaredError(reduction="none"))
    model.compile("sgd", losses.MeanSquaredError(reduction="sum"))  # trains with a sum


def test_sparse_ignore_class_on_image_shaped_outputs(keras):
    logits = RNG.normal(size=(2, 3, 3, 4)).astype(np.float32)
    labels = RNG.integers(0, 4, (2, 3, 3))
    labels[0, 0, :] = -1
    w = np.array([0.5, 2.0], np.float32)
    got = losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)(
        labels, logits)
    want = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)(
        labels, logits)
    assert got == pytest.approx(float(want), rel=1e-6)
    # one weight per image: the same as the per-pixel weights Keras takes
    got = losses.SparseCategoricalCrossentropy(from_logits=True)(labels.clip(0), logits,
                                                                   sample_weight=w)
    want = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
        labels.clip(0), logits, sample_weight=np.broadcast_to(w[:, None, None], (2, 3, 3)))
    assert got == pytest.approx(float(want), rel=1e-6)


@pytest.mark.parametrize("loss", [losses.CategoricalCrossentropy(label_smoothing=0.1),
                                  losses.SparseCategoricalCrossentropy(),
                                  losses.CategoricalFocalCrossentropy(gamma=1.5)],
                         ids=["smoothed", "sparse", "focal"])
def test_the_fused_path_is_the_chain_rule_through_softmax(loss):
    """What a model ending in softmax trains with: the gradient with respect to the logits is
    the probabilities' gradient through the softmax's Jacobian, and the value the same."""
    y = loss.prepare_targets(LABELS if loss.sparse else ONEHOT, LOGITS.shape)
    p = (np.exp(LOGITS) / np.exp(LOGITS).sum(1, keepdims=True)).astype(np.float32)
    value, dp = loss.value_and_grad(y, p, sample_weight=WEIGHTS)
    fused_value, dlogits = loss.from_logits_value_and_grad(y, LOGITS, sample_weight=WEIGHTS)
    assert loss.fuses_softmax and fused_value == pytest.approx(value, rel=1e-5)
    np.testing.assert_allclose(dlogits, p * (dp - np.sum(dp * p, axis=1, keepdims=True)),
                               rtol=1e-4, atol=1e-7)


def test_a_subclass_written_as_for_keras_computes_but_cannot_train(keras):
    class Squared(losses.Loss):
        def call(self, y_true, y_pred):
            return np.mean((y_pred - y_true) ** 2, axis=-1)

    class KerasSquared(keras.losses.Loss):
        def call(self, y_true, y_pred):
            return keras.ops.mean((y_pred - y_true) ** 2, axis=-1)

    for reduction in REDUCTIONS:
        got = Squared(reduction=reduction)(TARGETS, PROBS, sample_weight=WEIGHTS)
        want = KerasSquared(reduction=reduction)(TARGETS, PROBS, sample_weight=WEIGHTS)
        np.testing.assert_allclose(got, np.asarray(want), rtol=1e-6)
    assert Squared().name == "squared" and losses.get(None) is None
    with pytest.raises(NotImplementedError, match="value_and_grad"):
        Squared().value_and_grad(TARGETS, PROBS)
