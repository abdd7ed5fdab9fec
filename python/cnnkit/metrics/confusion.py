"""Confusion-matrix metrics, as keras.metrics: TruePositives, FalsePositives, TrueNegatives,
FalseNegatives, Precision, Recall and AUC.

Every element of y_pred is a prediction (flattened, as Keras), positive where it is above a
threshold; y_true is positive where it is not 0. Each element weighs its sample's weight.
Counting is vectorised for any number of thresholds: each prediction's rank among the sorted
thresholds (searchsorted) puts its weight into one bucket, and a reversed cumulative sum of the
buckets gives, per threshold, the weight of the predictions above it. 200 thresholds on 10 000
predictions take a few milliseconds.
"""
import enum

import numpy as np

from .._args import _is_int
from .base import Metric, numeric_array, sample_weights, squeeze_or_expand

__all__ = ["TruePositives", "FalsePositives", "TrueNegatives", "FalseNegatives", "Precision",
           "Recall", "AUC"]

NEG_INF = -1e10   # Keras' threshold with top_k: every kept prediction is above it
EPSILON = 1e-7    # Keras' backend.epsilon(): AUC's end thresholds lie just outside [0, 1]


def _thresholds(thresholds, default, who):
    """The thresholds as a list of floats, each in [0, 1] (Keras' parse_init_thresholds)."""
    if thresholds is None:
        return [default]
    values = list(thresholds) if isinstance(thresholds, (list, tuple, np.ndarray)) \
        else [thresholds]
    if not values:
        raise ValueError(f"{who}: thresholds must hold at least one value")
    for t in values:
        if (not isinstance(t, (int, float, np.number)) or isinstance(t, bool)
                or not 0 <= t <= 1):
            raise ValueError(f"{who}: thresholds must be numbers in [0, 1], got {thresholds!r}")
    return [float(t) for t in values]


def _evenly_distributed(thresholds):
    """Keras' test for its bucketed path (which clips predictions to [0, 1] first)."""
    n = len(thresholds)
    if n < 3:
        return False
    return bool(np.allclose(thresholds, np.arange(n, dtype=np.float32) / (n - 1), atol=EPSILON))


def _optional_index(value, who, what):
    if value is not None and (not _is_int(value) or value < 0):
        raise ValueError(f"{who}: {what} must be a non-negative integer or None, got {value!r}")
    return None if value is None else int(value)


def _keep_top_k(y_pred, k):
    """Keras' _filter_top_k: the k largest scores of the last axis kept (ties: the lower
    index), the others set to NEG_INF."""
    order = np.argsort(-y_pred, axis=-1, kind="stable")[..., :k]
    kept = np.full(y_pred.shape, NEG_INF, dtype=y_pred.dtype)
    np.put_along_axis(kept, order, np.take_along_axis(y_pred, order, axis=-1), axis=-1)
    return kept


