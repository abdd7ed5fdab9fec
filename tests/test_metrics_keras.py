"""cnnkit.metrics against Keras 3 itself (KERAS_BACKEND=numpy): every metric on random data,
with and without sample_weight, over several update_state calls, after reset_state, and its
get_config; compile's metric strings resolved as Keras' compile_utils resolves them.
CI has no Keras: these tests are skipped there (test_metrics.py checks values by hand)."""
import os
import zlib

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "numpy")
keras = pytest.importorskip("keras")

from cnnkit import losses, metrics  # noqa: E402

RTOL, ATOL = 2e-5, 1e-6
# Keras' own divide_no_nan warns on 0/0 with the numpy backend; cnnkit's warnings still count.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning:keras")


def binary_data(rng, shape):
    return (rng.random(shape) < 0.4).astype(np.float32), rng.random(shape).astype(np.float32)


def one_hot_data(rng, shape):
    labels = rng.integers(0, shape[-1], shape[:-1])
    return np.eye(shape[-1], dtype=np.float32)[labels], rng.random(shape).astype(np.float32)


def sparse_data(rng, shape, trailing_one=False):
    labels = rng.integers(0, shape[-1], shape[:-1])
    if trailing_one:
        labels = labels[..., None]
    return labels, rng.random(shape).astype(np.float32)


def exact_data(rng, shape):
    return rng.integers(0, 3, shape).astype(np.float32), rng.integers(0, 3, shape).astype(np.float32)


def regression_data(rng, shape):
    return rng.normal(size=shape).astype(np.float32), rng.normal(size=shape).astype(np.float32)


def logits_data(rng, shape):
    return (rng.random(shape) < 0.5).astype(np.float32), rng.normal(size=shape).astype(np.float32) * 3


# (class name, constructor kwargs, data maker, sample shape)
CASES = [
    ("Accuracy", {}, exact_data, (4,)),
    ("BinaryAccuracy", {}, binary_data, (1,)),
    ("BinaryAccuracy", {"threshold": 0.3}, binary_data, (5,)),
    ("BinaryAccuracy", {}, binary_data, (4, 4, 1)),
    ("CategoricalAccuracy", {}, one_hot_data, (6,)),
    ("CategoricalAccuracy", {}, one_hot_data, (3, 3, 4)),
    ("SparseCategoricalAccuracy", {}, sparse_data, (6,)),
    ("SparseCategoricalAccuracy", {}, lambda r, s: sparse_data(r, s, True), (6,)),
    ("TopKCategoricalAccuracy", {}, one_hot_data, (10,)),
    ("TopKCategoricalAccuracy", {"k": 2}, one_hot_data, (6,)),
    ("TopKCategoricalAccuracy", {"k": 7}, one_hot_data, (6,)),
    ("SparseTopKCategoricalAccuracy", {}, sparse_data, (10,)),
    ("SparseTopKCategoricalAccuracy", {"k": 3}, lambda r, s: sparse_data(r, s, True), (8,)),
    ("Precision", {}, binary_data, (5,)),
    ("Precision", {"thresholds": 0.3}, binary_data, (1,)),
    ("Precision", {"thresholds": [0.7, 0.2, 0.5]}, binary_data, (5,)),
    ("Precision", {"thresholds": [0.0, 0.5, 1.0]}, binary_data, (5,)),
    ("Precision", {"top_k": 2}, binary_data, (5,)),
    ("Precision", {"class_id": 1}, binary_data, (5,)),
    ("Precision", {"top_k": 2, "class_id": 3, "thresholds": [0.2, 0.6]}, binary_data, (5,)),
    ("Recall", {}, binary_data, (5,)),
    ("Recall", {"thresholds": [0.1, 0.4, 0.9]}, binary_data, (5,)),
    ("Recall", {"top_k": 3}, binary_data, (6,)),
    ("Recall", {"class_id": 0}, binary_data, (3,)),
    ("TruePositives", {}, binary_data, (4,)),
    ("FalsePositives", {"thresholds": [0.1, 0.6, 0.9]}, binary_data, (4,)),
    ("TrueNegatives", {"thresholds": 0.7}, binary_data, (4,)),
    ("FalseNegatives", {}, binary_data, (4,)),
    ("AUC", {}, binary_data, (1,)),
    ("AUC", {}, binary_data, (4,)),
    ("AUC", {"curve": "PR"}, binary_data, (3,)),
    ("AUC", {"curve": "PR", "summation_method": "minoring"}, binary_data, (3,)),
    ("AUC", {"summation_method": "majoring", "num_thresholds": 50}, binary_data, (3,)),
    ("AUC", {"curve": "pr", "summation_method": "Majoring"}, binary_data, (3,)),
    ("AUC", {"curve": "PRGAIN"}, binary_data, (3,)),
    ("AUC", {"thresholds": [0.9, 0.1, 0.35, 0.5]}, binary_data, (3,)),
    ("AUC", {"num_thresholds": 3}, binary_data, (3,)),
    ("AUC", {"multi_label": True}, binary_data, (4,)),
    ("AUC", {"multi_label": True, "num_labels": 4, "curve": "PR"}, binary_data, (4,)),
    ("AUC", {"multi_label": True, "label_weights": [1.0, 0.0, 2.0]}, binary_data, (3,)),
    ("AUC", {"label_weights": [1.0, 0.5, 2.0]}, binary_data, (3,)),
    ("AUC", {"from_logits": True}, logits_data, (2,)),
    ("MeanAbsoluteError", {}, regression_data, (3,)),
    ("MeanAbsoluteError", {}, regression_data, (4, 4, 2)),
    ("MeanSquaredError", {}, regression_data, (3,)),
    ("MeanSquaredError", {}, regression_data, (4, 4, 2)),
    ("RootMeanSquaredError", {}, regression_data, (3,)),
    ("RootMeanSquaredError", {}, regression_data, (2, 3, 2)),
]


