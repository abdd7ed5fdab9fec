"""The weighted loss kernels (cpp/loss_weighted.cpp through cnnkit.ops): C++ against the NumPy
reference (cnnkit.reference), the reference's gradients against float64 finite differences,
the reductions and weights by hand, and the bindings' checks."""
import numpy as np
import pytest

import cnnkit
from cnnkit import _core, ops, reference as R

KINDS = list(ops.loss.ELEMENTWISE_KINDS)
REDUCTIONS = ["sum", "sum_over_batch_size", "mean_with_sample_weight", "none"]


@pytest.fixture(params=[1, 2], ids=lambda t: f"{t}thr")
def threads(request):
    old = cnnkit.get_num_threads()
    cnnkit.set_num_threads(request.param)
    yield request.param
    cnnkit.set_num_threads(old)


def elementwise_data(kind, shape, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "binary_crossentropy_from_logits":
        pred = rng.normal(0, 3, shape)
    else:
        pred = rng.uniform(0.05, 0.95, shape)
    target = rng.uniform(0.0, 1.0, shape)
    if kind.startswith("binary"):
        target = np.round(target)
    return target.astype(np.float32), pred.astype(np.float32)


def param_of(kind):
    return 0.4 if kind == "huber" else 1e-7


def categorical_data(shape, sparse, seed=0):
    rng = np.random.default_rng(seed)
    probs = rng.uniform(0.05, 1.0, shape).astype(np.float32)
    labels = rng.integers(0, shape[-1], shape[:-1])
    return (labels if sparse else np.eye(shape[-1], dtype=np.float32)[labels]), probs


@pytest.mark.parametrize("shape", [(7, 5), (3, 4, 4, 6), (2000, 20)], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", KINDS)
def test_elementwise_loss_matches_reference(kind, reduction, shape, threads):
    target, pred = elementwise_data(kind, shape)
    w = np.random.default_rng(1).uniform(0, 2, shape[0]).astype(np.float32)
    kwargs = dict(param=param_of(kind), label_smoothing=0.1 if kind.startswith("binary") else 0,
                  sample_weight=w, reduction=reduction)
    loss, grad, values = ops.elementwise_loss(target, pred, kind, **kwargs)
    ref_loss, ref_grad, ref_values = R.elementwise_loss(target.astype(np.float64),
                                                        pred.astype(np.float64), kind, **kwargs)
    assert loss == pytest.approx(ref_loss, rel=1e-5, abs=1e-7)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-4, atol=1e-9 + 1e-5 * np.abs(ref_grad).max())
    assert (values is None) == (reduction != "none")
    if values is not None:
        assert values.shape == shape[:-1]
        np.testing.assert_allclose(values, ref_values, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("shape", [(7, 5), (3, 4, 4, 6), (2000, 20)], ids=str)
@pytest.mark.parametrize("variant", ["probs", "logits", "focal", "focal_logits"])
@pytest.mark.parametrize("sparse", [False, True], ids=["onehot", "sparse"])
def test_categorical_loss_matches_reference(variant, sparse, shape, threads):
    y, pred = categorical_data(shape, sparse)
    if sparse:
        y = np.where(np.arange(y.size).reshape(y.shape) % 5 == 0, -1, y)  # some ignored
    w = np.random.default_rng(2).uniform(0, 2, shape[0]).astype(np.float32)
    kwargs = dict(from_logits="logits" in variant, focal="focal" in variant, alpha=0.4, gamma=1.5,
                  label_smoothing=0.0 if sparse else 0.15, ignore_class=-1 if sparse else None,
                  sample_weight=w)
    for reduction in REDUCTIONS:
        loss, grad, values = ops.categorical_loss(y, pred, reduction=reduction, **kwargs)
        ref = R.categorical_loss(y, pred.astype(np.float64), reduction=reduction, **kwargs)
        assert loss == pytest.approx(ref[0], rel=1e-5, abs=1e-7)
        np.testing.assert_allclose(grad, ref[1], rtol=1e-4,
                                   atol=1e-9 + 1e-5 * np.abs(ref[1]).max())
        if reduction == "none":
            np.testing.assert_allclose(values, ref[2], rtol=1e-5, atol=1e-7)


def numeric_grad(f, x, h=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        up = f()
        x[i] = old - h
        down = f()
        x[i] = old
        g[i] = (up - down) / (2 * h)
    return g


@pytest.mark.parametrize("reduction", ["sum", "sum_over_batch_size", "mean_with_sample_weight"])
@pytest.mark.parametrize("kind", KINDS)
def test_elementwise_reference_gradient_matches_finite_differences(kind, reduction):
    target, pred = elementwise_data(kind, (4, 3, 5), seed=3)
    target, pred = target.astype(np.float64), pred.astype(np.float64)
    if kind in ("mean_absolute_error", "huber"):  # keep away from the kinks
        pred = target + np.where(np.abs(pred - target) < 0.05, 0.1, pred - target)
    w = np.array([0.5, 2.0, 0.0, 1.5])
    kwargs = dict(param=param_of(kind), label_smoothing=0.2 if kind.startswith("binary") else 0,
                  sample_weight=w, reduction=reduction)
    _, grad, _ = R.elementwise_loss(target, pred, kind, **kwargs)
    num = numeric_grad(lambda: R.elementwise_loss(target, pred, kind, **kwargs)[0], pred)
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("variant", ["probs", "logits", "focal", "focal_logits"])
@pytest.mark.parametrize("sparse", [False, True], ids=["onehot", "sparse"])
def test_categorical_reference_gradient_matches_finite_differences(variant, sparse):
    y, pred = categorical_data((5, 2, 4), sparse, seed=4)
    pred = pred.astype(np.float64)
    if sparse:
        y[0, 0] = 3
        y[1, 1] = 7  # ignored
    w = np.array([1.0, 0.5, 2.0, 0.0, 1.0])
    kwargs = dict(from_logits="logits" in variant, focal="focal" in variant, alpha=0.3,
                  gamma=2.5, label_smoothing=0.0 if sparse else 0.2,
                  ignore_class=7 if sparse else None, sample_weight=w)
    _, grad, _ = R.categorical_loss(y, pred, **kwargs)
    num = numeric_grad(lambda: R.categorical_loss(y, pred, **kwargs)[0], pred)
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-8)


def test_reductions_and_weights_by_hand():
    target = np.zeros((4, 2), np.float32)
    pred = np.array([[1, 1], [2, 2], [3, 3], [0, 2]], np.float32)  # squared errors 1, 4, 9, 2
    w = np.array([1, 0.5, 0, 2], np.float32)
    weighted = np.array([1, 2, 0, 4.0])
    by = {r: ops.elementwise_loss(target, pred, "mean_squared_error", sample_weight=w,
                                  reduction=r) for r in REDUCTIONS}
    assert by["sum"][0] == pytest.approx(7)
    assert by["sum_over_batch_size"][0] == pytest.approx(7 / 4)  # the zero weight still counts
    assert by["mean_with_sample_weight"][0] == pytest.approx(7 / 3.5)
    np.testing.assert_allclose(by["none"][2], weighted)
    # the gradient of sum_over_batch_size: w * 2 e / K / N
    np.testing.assert_allclose(by["sum_over_batch_size"][1], w[:, None] * 2 * pred / 2 / 4)
    # image-shaped outputs: one weight per sample covers its rows, the count is every row
    img = np.ones((2, 3, 3, 1), np.float32)
    loss, _, _ = ops.elementwise_loss(np.zeros_like(img), img, "mean_squared_error",
                                      sample_weight=np.array([1.0, 3.0], np.float32))
    assert loss == pytest.approx((9 * 1 + 9 * 3) / 18)


def test_ignored_labels_leave_the_count_and_zero_weights_drop_infinite_values():
    logits = np.zeros((4, 3), np.float32)
    labels = np.array([0, 9, 9, 2])
    loss, grad, _ = ops.categorical_loss(labels, logits, from_logits=True, ignore_class=9)
    assert loss == pytest.approx(np.log(3))  # the mean over the two counted rows
    assert not grad[1:3].any()
    loss, _, _ = ops.categorical_loss(np.array([9, 9]), logits[:2], from_logits=True,
                                      ignore_class=9)
    assert loss == 0  # nothing counted: Keras' divide_no_nan
    # with clipping off, a probability of 0 for a target of 1 is an infinite value; a zero
    # weight drops it (0 * inf would be NaN)
    p = np.array([[0.0, 1.0], [0.5, 0.5]], np.float32)
    y = np.array([[1, 0], [1, 0]], np.float32)
    loss, _, _ = ops.elementwise_loss(y, p, "binary_crossentropy", param=0.0,
                                      sample_weight=np.array([0, 1], np.float32))
    assert loss == pytest.approx(np.log(2) / 2)
    loss, _, _ = ops.elementwise_loss(y, p, "binary_crossentropy", param=0.0)
    assert loss == np.inf


def test_label_smoothing_gradient_is_p_minus_smoothed_y():
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(6, 4)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 6)]
    w = rng.uniform(0, 1, 6).astype(np.float32)
    _, grad, _ = ops.categorical_loss(y, logits, from_logits=True, label_smoothing=0.2,
                                      sample_weight=w)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(grad, w[:, None] * (p - (y * 0.8 + 0.05)) / 6, atol=1e-7)