def confusion_counts(y_true, y_pred, thresholds, sample_weight=None, *, who, clip=False,
                     top_k=None, class_id=None, multi_label=False, label_weights=None):
    """(tp, fp, tn, fn) for each threshold: (T,) arrays, or (T, labels) with multi_label.

    As Keras' update_confusion_matrix_variables: y_pred and thresholds compared in float32;
    y_true positive where not 0; top_k keeps the k largest scores per sample, class_id one
    column; clip (Keras' evenly spaced thresholds) clips y_pred to [0, 1]."""
    y_true = numeric_array(y_true, who, "y_true")
    y_pred = numeric_array(y_pred, who, "y_pred").astype(np.float32)
    if y_true.ndim and y_pred.ndim:
        y_pred, y_true = squeeze_or_expand(y_pred, y_true)
    if y_true.shape != y_pred.shape or y_pred.ndim == 0:
        raise ValueError(f"{who}: y_true and y_pred must have the same shape with a batch axis, "
                         f"got {np.shape(y_true)} and {np.shape(y_pred)}")
    n = len(y_pred)
    weights = sample_weights(sample_weight, n, who)
    if isinstance(weights, np.ndarray):  # one weight per sample, for each of its elements
        weights = weights.reshape((n,) + (1,) * (y_pred.ndim - 1))
    if top_k is not None:
        y_pred = _keep_top_k(y_pred, top_k)
    if class_id is not None:
        if y_pred.ndim < 2 or class_id >= y_pred.shape[-1]:
            raise ValueError(f"{who}: class_id={class_id} needs y_pred of shape (N, classes) "
                             f"with more than {class_id} classes, got {y_pred.shape}")
        y_true, y_pred = y_true[..., class_id, None], y_pred[..., class_id, None]
    if clip:
        y_pred = np.clip(y_pred, 0.0, 1.0)
    weights = np.broadcast_to(np.float64(1.0) if weights is None else weights, y_pred.shape)
    if label_weights is not None:
        if y_pred.ndim < 2 or len(label_weights) != y_pred.shape[-1]:
            raise ValueError(f"{who}: label_weights has {len(label_weights)} weights, y_pred "
                             f"of shape {y_pred.shape} has {y_pred.shape[-1]} labels")
        weights = weights * label_weights
    positive = y_true != 0
    if multi_label:
        if y_pred.ndim != 2:
            raise ValueError(f"{who}: y_pred must have rank 2 with multi_label=True, got shape "
                             f"{y_pred.shape}")
        labels = y_pred.shape[1]
    else:
        y_pred, positive, weights = y_pred.reshape(-1, 1), positive.reshape(-1, 1), \
            weights.reshape(-1, 1)
        labels = 1
    thresholds = np.asarray(thresholds, dtype=np.float32)
    order = np.argsort(thresholds, kind="stable")
    t = len(thresholds)
    # rank: how many thresholds lie strictly below each prediction (NaN is above none).
    rank = np.searchsorted(thresholds[order], y_pred, side="left")
    rank[np.isnan(y_pred)] = 0
    bucket = (rank + np.arange(labels) * (t + 1)).reshape(-1)
    true_w = np.where(positive, weights, 0.0).reshape(-1)
    false_w = np.where(positive, 0.0, weights).reshape(-1)

    def above(w):  # per (label, sorted threshold j): the weight of predictions ranked above j
        per_bucket = np.bincount(bucket, w, minlength=labels * (t + 1)).reshape(labels, t + 1)
        tail = np.cumsum(per_bucket[:, ::-1], axis=1)[:, ::-1]   # tail[:, j] = sum of j..t
        counts = np.empty((labels, t))
        counts[:, order] = tail[:, 1:]
        return counts.T

    tp, fp = above(true_w), above(false_w)
    total_true = true_w.reshape(-1, labels).sum(axis=0)
    total_false = false_w.reshape(-1, labels).sum(axis=0)
    tn, fn = total_false - fp, total_true - tp
    if not multi_label:
        tp, fp, tn, fn = tp[:, 0], fp[:, 0], tn[:, 0], fn[:, 0]
    return tp, fp, tn, fn


def _divide_no_nan(a, b):
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b != 0)


def _one_or_all(values):
    """Keras' result: a float for one threshold, an array for several."""
    return float(values[0]) if len(values) == 1 else values.copy()


class _ConfusionMetric(Metric):
    """The counts of some cells of the confusion matrix, per threshold."""
    _cells = ()

    def __init__(self, thresholds=None, name=None, dtype=None, *, default=0.5):
        super().__init__(name=name, dtype=dtype)
        self.init_thresholds = thresholds
        self.thresholds = _thresholds(thresholds, default, type(self).__name__)
        self._clip = _evenly_distributed(self.thresholds)
        self.reset_state()

    def _update(self, y_true, y_pred, sample_weight, **options):
        counts = dict(zip(("tp", "fp", "tn", "fn"), confusion_counts(
            y_true, y_pred, self.thresholds, sample_weight, who=type(self).__name__,
            clip=self._clip, **options)))
        for cell in self._cells:
            setattr(self, _CELL_NAMES[cell], getattr(self, _CELL_NAMES[cell]) + counts[cell])

    def reset_state(self):
        for cell in self._cells:
            setattr(self, _CELL_NAMES[cell], np.zeros(len(self.thresholds)))


_CELL_NAMES = {"tp": "true_positives", "fp": "false_positives", "tn": "true_negatives",
               "fn": "false_negatives"}


class _ConfusionCount(_ConfusionMetric):
    def __init__(self, thresholds=None, name=None, dtype=None):
        super().__init__(thresholds, name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        self._update(y_true, y_pred, sample_weight)

    @property
    def accumulator(self):
        return getattr(self, _CELL_NAMES[self._cells[0]])

    def result(self):
        return _one_or_all(self.accumulator)

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds}


class TruePositives(_ConfusionCount):
    """The weighted count of predictions above the threshold(s) whose label is positive."""
    _cells = ("tp",)