def batches(make, shape, weighted, seed):
    rng = np.random.default_rng(seed)
    out = []
    for n in (7, 16, 3):
        y_true, y_pred = make(rng, (n,) + shape)
        weight = None
        if weighted:
            weight = rng.random(n).astype(np.float32) * 2
            weight[0] = 0.0
        out.append((y_true, y_pred, weight))
    return out


def run(metric, data):
    for y_true, y_pred, weight in data:
        if weight is None:
            metric.update_state(y_true, y_pred)
        else:
            metric.update_state(y_true, y_pred, sample_weight=weight)
    return np.asarray(metric.result(), dtype=np.float64)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("name, kwargs, make, shape", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_metric_matches_keras(name, kwargs, make, shape, weighted):
    ours, theirs = getattr(metrics, name)(**kwargs), getattr(keras.metrics, name)(**kwargs)
    data = batches(make, shape, weighted, seed=zlib.crc32(repr((name, kwargs, shape)).encode()))
    expected = np.asarray(run(theirs, data))
    got = run(ours, data)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)
    # reset, then one batch alone: the state starts again from nothing
    ours.reset_state(), theirs.reset_state()
    np.testing.assert_allclose(run(ours, data[1:2]), run(theirs, data[1:2]), rtol=RTOL, atol=ATOL)


def _plain(config):
    return {k: (np.asarray(v).tolist() if isinstance(v, np.ndarray) else v)
            for k, v in config.items()}


@pytest.mark.parametrize("name, kwargs", sorted({(c[0], repr(c[1])) for c in CASES}))
def test_get_config_has_keras_keys_and_values_and_round_trips(name, kwargs):
    kwargs = eval(kwargs)  # the repr of a dict of literals
    ours = getattr(metrics, name)(name="m", **kwargs)
    theirs = getattr(keras.metrics, name)(name="m", **kwargs)
    config = ours.get_config()
    assert _plain(config) == _plain(theirs.get_config())
    again = type(ours).from_config(config)
    assert again.get_config() == config and type(again) is type(ours)


