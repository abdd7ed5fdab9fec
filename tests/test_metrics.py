"""cnnkit.metrics without Keras (CI has none): values computed by hand, sample weights as
repeated samples, several updates as one, AUC against the exact rank statistic, compile's
metric strings, and bad input. test_metrics_keras.py checks every metric against Keras 3."""
import math

import numpy as np
import pytest

from cnnkit import layers, losses, metrics, models

CLASSES = ["Accuracy", "BinaryAccuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy",
           "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy", "Precision", "Recall",
           "AUC", "TruePositives", "FalsePositives", "TrueNegatives", "FalseNegatives",
           "MeanAbsoluteError", "MeanSquaredError", "RootMeanSquaredError"]


def result_of(metric, y_true, y_pred, sample_weight=None):
    metric.reset_state()
    metric.update_state(y_true, y_pred, sample_weight=sample_weight)
    return metric.result()


# ---------------------------------------------------------------- values by hand

def test_mean_and_sum_by_hand():
    mean, total = metrics.Mean(), metrics.Sum()
    mean.update_state([1, 3, 5, 7]), total.update_state([1, 3, 5, 7])
    assert mean.result() == 4.0 and total.result() == 16.0
    mean.reset_state(), total.reset_state()
    mean.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
    total.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
    assert mean.result() == 2.0 and total.result() == 4.0
    # the trainer's loss tracker: a batch's mean loss weighted by its size
    tracker = metrics.Mean("loss")
    tracker.update_state(2.0, 3), tracker.update_state(4.0, 1)
    assert tracker.result() == pytest.approx(2.5) and tracker.name == "loss"
    # several values per sample: each sample counts as its mean
    mean.reset_state()
    mean.update_state([[1, 3], [10, 20]], sample_weight=[3, 1])
    assert mean.result() == pytest.approx((2 * 3 + 15) / 4)
    assert metrics.Mean().result() == 0.0  # nothing seen: 0, as Keras' divide_no_nan


def test_accuracies_by_hand():
    y, p = [[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]]
    assert result_of(metrics.BinaryAccuracy(), y, p) == 0.75
    assert result_of(metrics.BinaryAccuracy(), y, p, [1, 0, 0, 1]) == 0.5
    assert result_of(metrics.BinaryAccuracy(threshold=0.99), y, p) == 0.75
    one_hot, scores = [[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]]
    assert result_of(metrics.CategoricalAccuracy(), one_hot, scores) == 0.5
    assert result_of(metrics.CategoricalAccuracy(), one_hot, scores, [0.7, 0.3]) == pytest.approx(0.3)
    assert result_of(metrics.SparseCategoricalAccuracy(), [[2], [1]], scores) == 0.5
    assert result_of(metrics.SparseCategoricalAccuracy(), [2, 1], scores, [0.7, 0.3]) == pytest.approx(0.3)
    assert result_of(metrics.TopKCategoricalAccuracy(k=1), one_hot, scores, [0.7, 0.3]) == pytest.approx(0.3)
    assert result_of(metrics.TopKCategoricalAccuracy(k=2), one_hot, scores) == 1.0
    assert result_of(metrics.SparseTopKCategoricalAccuracy(k=1), [2, 1], scores) == 0.5
    assert result_of(metrics.SparseTopKCategoricalAccuracy(k=1, from_sorted_ids=True),
                     [2, 1], [[1, 0, 3], [1, 2, 3]]) == 0.5
    assert result_of(metrics.Accuracy(), [[1], [2], [3], [4]], [[0], [2], [3], [4]]) == 0.75
    # a tie at the k-th score counts as in the top k (Keras' in_top_k)
    assert metrics.top_k_categorical_accuracy([[0, 1, 0]], [[0.5, 0.5, 0.9]], k=2).tolist() == [1.0]