class FalsePositives(_ConfusionCount):
    """The weighted count of predictions above the threshold(s) whose label is negative."""
    _cells = ("fp",)


class TrueNegatives(_ConfusionCount):
    """The weighted count of predictions at or below the threshold(s) whose label is negative."""
    _cells = ("tn",)


class FalseNegatives(_ConfusionCount):
    """The weighted count of predictions at or below the threshold(s) whose label is positive."""
    _cells = ("fn",)


class _PrecisionRecall(_ConfusionMetric):
    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        who = type(self).__name__
        if top_k is not None and (not _is_int(top_k) or top_k < 1):
            raise ValueError(f"{who}: top_k must be a positive integer or None, got {top_k!r}")
        self.top_k = None if top_k is None else int(top_k)
        self.class_id = _optional_index(class_id, who, "class_id")
        super().__init__(thresholds, name=name, dtype=dtype,
                         default=0.5 if top_k is None else NEG_INF)

    def update_state(self, y_true, y_pred, sample_weight=None):
        self._update(y_true, y_pred, sample_weight, top_k=self.top_k, class_id=self.class_id)

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds, "top_k": self.top_k,
                "class_id": self.class_id}


class Precision(_PrecisionRecall):
    """tp / (tp + fp) per threshold (0 where nothing was predicted positive)."""
    _cells = ("tp", "fp")

    def result(self):
        return _one_or_all(_divide_no_nan(self.true_positives,
                                          self.true_positives + self.false_positives))


class Recall(_PrecisionRecall):
    """tp / (tp + fn) per threshold (0 where no label was positive)."""
    _cells = ("tp", "fn")

    def result(self):
        return _one_or_all(_divide_no_nan(self.true_positives,
                                          self.true_positives + self.false_negatives))


class _Choice(enum.Enum):
    @classmethod
    def parse(cls, value, who, what):
        if isinstance(value, cls):
            return value
        for member in cls:
            if value in member.spellings:
                return member
        raise ValueError(f'{who}: invalid {what} "{value}"; expected one of '
                         f"{[m.value for m in cls]}")

    @property
    def spellings(self):
        return (self.value, self.value.lower(), self.value.capitalize())


class AUCCurve(_Choice):
    ROC = "ROC"
    PR = "PR"
    PRGAIN = "PRGAIN"


class AUCSummationMethod(_Choice):
    INTERPOLATION = "interpolation"
    MAJORING = "majoring"
    MINORING = "minoring"