def test_loss_is_independent_of_the_thread_count():
    target, pred = elementwise_data("binary_crossentropy", (3000, 16))
    old = cnnkit.get_num_threads()
    try:
        got = []
        for t in (1, 2):
            cnnkit.set_num_threads(t)
            got.append(ops.elementwise_loss(target, pred, "binary_crossentropy", param=1e-7))
    finally:
        cnnkit.set_num_threads(old)
    assert got[0][0] == got[1][0]
    np.testing.assert_array_equal(got[0][1], got[1][1])


def f32(*shape):
    return np.zeros(shape, np.float32)


@pytest.mark.parametrize("call, words", [
    (lambda: _core.elementwise_loss(f32(2, 3), f32(2, 4), 0, 0.0, 0.0, None, 1, True), "y_true"),
    (lambda: _core.elementwise_loss(f32(2, 3), f32(2, 3), 9, 0.0, 0.0, None, 1, True), "kind"),
    (lambda: _core.elementwise_loss(f32(2, 3), f32(2, 3), 0, 0.0, 0.0, None, 7, True), "reduction"),
    (lambda: _core.elementwise_loss(f32(2, 3), f32(2, 3), 0, 0.0, 0.0, f32(3), 1, True),
     "sample_weight"),
    (lambda: _core.elementwise_loss(f32(2, 3), f32(2, 3), 2, -1.0, 0.0, None, 1, True), "parameter"),
    (lambda: _core.elementwise_loss(f32(2, 3), f32(2, 3), 3, 1e-7, 2.0, None, 1, True),
     "label_smoothing"),
    (lambda: _core.elementwise_loss(f32(2, 3), f32(2, 3), 0, 0.0, 0.0, None, 1, True,
                                    out=f32(3, 2)), "out"),
    (lambda: _core.categorical_loss(f32(2, 3), None, np.array([0, 3]), False, False, 1.0, 0.0,
                                    0.0, 1e-7, None, None, 1, True), "label 3"),
    (lambda: _core.categorical_loss(f32(2, 3), f32(2, 3), np.array([0, 1]), False, False, 1.0,
                                    0.0, 0.0, 1e-7, None, None, 1, True), "exactly one"),
    (lambda: _core.categorical_loss(f32(2, 3), f32(2, 3), None, False, False, 1.0, 0.0, 0.0,
                                    1e-7, 4, None, 1, True), "ignore_class"),
    (lambda: _core.categorical_loss(f32(2, 3), f32(2, 3), None, False, True, 1.0, -1.0, 0.0,
                                    1e-7, None, None, 1, True), "gamma"),
    (lambda: _core.categorical_loss(f32(0, 3), f32(0, 3), None, False, False, 1.0, 0.0, 0.0,
                                    1e-7, None, None, 1, True), "empty"),
])
def test_the_bindings_check_their_arguments(call, words):
    with pytest.raises(ValueError, match=words):
        call()


def test_out_is_written_in_place():
    target, pred = elementwise_data("huber", (4, 3))
    out = np.empty_like(pred)
    _, grad, _ = _core.elementwise_loss(target, pred, 2, 0.5, 0.0, None, 1, True, out=out)
    assert grad is out
    _, grad, _ = _core.elementwise_loss(target, pred, 2, 0.5, 0.0, None, 1, False)
    assert grad is None