def test_per_pixel_metrics_weigh_each_sample_by_its_mean():
    y_true = np.array([[1, 1], [0, 0]], np.float32)[..., None]     # (2, 2, 1)
    y_pred = np.array([[0.9, 0.8], [0.7, 0.1]], np.float32)[..., None]
    # sample 0: 2 of 2 right, sample 1: 1 of 2 right; weights 1 and 3
    assert result_of(metrics.BinaryAccuracy(), y_true, y_pred, [1, 3]) == pytest.approx(
        (1 * 1.0 + 3 * 0.5) / 4)
    err = np.zeros((2, 2, 2, 1), np.float32)
    err[0] = 1.0    # sample 0: squared error 1 everywhere; sample 1: 0
    assert result_of(metrics.MeanSquaredError(), err, np.zeros_like(err), [1, 3]) == pytest.approx(0.25)
    assert result_of(metrics.RootMeanSquaredError(), err, np.zeros_like(err), [1, 3]) == pytest.approx(0.5)
    # confusion counts: every pixel counts, weighted by its sample's weight
    assert result_of(metrics.TruePositives(), y_true, y_pred, [1, 3]) == 2.0
    assert result_of(metrics.FalsePositives(), y_true, y_pred, [1, 3]) == 3.0


def test_regression_by_hand():
    y_true, y_pred = np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([[1.0, -1.0], [1.0, 4.0]])
    assert result_of(metrics.MeanAbsoluteError(), y_true, y_pred) == pytest.approx((1 + 1.5) / 2)
    assert result_of(metrics.MeanSquaredError(), y_true, y_pred) == pytest.approx((1 + 4.5) / 2)
    assert result_of(metrics.RootMeanSquaredError(), y_true, y_pred, [0, 1]) == pytest.approx(4.5 ** 0.5)
    assert metrics.mae(y_true, y_pred).tolist() == [1.0, 1.5]
    assert metrics.mse(y_true, y_pred).tolist() == [1.0, 4.5]


def test_confusion_counts_precision_and_recall_by_hand():
    y_true, y_pred = [0, 1, 1, 1], [1, 0, 1, 1]
    counts = {name: result_of(getattr(metrics, name)(), y_true, y_pred)
              for name in ("TruePositives", "FalsePositives", "TrueNegatives", "FalseNegatives")}
    assert counts == {"TruePositives": 2, "FalsePositives": 1, "TrueNegatives": 0,
                      "FalseNegatives": 1}
    weights = [1, 0, 2, 4]
    assert result_of(metrics.TruePositives(), y_true, y_pred, weights) == 6.0
    assert result_of(metrics.FalseNegatives(), y_true, y_pred, weights) == 0.0
    assert result_of(metrics.Precision(), y_true, y_pred) == pytest.approx(2 / 3)
    assert result_of(metrics.Precision(), y_true, y_pred, [0, 0, 1, 0]) == 1.0
    assert result_of(metrics.Recall(), y_true, y_pred) == pytest.approx(2 / 3)
    several = result_of(metrics.Precision(thresholds=[0.3, 0.7]), [1, 0, 1, 0],
                        [0.4, 0.5, 0.8, 0.2])
    assert isinstance(several, np.ndarray) and several == pytest.approx([2 / 3, 1.0])
    assert isinstance(result_of(metrics.Precision(), y_true, y_pred), float)
    # top_k: the k largest scores per sample are the positives (ties: the lower index)
    assert result_of(metrics.Precision(top_k=2), [[0, 0, 1, 1]], [[1, 1, 1, 1]]) == 0.0
    assert result_of(metrics.Precision(top_k=2), [[0, 1, 1, 0]], [[0.1, 0.2, 0.9, 0.3]]) == 0.5
    assert result_of(metrics.Recall(top_k=1), [[0, 0, 1, 1]], [[0.1, 0.2, 0.9, 0.3]]) == 0.5
    # class_id: one column of the predictions
    y2, p2 = [[0, 1], [1, 1], [0, 0]], [[0.9, 0.9], [0.9, 0.2], [0.1, 0.8]]
    assert result_of(metrics.Precision(class_id=1), y2, p2) == 0.5
    assert result_of(metrics.Recall(class_id=0), y2, p2) == 1.0


