"""ReLU fusion (engine/fusion.py): a plain ReLU after a BatchNormalization or an Add runs inside
it. With fusion on and off a ResNet-style model gives the same losses, weights and predictions;
the fused ReLU steps really are skipped; the pairs that must not fuse do not; a warm step still
allocates no array."""
import numpy as np
import pytest

import cnnkit
from cnnkit.engine import folding, fusion
from cnnkit.layers import (Activation, Add, BatchNormalization, Conv2D, Dense,
                           GlobalAveragePooling2D, ReLU)
from cnnkit.utils import set_random_seed
from test_step_allocations import STEP_BOUND, traced_growth


def resnet_like(seed=0):
    """conv-BN-ReLU (fuses), a residual Add-ReLU (fuses), a BN read by two layers (no fusion), a
    BatchNormalization shared by two call sites (fused at one, not at the other), a 1-input
    Add, and a ReLU that is a model output (its BN fuses, the ReLU's output is returned).
    Returns the model and the number of pairs that must fuse."""
    set_random_seed(seed)
    inputs = cnnkit.Input((8, 8, 3))
    x = Activation("relu")(BatchNormalization()(Conv2D(4, 3, padding="same")(inputs)))  # fuses
    y = Activation("relu")(BatchNormalization()(Conv2D(4, 3, padding="same")(x)))  # fuses
    y = BatchNormalization()(Conv2D(4, 3, padding="same")(y))
    x = ReLU()(Add()([x, y]))  # fuses
    two = BatchNormalization()(Conv2D(4, 1)(x))  # read by two layers: no fusion
    x = Add()([Activation("relu")(two), Conv2D(4, 1)(two)])
    shared = BatchNormalization()
    a = Activation("relu")(shared(Conv2D(4, 3, padding="same")(x)))  # fuses at this call site
    b = shared(Conv2D(4, 3, padding="same")(x))
    x = Activation("relu")(Add()([a, b, Activation("relu")(b)]))  # fuses; b has two readers
    out_map = Activation("relu", name="relu_out")(BatchNormalization()(Conv2D(2, 1)(x)))  # fuses
    x = Activation("relu")(Add()([GlobalAveragePooling2D()(x)]))  # a 1-input Add: fuses
    probs = Dense(3, activation="softmax")(x)
    model = cnnkit.Model(inputs, [probs, out_map])
    model.compile(optimizer="adam", loss=["sparse_categorical_crossentropy", "mse"],
                  metrics=[["accuracy"], []])
    return model, 7


def data(n=8, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8, 8, 3)).astype(np.float32)
    return x, [rng.integers(0, 3, n), rng.random((n, 8, 8, 2)).astype(np.float32)]


def predict(model, x):
    return model.predict(x, verbose=0)


def with_fusion(enabled, fn, *args):
    fusion.ENABLED = enabled
    try:
        return fn(*args)
    finally:
        fusion.ENABLED = True


def test_the_right_pairs_fuse():
    model, expected = resnet_like()
    graph = model._graph
    assert len(graph.fusions) == expected
    steps = graph.steps
    for i, k in graph.fusions.items():
        assert type(steps[i].layer) in (BatchNormalization, Add)
        assert type(steps[k].layer) in (Activation, ReLU)
    # the BN read by two layers, and the shared BN's second call, are not producers of a fusion
    producers = [steps[i] for i in graph.fusions]
    readers = {}
    for step in steps:
        for n in step.inputs:
            readers[n] = readers.get(n, 0) + 1
    assert all(readers[s.outputs[0]] == 1 for s in producers)


def test_training_and_predictions_match_with_and_without_fusion():
    fused, _ = resnet_like()
    plain, _ = resnet_like()
    plain.set_weights(fused.get_weights())
    x, ys = data()
    for step in range(4):
        lf = with_fusion(True, fused.train_on_batch, x, ys)
        lp = with_fusion(False, plain.train_on_batch, x, ys)
        np.testing.assert_allclose(lf, lp, rtol=1e-5, atol=1e-6, err_msg=f"step {step}")
    for wf, wp in zip(fused.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(wf, wp, rtol=1e-5, atol=1e-5)
    # inference (folding first, fusion where a fold declines) and a training-mode call
    for run in (predict, lambda model, x: model(x, training=True)):
        pf, pp = with_fusion(True, run, fused, x), with_fusion(False, run, plain, x)
        for a, b in zip(pf, pp):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
    # inference without folding: BatchNormalization's inference kernel with its fused ReLU
    folding.ENABLED = False
    try:
        pf = with_fusion(True, predict, fused, x)
        pp = with_fusion(False, predict, plain, x)
    finally:
        folding.ENABLED = True
    for a, b in zip(pf, pp):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert (pf[1] == 0).any() and (pf[1] >= 0).all()


def count_relu_forwards(monkeypatch):
    calls = []
    for cls in (Activation, ReLU):
        original = cls.forward

        def counted(self, call, x, training=False, _original=original):
            calls.append(self.name)
            return _original(self, call, x, training)

        monkeypatch.setattr(cls, "forward", counted)
    return calls


def test_fused_relu_steps_are_skipped(monkeypatch):
    model, expected = resnet_like()
    x, ys = data()
    calls = count_relu_forwards(monkeypatch)
    with_fusion(False, model.train_on_batch, x, ys)
    unfused = len(calls)
    calls.clear()
    model.train_on_batch(x, ys)
    assert unfused - len(calls) == expected, (unfused, calls)
    assert "relu_out" not in calls  # fused although its output is a model output


def test_a_warm_fused_training_step_allocates_no_array():
    model, _ = resnet_like()
    x, ys = data()
    for _ in range(2):
        model.train_on_batch(x, ys)
    rises = traced_growth(lambda: model.train_on_batch(x, ys))
    assert max(rises) < STEP_BOUND, rises


def test_add_with_a_fused_relu_masks_one_gradient_for_every_input():
    """Add's layer-level contract: y = max(sum, 0), every input gets dy masked where y <= 0,
    and dy itself is left as it was."""
    from cnnkit.layers.call_state import CallState
    layer = Add()
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((4, 5)).astype(np.float32) for _ in range(3)]
    layer.build([x.shape for x in xs])
    call = CallState(layer, reuse=True)
    call.fused_relu = True
    y = layer.forward(call, xs)
    np.testing.assert_array_equal(y, np.maximum(xs[0] + xs[1] + xs[2], 0))
    dy = rng.standard_normal((4, 5)).astype(np.float32)
    before = dy.copy()
    grads = layer.backward(call, dy)
    assert len(grads) == 3
    for g in grads:
        np.testing.assert_array_equal(g, np.where(y > 0, dy, 0))
    np.testing.assert_array_equal(dy, before)


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_layer_with_a_fused_relu(training):
    from cnnkit.layers.call_state import CallState
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 3, 3, 4)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    results = []
    for fused in (False, True):
        layer = BatchNormalization()
        layer.build(x.shape)
        call = CallState(layer, reuse=True)
        call.fused_relu = fused
        y = layer.forward(call, x, training).copy()
        if not fused:
            y = np.maximum(y, 0)
            dx = layer.backward(call, np.where(y > 0, dy, 0)).copy()
        else:
            dx = layer.backward(call, dy).copy()
        results.append((y, dx, [g.copy() for g in call.grads]))
    (y0, dx0, g0), (y1, dx1, g1) = results
    np.testing.assert_array_equal(y0, y1)
    np.testing.assert_array_equal(dx0, dx1)
    for a, b in zip(g0, g1):
        np.testing.assert_array_equal(a, b)
