"""Batch-split inference (engine/split_inference.py): predict runs a slice of its batch per
thread when every layer treats each sample on its own, and gives the whole batch's outputs bit
for bit; a model that might mix samples, a small batch or one thread runs whole. A model an
inference plan runs (engine/inference_plan.py) takes the plan first: these tests turn plans off."""
import threading

import numpy as np
import pytest

import cnnkit
from cnnkit import _core, layers as L
from conftest import predict_without
from cnnkit.engine import inference_plan, split_inference
from cnnkit.utils import set_random_seed


@pytest.fixture(autouse=True)
def no_plan(monkeypatch):
    monkeypatch.setattr(inference_plan, "ENABLED", False)


def resnet_like(extra=None, training_dropout=False):
    """Conv-BN-ReLU, a residual block with a projection shortcut, pooling, Dense softmax:
    every kind of step a ResNet's inference pass runs (folds, a folded residual)."""
    set_random_seed(3)
    inputs = x = cnnkit.Input((12, 12, 3))
    x = L.Activation("relu")(L.BatchNormalization()(L.Conv2D(16, 3, padding="same")(x)))
    y = L.Activation("relu")(L.BatchNormalization()(L.Conv2D(24, 3, strides=2, padding="same")(x)))
    y = L.BatchNormalization()(L.Conv2D(24, 3, padding="same")(y))
    x = L.Activation("relu")(L.Add()([L.Conv2D(24, 1, strides=2)(x), y]))
    if extra is not None:
        x = extra(x)
    x = L.Dropout(0.5)(x, training=True) if training_dropout else L.Dropout(0.5)(x)
    x = L.GlobalAveragePooling2D()(x)
    model = cnnkit.Model(inputs, L.Dense(5, activation="softmax")(x))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    data = np.random.default_rng(0).standard_normal((48, 12, 12, 3)).astype(np.float32)
    model.fit(data, np.arange(48) % 5, batch_size=16, epochs=1, verbose=0)  # moving stats move
    return model, data


def whole(model, x):
    return predict_without(split_inference, model, x)


def slices_made(model):
    state = model._step_state(False)
    split = getattr(state, "split", None)
    return 0 if split is None or not split.allowed else len(split.states)


def test_a_split_predict_gives_the_whole_batchs_outputs_bit_for_bit(two_threads):
    model, x = resnet_like()
    expected = whole(model, x)
    assert slices_made(model) == 0
    for n in (48, 17, 16):  # uneven slices too
        np.testing.assert_array_equal(model.predict_on_batch(x[:n]), expected[:n])
    assert slices_made(model) == 2
    np.testing.assert_array_equal(model.predict(x, batch_size=24, verbose=0), expected)


def test_the_batch_runs_whole_on_one_thread_or_below_two_slices(two_threads):
    model, x = resnet_like()
    model.predict_on_batch(x)  # the first pass runs whole; later ones may split
    model.predict_on_batch(x[: 2 * split_inference.MIN_SLICE - 1])
    assert slices_made(model) == 0
    cnnkit.set_num_threads(1)
    model.predict_on_batch(x)
    assert slices_made(model) == 0
    cnnkit.set_num_threads(2)
    model.predict_on_batch(x)
    assert slices_made(model) == 2


class BatchCentering(L.Layer):
    """A user's layer that mixes samples: each minus the batch's mean."""

    def compute_output_shape(self, input_shape):
        return input_shape

    def forward(self, call, x, training=False):
        return x - x.mean(axis=0, keepdims=True)

    def backward(self, call, dy):
        return dy - dy.mean(axis=0, keepdims=True)


def test_a_model_with_a_layer_of_the_users_own_class_runs_whole(two_threads):
    model, x = resnet_like(extra=BatchCentering())
    assert not split_inference.per_sample(model._graph_for(False))
    expected = whole(model, x)
    np.testing.assert_array_equal(model.predict_on_batch(x), expected)
    np.testing.assert_array_equal(model.predict_on_batch(x), expected)
    assert slices_made(model) == 0


def test_a_layer_called_with_training_true_runs_the_batch_whole(two_threads):
    model, _ = resnet_like(training_dropout=True)
    assert not split_inference.per_sample(model._graph_for(False))


def test_a_nested_model_of_cnnkit_layers_splits_and_one_with_a_users_layer_does_not():
    inner, x = resnet_like()
    outer = cnnkit.Sequential([cnnkit.Input((12, 12, 3)), inner, L.Dense(2)])
    outer(x[:2])
    assert split_inference.per_sample(outer._graph_for(False))
    odd, _ = resnet_like(extra=BatchCentering())
    outer = cnnkit.Sequential([cnnkit.Input((12, 12, 3)), odd, L.Dense(2)])
    outer(x[:2])
    assert not split_inference.per_sample(outer._graph_for(False))


def test_an_error_in_a_slice_reaches_the_caller_and_the_next_predict_works(two_threads, monkeypatch):
    model, x = resnet_like()
    expected = whole(model, x)
    model.predict_on_batch(x)
    forward = L.Dense.forward

    def failing(self, call, inputs, training=False):
        if threading.current_thread().name.startswith("cnnkit-slice"):
            raise RuntimeError("slice failed")
        return forward(self, call, inputs, training)

    monkeypatch.setattr(L.Dense, "forward", failing)
    with pytest.raises(RuntimeError, match="slice failed"):
        model.predict_on_batch(x)
    monkeypatch.setattr(L.Dense, "forward", forward)
    np.testing.assert_array_equal(model.predict_on_batch(x), expected)


def test_set_local_num_threads_checks_its_argument():
    with pytest.raises(ValueError, match="number of threads"):
        _core.set_local_num_threads(-1)
    _core.set_local_num_threads(1)
    _core.set_local_num_threads(0)


def test_a_model_of_two_inputs_and_two_outputs_splits_each_alike(two_threads):
    set_random_seed(4)
    image, extra = cnnkit.Input((8, 8, 3)), cnnkit.Input((5,))
    x = L.GlobalAveragePooling2D()(L.Conv2D(6, 3, padding="same", activation="relu")(image))
    x = L.Concatenate()([x, extra])
    model = cnnkit.Model([image, extra], [L.Dense(4, activation="softmax")(x), L.Dense(1)(x)])
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal((33, 8, 8, 3)).astype(np.float32),
          rng.standard_normal((33, 5)).astype(np.float32)]
    expected = whole(model, xs)
    got = model.predict_on_batch(xs)
    assert slices_made(model) == 2
    for a, b in zip(got, expected):
        assert a.shape[0] == 33
        np.testing.assert_array_equal(a, b)