def test_metric_results_match_keras_after_a_config_round_trip():
    rng = np.random.default_rng(5)
    y_true, y_pred = binary_data(rng, (40, 3))
    for metric in (metrics.AUC(curve="PR", num_thresholds=17), metrics.Precision([0.3, 0.8])):
        again = type(metric).from_config(metric.get_config())
        np.testing.assert_allclose(again(y_true, y_pred), metric(y_true, y_pred))


@pytest.mark.parametrize("values, weight", [
    (np.arange(6.0), None), (np.arange(6.0), np.array([1, 0, 2, 0.5, 0, 1.0])),
    (np.arange(12.0).reshape(4, 3), None), (np.arange(12.0).reshape(4, 3), np.array([0, 1, 2, 3.0])),
    (np.float32(2.5), None), (np.float32(2.5), 4), (np.arange(5.0), 3.0),
])
@pytest.mark.parametrize("name", ["Mean", "Sum"])
def test_mean_and_sum_match_keras(name, values, weight):
    ours, theirs = getattr(metrics, name)(), getattr(keras.metrics, name)()
    for _ in range(2):
        ours.update_state(values, sample_weight=weight)
        theirs.update_state(values, sample_weight=weight)
    np.testing.assert_allclose(ours.result(), theirs.result(), rtol=1e-6)
    assert ours.get_config() == theirs.get_config()


@pytest.mark.parametrize("fn", ["binary_accuracy", "categorical_accuracy",
                                "sparse_categorical_accuracy", "top_k_categorical_accuracy",
                                "sparse_top_k_categorical_accuracy", "mean_absolute_error",
                                "mean_squared_error", "mae", "mse"])
def test_function_forms_match_keras(fn):
    rng = np.random.default_rng(3)
    if fn.startswith("sparse"):
        y_true, y_pred = sparse_data(rng, (9, 7))
    elif fn.startswith(("categorical", "top_k")):
        y_true, y_pred = one_hot_data(rng, (9, 7))
    elif fn == "binary_accuracy":
        y_true, y_pred = binary_data(rng, (9, 7))
    else:
        y_true, y_pred = regression_data(rng, (9, 2, 7))
    got = getattr(metrics, fn)(y_true, y_pred)
    # Keras 3 has no keras.metrics.mae / mse functions (only the strings): cnnkit keeps them as
    # aliases of mean_absolute_error / mean_squared_error
    keras_fn = {"mae": "mean_absolute_error", "mse": "mean_squared_error"}.get(fn, fn)
    expected = np.asarray(getattr(keras.metrics, keras_fn)(y_true, y_pred))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_mean_metric_wrapper_matches_keras_with_kwargs():
    rng = np.random.default_rng(4)
    data = batches(binary_data, (3,), True, 4)
    ours = metrics.MeanMetricWrapper(metrics.binary_accuracy, threshold=0.8)
    theirs = keras.metrics.MeanMetricWrapper(keras.metrics.binary_accuracy, threshold=0.8)
    np.testing.assert_allclose(run(ours, data), run(theirs, data), rtol=RTOL)
    assert ours.get_config()["threshold"] == 0.8 and ours.get_config()["fn"] == "binary_accuracy"
    again = metrics.MeanMetricWrapper.from_config(ours.get_config())
    assert again.fn is metrics.binary_accuracy
    del rng