class AUC(Metric):
    """The area under the ROC or precision-recall curve, from the confusion counts at
    num_thresholds thresholds evenly spaced over [0, 1] (or the thresholds given), as
    keras.metrics.AUC (a Riemann sum; interpolated for PR as Davis & Goadrich)."""

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation",
                 name=None, dtype=None, thresholds=None, multi_label=False, num_labels=None,
                 label_weights=None, from_logits=False):
        who = "AUC"
        self._init_from_thresholds = thresholds is not None
        if thresholds is not None:
            inner = sorted(_thresholds(thresholds, None, who))
            self.num_thresholds = len(inner) + 2
            self._evenly = _evenly_distributed(np.array([0.0] + inner + [1.0]))
        else:
            if not _is_int(num_thresholds) or num_thresholds <= 1:
                raise ValueError(f"{who}: num_thresholds must be an integer > 1, got "
                                 f"{num_thresholds!r}")
            self.num_thresholds = int(num_thresholds)
            inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            self._evenly = True
        self._thresholds = np.array([0.0 - EPSILON] + inner + [1.0 + EPSILON])
        self.curve = AUCCurve.parse(curve, who, "curve")
        self.summation_method = AUCSummationMethod.parse(summation_method, who,
                                                         "summation_method")
        super().__init__(name=name, dtype=dtype)
        self.multi_label = bool(multi_label)
        if num_labels is not None and (not _is_int(num_labels) or num_labels < 1):
            raise ValueError(f"{who}: num_labels must be a positive integer or None, got "
                             f"{num_labels!r}")
        if num_labels and not self.multi_label:
            raise ValueError(f"{who}: num_labels is needed only when multi_label is True")
        self.num_labels = num_labels
        if label_weights is not None:
            label_weights = numeric_array(label_weights, who, "label_weights").astype(np.float64)
            if label_weights.ndim != 1 or np.any(label_weights < 0) \
                    or not np.all(np.isfinite(label_weights)):
                raise ValueError(f"{who}: label_weights must be a 1-D array of finite, "
                                 f"non-negative weights, got {label_weights!r}")
        self.label_weights = label_weights
        self._from_logits = bool(from_logits)
        self._labels = num_labels if self.multi_label else None
        self.reset_state()

    @property
    def thresholds(self):
        return list(self._thresholds)

    def reset_state(self):
        shape = (self.num_thresholds,) if not self.multi_label else \
            (self.num_thresholds, self._labels or 0)
        self.true_positives = np.zeros(shape)
        self.false_positives = np.zeros(shape)
        self.true_negatives = np.zeros(shape)
        self.false_negatives = np.zeros(shape)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = numeric_array(y_pred, "AUC", "y_pred")
        if self._from_logits:
            y_pred = 1.0 / (1.0 + np.exp(-y_pred.astype(np.float64)))
        if self.multi_label:
            if y_pred.ndim != 2:
                raise ValueError(f"AUC: y_pred must have rank 2 with multi_label=True, got "
                                 f"shape {y_pred.shape}")
            if self._labels is None:
                self._labels = y_pred.shape[1]
                self.reset_state()
            elif y_pred.shape[1] != self._labels:
                raise ValueError(f"AUC: y_pred has {y_pred.shape[1]} labels, the metric was "
                                 f"built for {self._labels}")
        label_weights = None if self.multi_label else self.label_weights
        counts = confusion_counts(y_true, y_pred, self._thresholds, sample_weight, who="AUC",
                                  clip=self._evenly, multi_label=self.multi_label,
                                  label_weights=label_weights)
        self.true_positives = self.true_positives + counts[0]
        self.false_positives = self.false_positives + counts[1]
        self.true_negatives = self.true_negatives + counts[2]
        self.false_negatives = self.false_negatives + counts[3]

    def _average(self, by_label):
        if not self.multi_label:
            return float(by_label)
        if by_label.size == 0:
            return 0.0
        if self.label_weights is None:
            return float(np.mean(by_label))
        return float(_divide_no_nan(np.sum(by_label * self.label_weights),
                                    np.sum(self.label_weights)))

    def _interpolated_pr_auc(self):
        """Davis & Goadrich's interpolation of precision between thresholds (Keras')."""
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = _divide_no_nan(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        both = (p[:-1] > 0) & (p[1:] > 0)
        ratio = np.where(both, _divide_no_nan(p[:-1], np.maximum(p[1:], 0)), 1.0)
        with np.errstate(divide="ignore"):
            log_ratio = np.log(np.where(ratio > 0, ratio, 1.0))
        increments = _divide_no_nan(slope * (dtp + intercept * log_ratio),
                                    np.maximum(tp[1:] + fn[1:], 0))
        return self._average(np.sum(increments, axis=0))

    def result(self):
        if self.curve is AUCCurve.PR and \
                self.summation_method is AUCSummationMethod.INTERPOLATION:
            return self._interpolated_pr_auc()
        tp, fp, tn, fn = (self.true_positives, self.false_positives, self.true_negatives,
                          self.false_negatives)
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve is AUCCurve.ROC:
            x, y = _divide_no_nan(fp, fp + tn), recall
        elif self.curve is AUCCurve.PR:
            x, y = recall, _divide_no_nan(tp, tp + fp)
        else:  # PRGAIN
            scale = _divide_no_nan(tp + fn, tn + fp)
            recall_gain = np.where(tp == 0, 0.0, 1.0 - scale * _divide_no_nan(fn, tp))
            precision_gain = np.where(tp == 0, 1.0, 1.0 - scale * _divide_no_nan(fp, tp))
            x, y = np.maximum(recall_gain, 0.0), precision_gain
        if self.summation_method is AUCSummationMethod.INTERPOLATION:
            heights = (y[:-1] + y[1:]) / 2.0
        elif self.summation_method is AUCSummationMethod.MINORING:
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return self._average(np.sum((x[:-1] - x[1:]) * heights, axis=0))

    def get_config(self):
        config = {**super().get_config(), "num_thresholds": self.num_thresholds,
                  "curve": self.curve.value, "summation_method": self.summation_method.value,
                  "multi_label": self.multi_label, "num_labels": self.num_labels,
                  "label_weights": None if self.label_weights is None
                  else self.label_weights.tolist(),
                  "from_logits": self._from_logits}
        if self._init_from_thresholds:
            config["thresholds"] = self.thresholds[1:-1]
        return config