def test_auc_by_hand():
    assert result_of(metrics.AUC(num_thresholds=3), [0, 0, 1, 1], [0, 0.5, 0.3, 0.9]) == 0.75
    assert result_of(metrics.AUC(), [0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == pytest.approx(1.0)
    assert result_of(metrics.AUC(), [1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == pytest.approx(0.0)
    assert result_of(metrics.AUC(curve="PR"), [0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == pytest.approx(1.0)
    # no positives at all: no recall anywhere, AUC 0 (Keras' divide_no_nan)
    assert result_of(metrics.AUC(), [0, 0, 0], [0.1, 0.5, 0.9]) == 0.0
    # all scores equal: the ROC curve is the diagonal
    assert result_of(metrics.AUC(), [0, 1, 0, 1], [0.4] * 4) == pytest.approx(0.5)
    assert len(metrics.AUC(num_thresholds=7).thresholds) == 7


def test_auc_with_many_thresholds_is_the_rank_statistic():
    rng = np.random.default_rng(0)
    y_true = (rng.random(5000) < 0.3).astype(np.float32)
    y_pred = np.clip(rng.normal(0.4 + 0.2 * y_true, 0.2), 0, 1)
    pos, neg = y_pred[y_true == 1], y_pred[y_true == 0]
    ranks = np.argsort(np.argsort(np.concatenate([pos, neg]))) + 1
    exact = (ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))
    assert result_of(metrics.AUC(num_thresholds=20001), y_true, y_pred) == pytest.approx(exact, abs=1e-3)


def test_multi_label_auc_is_the_mean_of_each_label():
    rng = np.random.default_rng(1)
    y_true = (rng.random((60, 3)) < 0.5).astype(np.float32)
    y_pred = rng.random((60, 3)).astype(np.float32)
    each = [result_of(metrics.AUC(), y_true[:, i], y_pred[:, i]) for i in range(3)]
    assert result_of(metrics.AUC(multi_label=True), y_true, y_pred) == pytest.approx(np.mean(each))
    weighted = result_of(metrics.AUC(multi_label=True, label_weights=[1, 0, 3]), y_true, y_pred)
    assert weighted == pytest.approx((each[0] + 3 * each[2]) / 4)


# ---------------------------------------------------------------- weights and updates

def _data_for(name, rng, n):
    if name in ("CategoricalAccuracy", "TopKCategoricalAccuracy"):
        return np.eye(7)[rng.integers(0, 7, n)], rng.random((n, 7))
    if name in ("SparseCategoricalAccuracy", "SparseTopKCategoricalAccuracy"):
        return rng.integers(0, 7, n), rng.random((n, 7))
    if name == "Accuracy":
        return rng.integers(0, 2, (n, 2)), rng.integers(0, 2, (n, 2))
    if name in ("MeanAbsoluteError", "MeanSquaredError", "RootMeanSquaredError"):
        return rng.normal(size=(n, 2, 3)), rng.normal(size=(n, 2, 3))
    return (rng.random((n, 3)) < 0.5).astype(float), rng.random((n, 3))


@pytest.mark.parametrize("name", CLASSES)
def test_integer_weights_count_as_repeated_samples(name):
    rng = np.random.default_rng(2)
    y_true, y_pred = _data_for(name, rng, 30)
    weights = rng.integers(0, 4, 30)
    weighted = result_of(getattr(metrics, name)(), y_true, y_pred, weights.astype(np.float32))
    repeated = result_of(getattr(metrics, name)(), np.repeat(y_true, weights, axis=0),
                         np.repeat(y_pred, weights, axis=0))
    np.testing.assert_allclose(weighted, repeated, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", CLASSES)
def test_several_updates_equal_one_update_and_reset_clears(name):
    rng = np.random.default_rng(3)
    y_true, y_pred = _data_for(name, rng, 40)
    weights = rng.random(40)
    metric = getattr(metrics, name)()
    for part in np.array_split(np.arange(40), 3):
        metric.update_state(y_true[part], y_pred[part], sample_weight=weights[part])
    np.testing.assert_allclose(metric.result(), result_of(getattr(metrics, name)(), y_true,
                                                          y_pred, weights), rtol=1e-9)
    metric.reset_state()
    fresh = getattr(metrics, name)()
    np.testing.assert_allclose(metric.result(), fresh.result())
    # __call__ updates, then gives the result, as Keras
    np.testing.assert_allclose(metric(y_true, y_pred), result_of(fresh, y_true, y_pred))


@pytest.mark.parametrize("name", CLASSES + ["Mean", "Sum"])
def test_get_config_round_trips(name):
    metric = getattr(metrics, name)(name="mine")
    config = metric.get_config()
    assert config["name"] == "mine" and config["dtype"] == "float32" and metric.dtype == "float32"
    again = type(metric).from_config(config)
    assert again.get_config() == config
    assert metrics.deserialize(metrics.serialize(metric)).get_config() == config


def test_configs_keep_their_arguments():
    assert metrics.Precision(thresholds=[0.2, 0.4], top_k=3, class_id=1, name="p").get_config() \
        == {"name": "p", "dtype": "float32", "thresholds": [0.2, 0.4], "top_k": 3, "class_id": 1}
    auc = metrics.AUC(num_thresholds=20, curve="pr", summation_method="Minoring", name="a",
                      thresholds=[0.3, 0.1])
    assert auc.get_config() == {"name": "a", "dtype": "float32", "num_thresholds": 4,
                                "curve": "PR", "summation_method": "minoring",
                                "multi_label": False, "num_labels": None, "label_weights": None,
                                "from_logits": False, "thresholds": [0.1, 0.3]}
    assert metrics.TopKCategoricalAccuracy(k=3, name="t").get_config() == {
        "name": "t", "dtype": "float32", "k": 3}
    assert metrics.BinaryAccuracy(threshold=0.2, name="b").get_config() == {
        "name": "b", "dtype": "float32", "threshold": 0.2}


def test_default_names_count_up_as_keras():
    first, second = metrics.AUC(), metrics.AUC()
    assert first.name.startswith("auc") and second.name != first.name
    assert metrics.Precision(name="p").name == "p"
    assert metrics.BinaryAccuracy().name == "binary_accuracy"
    assert metrics.RootMeanSquaredError().name == "root_mean_squared_error"


# ---------------------------------------------------------------- compile's metric strings

def test_get_chooses_accuracy_and_names_by_the_string():
    cce, scce, bce = (losses.get(n) for n in ("categorical_crossentropy",
                                              "sparse_categorical_crossentropy",
                                              "binary_crossentropy"))
    assert type(metrics.get("accuracy", cce, (None, 10))) is metrics.CategoricalAccuracy
    assert type(metrics.get("acc", scce, (None, 10))) is metrics.SparseCategoricalAccuracy
    assert type(metrics.get("accuracy", None, (None, 10), sparse_labels=True)) \
        is metrics.SparseCategoricalAccuracy
    assert type(metrics.get("accuracy", bce, (None, 1))) is metrics.BinaryAccuracy
    assert type(metrics.get("accuracy", bce)) is metrics.BinaryAccuracy   # before the shape
    assert type(metrics.get("accuracy", bce, (None, 4))) is metrics.CategoricalAccuracy
    metric = metrics.get("Accuracy", cce, (None, 3))
    assert metric.name == "Accuracy" and type(metric) is metrics.CategoricalAccuracy
    for name, cls in [("mse", metrics.MeanSquaredError), ("mae", metrics.MeanAbsoluteError),
                      ("AUC", metrics.AUC), ("auc", metrics.AUC), ("Precision", metrics.Precision),
                      ("recall", metrics.Recall), ("top_k_categorical_accuracy",
                                                   metrics.TopKCategoricalAccuracy),
                      ("root_mean_squared_error", metrics.RootMeanSquaredError),
                      ("FalseNegatives", metrics.FalseNegatives)]:
        metric = metrics.get(name)
        assert type(metric) is cls and metric.name == name and name in metrics.NAMES
    assert metrics.get("psnr").name == "psnr" and metrics.get(metrics.psnr).name == "psnr"


def test_get_takes_objects_classes_functions_and_configs():
    own = metrics.Recall(name="r")
    assert metrics.get(own) is own
    assert type(metrics.get(metrics.AUC)) is metrics.AUC
    def my_error(y_true, y_pred):
        return np.abs(np.asarray(y_true) - np.asarray(y_pred)).max(axis=-1)
    wrapped = metrics.get(my_error)
    assert isinstance(wrapped, metrics.MeanMetricWrapper) and wrapped.name == "my_error"
    assert wrapped([[0, 1], [2, 2]], [[0, 3], [2, 2]]) == 1.0
    made = metrics.get({"class_name": "Precision", "config": {"thresholds": 0.7}})
    assert type(made) is metrics.Precision and made.thresholds == [0.7]


def test_unknown_metric_names_list_what_cnnkit_has():
    with pytest.raises(ValueError, match="Unknown metric 'f1_score': it is a Keras metric cnnkit "
                                         "does not have; cnnkit has.*'AUC'.*'mse'"):
        metrics.get("f1_score")
    with pytest.raises(ValueError, match="Unknown metric 'acc2': it is unknown; cnnkit has"):
        metrics.get("acc2")
    with pytest.raises(ValueError, match="Unknown metric class"):
        metrics.deserialize({"class_name": "F1Score", "config": {}})
    with pytest.raises(TypeError, match="Metric"):
        metrics.get(int)
    with pytest.raises(TypeError, match="Unknown metric"):
        metrics.get(3)


def test_fit_and_evaluate_log_the_new_metrics():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5)).astype(np.float32)
    y = (x[:, :1] + 0.3 * rng.normal(size=(64, 1)) > 0).astype(np.float32)
    model = models.Sequential([layers.Input((5,)), layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy",
                  metrics=["accuracy", "AUC", metrics.Precision(name="prec"), "mae",
                           metrics.RootMeanSquaredError])
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert {"accuracy", "AUC", "prec", "mae", "root_mean_squared_error"} <= set(history.history)
    logs = model.evaluate(x, y, batch_size=20, verbose=0, return_dict=True)
    predicted = model.predict(x, verbose=0)
    assert logs["AUC"] == pytest.approx(metrics.AUC()(y, predicted), rel=1e-5)
    assert logs["prec"] == pytest.approx(metrics.Precision()(y, predicted), rel=1e-5)
    assert logs["accuracy"] == pytest.approx(metrics.BinaryAccuracy()(y, predicted), rel=1e-5)
    assert logs["mae"] == pytest.approx(metrics.MeanAbsoluteError()(y, predicted), rel=1e-5)


# ---------------------------------------------------------------- bad input

BAD = [
    ("shapes differ", lambda: metrics.BinaryAccuracy().update_state(np.ones((2, 3)), np.ones((2, 4))),
     ValueError, ["y_true", "y_pred", "(2, 3)", "(2, 4)"]),
    ("AUC shapes differ", lambda: metrics.AUC().update_state(np.ones((2, 3)), np.ones((3, 3))),
     ValueError, ["AUC", "y_true", "y_pred"]),
    ("regression shapes differ", lambda: metrics.mse(np.ones((2, 3)), np.ones((2, 3, 2))),
     ValueError, ["mean_squared_error", "same shape"]),
    ("sparse labels wrong shape", lambda: metrics.SparseCategoricalAccuracy().update_state(
        np.ones((3, 2)), np.ones((3, 4))), ValueError, ["y_true", "class index"]),
    ("sparse top k label out of range", lambda: metrics.sparse_top_k_categorical_accuracy(
        [5], [[0.1, 0.9]]), ValueError, ["y_true", "[0, 2)"]),
    ("weight negative", lambda: metrics.Precision().update_state([1, 0], [0.2, 0.7], [1, -1]),
     ValueError, ["sample_weight", "negative"]),
    ("weight nan", lambda: metrics.Mean().update_state([1, 0], [1, np.nan]),
     ValueError, ["sample_weight", "finite"]),
    ("weight wrong length", lambda: metrics.CategoricalAccuracy().update_state(
        np.eye(3), np.eye(3), [1, 1]), ValueError, ["sample_weight", "(3,)"]),
    ("weight per element", lambda: metrics.AUC().update_state(
        np.ones((3, 2)), np.ones((3, 2)), np.ones((3, 2))), ValueError, ["sample_weight"]),
    ("y not numeric", lambda: metrics.Recall().update_state(["a", "b"], [0.1, 0.2]),
     TypeError, ["y_true", "numeric"]),
    ("weight not numeric", lambda: metrics.Mean().update_state([1.0], ["x"]),
     TypeError, ["sample_weight"]),
    ("threshold above 1", lambda: metrics.Precision(thresholds=[0.5, 1.5]), ValueError,
     ["Precision", "thresholds", "[0, 1]"]),
    ("threshold negative", lambda: metrics.TruePositives(thresholds=-0.1), ValueError,
     ["TruePositives", "thresholds"]),
    ("thresholds empty", lambda: metrics.Recall(thresholds=[]), ValueError, ["thresholds"]),
    ("threshold a string", lambda: metrics.AUC(thresholds=["a"]), ValueError,
     ["AUC", "thresholds"]),
    ("binary threshold a string", lambda: metrics.BinaryAccuracy(threshold="x"), ValueError,
     ["threshold"]),
    ("k zero", lambda: metrics.TopKCategoricalAccuracy(k=0), ValueError, ["k", "positive"]),
    ("k float", lambda: metrics.SparseTopKCategoricalAccuracy(k=2.5), ValueError, ["k"]),
    ("k bool", lambda: metrics.top_k_categorical_accuracy(np.eye(2), np.eye(2), k=True),
     ValueError, ["k"]),
    ("top_k zero", lambda: metrics.Precision(top_k=0), ValueError, ["top_k"]),
    ("class_id negative", lambda: metrics.Recall(class_id=-1), ValueError, ["class_id"]),
    ("class_id too large", lambda: metrics.Precision(class_id=3).update_state(
        np.ones((2, 3)), np.ones((2, 3))), ValueError, ["class_id=3"]),
    ("num_thresholds one", lambda: metrics.AUC(num_thresholds=1), ValueError,
     ["num_thresholds", "> 1"]),
    ("num_thresholds float", lambda: metrics.AUC(num_thresholds=20.5), ValueError,
     ["num_thresholds"]),
    ("curve unknown", lambda: metrics.AUC(curve="XYZ"), ValueError, ["curve", "XYZ", "ROC"]),
    ("summation unknown", lambda: metrics.AUC(summation_method="trapezoid"), ValueError,
     ["summation_method", "interpolation"]),
    ("num_labels without multi_label", lambda: metrics.AUC(num_labels=3), ValueError,
     ["num_labels", "multi_label"]),
    ("multi_label rank 3", lambda: metrics.AUC(multi_label=True).update_state(
        np.ones((2, 2, 2)), np.ones((2, 2, 2))), ValueError, ["rank 2"]),
    ("multi_label labels change", lambda: metrics.AUC(multi_label=True, num_labels=3).update_state(
        np.ones((2, 2)), np.ones((2, 2))), ValueError, ["labels"]),
    ("label_weights wrong length", lambda: metrics.AUC(label_weights=[1, 2]).update_state(
        np.ones((2, 3)), np.ones((2, 3))), ValueError, ["label_weights"]),
    ("dtype integer", lambda: metrics.Mean(dtype="int32"), ValueError, ["dtype"]),
    ("name not a string", lambda: metrics.Recall(name=3), TypeError, ["name"]),
    ("psnr max_val", lambda: metrics.psnr(np.ones((1, 2)), np.ones((1, 2)), max_val=0),
     ValueError, ["max_val"]),
]


@pytest.mark.parametrize("what, call, error, words", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_a_clear_error(what, call, error, words):
    with pytest.raises(error) as caught:
        call()
    for word in words:
        assert word in str(caught.value), (what, str(caught.value))


def test_psnr_is_unchanged():
    x = np.zeros((2, 4, 4, 1))
    assert metrics.psnr(x, x + 0.1) == pytest.approx(20.0)
    assert metrics.psnr_per_image(x, np.stack([x[0], x[1] + 0.01])).tolist() == [
        math.inf, pytest.approx(40.0)]
    assert "psnr" in metrics.FUNCTIONS


def test_a_subclassed_metric_trains_and_reports():
    class CountAbove(metrics.Metric):  # Keras' subclassing pattern, with NumPy state
        def __init__(self, name="count_above", **kwargs):
            super().__init__(name=name, **kwargs)
            self.reset_state()

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.count += float(np.sum(np.asarray(y_pred) > 0.5))

        def reset_state(self):
            self.count = 0.0

        def result(self):
            return self.count

    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 4)).astype(np.float32)
    labels = rng.integers(0, 3, 30)
    model = models.Sequential([layers.Input((4,)), layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy",
                  metrics=["accuracy", CountAbove(), "sparse_top_k_categorical_accuracy"])
    logs = model.evaluate(x, labels, batch_size=8, verbose=0, return_dict=True)
    predicted = model.predict(x, verbose=0)
    assert logs["count_above"] == float(np.sum(predicted > 0.5))
    assert logs["accuracy"] == pytest.approx(np.mean(predicted.argmax(1) == labels))
    assert logs["sparse_top_k_categorical_accuracy"] == 1.0   # 3 classes, k=5
    assert CountAbove(dtype="float64").get_config() == {"name": "count_above", "dtype": "float64"}