def test_edge_cases_match_keras():
    zeros, ones, half = np.zeros((6, 1)), np.ones((6, 1)), np.full((6, 1), 0.5)
    cases = [(zeros, np.linspace(0, 1, 6)[:, None]),    # no positives
             (ones, np.linspace(0, 1, 6)[:, None]),     # no negatives
             (np.array([[0], [1], [0], [1], [1], [0.]]), half),   # all scores equal
             (np.array([[0], [1], [0], [1], [1], [0.]]), zeros),
             (np.array([[0], [1], [0], [1], [1], [0.]]), ones)]
    for y_true, y_pred in cases:
        for name, kwargs in [("AUC", {}), ("AUC", {"curve": "PR"}), ("Precision", {}),
                             ("Recall", {}), ("Precision", {"thresholds": [0.0, 0.5, 1.0]}),
                             ("TruePositives", {}), ("BinaryAccuracy", {})]:
            ours, theirs = getattr(metrics, name)(**kwargs), getattr(keras.metrics, name)(**kwargs)
            np.testing.assert_allclose(ours(y_true, y_pred), np.asarray(theirs(y_true, y_pred)),
                                       atol=1e-6, err_msg=f"{name}{kwargs} {y_true.ravel()} {y_pred.ravel()}")
    # every weight zero: the means are 0 (divide_no_nan), as in Keras
    for name in ("BinaryAccuracy", "MeanSquaredError", "Precision", "AUC"):
        ours, theirs = getattr(metrics, name)(), getattr(keras.metrics, name)()
        w = np.zeros(6)
        np.testing.assert_allclose(ours(ones, half, sample_weight=w),
                                   np.asarray(theirs(ones, half, sample_weight=w)), atol=1e-7)


def test_auc_outside_zero_one_is_clipped_as_keras():
    rng = np.random.default_rng(6)
    y_true = (rng.random((50, 1)) < 0.5).astype(np.float32)
    y_pred = rng.normal(size=(50, 1)).astype(np.float32)
    np.testing.assert_allclose(metrics.AUC()(y_true, y_pred),
                               np.asarray(keras.metrics.AUC()(y_true, y_pred)), rtol=RTOL)


CHOICES = [  # identifier, y_true shape, y_pred shape, loss
    ("accuracy", (4, 3), (4, 3), "categorical_crossentropy"),
    ("acc", (4,), (4, 3), "sparse_categorical_crossentropy"),
    ("Accuracy", (4, 1), (4, 1), "binary_crossentropy"),
    ("ACC", (4, 3), (4, 3), "binary_crossentropy"),    # Keras 3: the output shape decides
    ("accuracy", (4, 1), (4, 1), "mse"),
    ("mse", (4, 3), (4, 3), "mse"), ("MSE", (4, 3), (4, 3), "mse"),
    ("mae", (4, 3), (4, 3), "mse"), ("mean_absolute_error", (4, 3), (4, 3), "mse"),
    ("AUC", (4, 1), (4, 1), "binary_crossentropy"), ("auc", (4, 1), (4, 1), "mse"),
    ("Precision", (4, 3), (4, 3), "mse"), ("recall", (4, 3), (4, 3), "mse"),
    ("top_k_categorical_accuracy", (4, 3), (4, 3), "categorical_crossentropy"),
    ("SparseTopKCategoricalAccuracy", (4,), (4, 3), "sparse_categorical_crossentropy"),
    ("binary_accuracy", (4, 1), (4, 1), "binary_crossentropy"),
    ("true_positives", (4, 1), (4, 1), "binary_crossentropy"),
    ("RootMeanSquaredError", (4, 3), (4, 3), "mse"),
]


@pytest.mark.parametrize("identifier, true_shape, pred_shape, loss", CHOICES)
def test_compile_strings_resolve_as_keras(identifier, true_shape, pred_shape, loss):
    from keras.src.trainers.compile_utils import get_metric
    theirs = get_metric(identifier, np.zeros(true_shape), np.zeros(pred_shape))
    ours = metrics.get(identifier, losses.get(loss), (None,) + pred_shape[1:])
    assert (type(ours).__name__, ours.name) == (type(theirs).__name__, theirs.name)


@pytest.mark.parametrize("identifier", [metrics.AUC, metrics.binary_accuracy,
                                        metrics.mean_squared_error])
def test_compile_classes_and_functions_are_named_as_keras(identifier):
    from keras.src.trainers.compile_utils import get_metric
    keras_identifier = getattr(keras.metrics, identifier.__name__)
    theirs = get_metric(keras_identifier, np.zeros((4, 1)), np.zeros((4, 1)))
    ours = metrics.get(identifier, None, (None, 1))
    assert type(ours).__name__ == type(theirs).__name__
    assert ours.name.split("_")[0] == theirs.name.split("_")[0]  # 'auc' / 'auc_3': a counter
