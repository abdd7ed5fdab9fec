"""Inference plans (engine/inference_plan.py, cpp/inference_plan.h): predict runs a model's whole
inference pass as one C++ call, a few images at a time, with the layer-by-layer pass's outputs;
a model with a layer no plan op runs layer by layer; the plan's C++ side refuses bad ops and
arguments with a ValueError."""
import numpy as np
import pytest

import cnnkit
from cnnkit import _core, layers as L
from conftest import predict_without
from cnnkit.engine import inference_plan
from cnnkit.utils import set_random_seed


def resnet_like(channels=16, size=12):
    """Conv-BN-ReLU, an identity block and a projection block (folded residuals), pooling,
    Dense softmax, after a fit that moves the moving statistics."""
    set_random_seed(5)
    inputs = x = cnnkit.Input((size, size, 3))
    x = L.Activation("relu")(L.BatchNormalization()(L.Conv2D(channels, 3, padding="same")(x)))
    y = L.Activation("relu")(L.BatchNormalization()(L.Conv2D(channels, 3, padding="same")(x)))
    y = L.BatchNormalization()(L.Conv2D(channels, 3, padding="same")(y))
    x = L.Activation("relu")(L.Add()([x, y]))
    y = L.Activation("relu")(L.BatchNormalization()(
        L.Conv2D(2 * channels, 3, strides=2, padding="same")(x)))
    y = L.BatchNormalization()(L.Conv2D(2 * channels, 3, padding="same")(y))
    x = L.Activation("relu")(L.Add()([L.Conv2D(2 * channels, 1, strides=2)(x), y]))
    x = L.GlobalAveragePooling2D()(x)
    model = cnnkit.Model(inputs, L.Dense(5, activation="softmax")(x))
    return _fitted(model, (size, size, 3))


def classic_cnn():
    """The seed CNN's kinds of layers: Conv2D ReLU, max pooling, dropout, flatten, dense."""
    set_random_seed(6)
    model = cnnkit.Sequential([
        cnnkit.Input((16, 16, 3)),
        L.Conv2D(8, 3, activation="relu"), L.Conv2D(16, 3, activation="relu"),
        L.MaxPooling2D(), L.Dropout(0.25), L.Flatten(),
        L.Dense(12, activation="relu"), L.Dense(4), L.Activation("softmax")])
    return _fitted(model, (16, 16, 3))


def _fitted(model, shape):
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    data = np.random.default_rng(0).standard_normal((40,) + shape).astype(np.float32)
    model.fit(data, np.arange(40) % 4, batch_size=20, epochs=1, verbose=0)
    return model, data


def layer_by_layer(model, x):
    return predict_without(inference_plan, model, x)


def plan_of(model):
    return getattr(model._step_state(False), "inference_plan", None)


@pytest.fixture(params=[4, 2])
def winograd_tile(request):
    """Every 3x3 stride-1 convolution on one Winograd tile both ways: the plan takes F(4x4) on
    16 channels in cache where the layer-by-layer pass takes the direct kernel, so forcing a
    tile makes the two passes run the same kernels. F(4x4) runs these shapes on the unpacked
    driver, F(2x2) on the packed one: both take the plan's prepared kernels."""
    _core.set_winograd_tile(request.param)
    yield request.param
    _core.set_winograd_tile(0)


@pytest.mark.parametrize("threads", ["one_thread", "two_threads"])
def test_a_plan_gives_the_layer_by_layer_outputs_bit_for_bit(threads, request, winograd_tile):
    request.getfixturevalue(threads)
    model, x = resnet_like()
    expected = layer_by_layer(model, x)
    model.predict_on_batch(x[:4])  # the first pass runs layer by layer and builds the plan
    assert isinstance(plan_of(model), inference_plan.Plan)
    for n in (40, 17, 3, 1):  # passes of uneven size; fewer images than threads
        np.testing.assert_array_equal(model.predict_on_batch(x[:n]), expected[:n])
    np.testing.assert_array_equal(model.predict(x, batch_size=16, verbose=0), expected)


def test_the_plans_own_kernel_choice_stays_within_float_rounding(two_threads):
    model, x = resnet_like()
    expected = layer_by_layer(model, x)
    model.predict_on_batch(x)
    plan = plan_of(model)
    # 16 channels in and out at 12x12: F(4x4) in the plan, the direct kernel layer by layer.
    assert [plan.core.winograd_tile(i) for i in (1, 2)] == [4, 4]
    np.testing.assert_allclose(model.predict_on_batch(x), expected, rtol=1e-5, atol=1e-6)


def test_a_sequential_cnn_with_pooling_dropout_and_flatten_runs_in_a_plan(two_threads):
    model, x = classic_cnn()
    expected = layer_by_layer(model, x)
    model.predict_on_batch(x)
    assert isinstance(plan_of(model), inference_plan.Plan)
    np.testing.assert_allclose(model.predict_on_batch(x), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("multiplier", [1, 2])
def test_mobilenet_blocks_run_in_a_plan_bit_for_bit(multiplier, two_threads):
    """DepthwiseConv2D with its BatchNormalization and ReLU folded, strided too, then 1x1."""
    set_random_seed(9)
    inputs = x = cnnkit.Input((12, 12, 3))
    x = L.Activation("relu")(L.BatchNormalization()(L.Conv2D(8, 3, padding="same", use_bias=False)(x)))
    for stride in (1, 2):
        x = L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                              depth_multiplier=multiplier)(x)
        x = L.Activation("relu")(L.BatchNormalization()(x))
        x = L.Activation("relu")(L.BatchNormalization()(L.Conv2D(16, 1, use_bias=False)(x)))
    x = L.DepthwiseConv2D(3, activation="relu")(x)  # unfolded, its own ReLU
    model, data = _fitted(cnnkit.Model(inputs, L.Dense(4, activation="softmax")(
        L.GlobalAveragePooling2D()(x))), (12, 12, 3))
    expected = layer_by_layer(model, data)
    model.predict_on_batch(data)
    assert isinstance(plan_of(model), inference_plan.Plan)
    np.testing.assert_array_equal(model.predict_on_batch(data), expected)


def test_the_plan_reads_the_weights_of_each_call(one_thread):
    model, x = resnet_like()
    model.predict_on_batch(x)
    before = model.predict_on_batch(x)
    weights = model.get_weights()
    rng = np.random.default_rng(1)
    model.set_weights([w + rng.standard_normal(w.shape).astype(np.float32) * 0.1 for w in weights])
    after = model.predict_on_batch(x)
    assert not np.allclose(after, before)
    np.testing.assert_allclose(after, layer_by_layer(model, x), rtol=1e-5, atol=1e-6)
    model.fit(x, np.arange(40) % 4, batch_size=20, epochs=1, verbose=0)  # the moving statistics
    np.testing.assert_allclose(model.predict_on_batch(x), layer_by_layer(model, x), rtol=1e-5,
                               atol=1e-6)


def test_a_dense_with_its_batch_normalization_folded_runs_in_a_plan(one_thread):
    set_random_seed(7)
    inputs = cnnkit.Input((10,))
    x = L.Activation("relu")(L.BatchNormalization()(L.Dense(8)(inputs)))
    model, data = _fitted(cnnkit.Model(inputs, L.Dense(4, activation="softmax")(x)), (10,))
    expected = layer_by_layer(model, data)
    model.predict_on_batch(data)
    assert isinstance(plan_of(model), inference_plan.Plan)
    np.testing.assert_allclose(model.predict_on_batch(data), expected, rtol=1e-6, atol=1e-7)


class Doubling(L.Layer):
    def compute_output_shape(self, input_shape):
        return input_shape

    def forward(self, call, x, training=False):
        return x * 2

    def backward(self, call, dy):
        return dy * 2


@pytest.mark.parametrize("odd_one", [
    lambda x: Doubling()(x),  # a user's layer
    lambda x: L.Activation("tanh")(x),  # an activation without a plan op
    lambda x: L.Dropout(0.5)(x, training=True),  # a call in training mode
    lambda x: L.BatchNormalization()(L.Add()([x, x])),  # a BatchNormalization not folded
])
def test_a_model_with_a_layer_no_plan_runs_goes_layer_by_layer(odd_one, one_thread):
    set_random_seed(8)
    inputs = cnnkit.Input((8, 8, 3))
    x = odd_one(L.Conv2D(8, 3, padding="same")(inputs))
    model, data = _fitted(cnnkit.Model(inputs, L.Dense(4, activation="softmax")(
        L.GlobalAveragePooling2D()(x))), (8, 8, 3))
    model.predict_on_batch(data)
    assert model.predict_on_batch(data).shape == (40, 4)
    assert plan_of(model) is False
    with pytest.raises(inference_plan.Unsupported):
        inference_plan.plan_for(model._graph_for(False))


def test_a_model_of_two_inputs_runs_layer_by_layer(one_thread):
    a, b = cnnkit.Input((4,)), cnnkit.Input((4,))
    model = cnnkit.Model([a, b], L.Dense(2)(L.Add()([a, b])))
    x = np.ones((3, 4), np.float32)
    model.predict_on_batch([x, x])
    model.predict_on_batch([x, x])
    assert plan_of(model) is None  # not even tried: a plan takes one input


def test_bad_input_still_gets_the_layer_by_layer_error(one_thread):
    model, x = resnet_like()
    model.predict_on_batch(x)
    model.predict_on_batch(x)
    with pytest.raises(ValueError):
        model.predict_on_batch(np.zeros((2, 11, 12, 3), np.float32))
    # A float64 batch is converted as before, then runs in the plan.
    np.testing.assert_allclose(model.predict_on_batch(x.astype(np.float64)),
                               model.predict_on_batch(x), rtol=1e-6)


def test_the_plans_slots_are_reused_by_liveness(one_thread):
    model, x = resnet_like()
    model.predict_on_batch(x)
    model.predict_on_batch(x)
    core = plan_of(model).core
    # Fourteen activations, but a pass holds at most three at once (input, residual, output).
    assert core.slots <= 4
    assert core.arena_floats_per_image <= 4 * 12 * 12 * 16


def test_pass_images_keeps_the_largest_activation_within_pass_bytes():
    class Fake:
        largest_floats = 16384  # 32x32x16
    assert inference_plan.pass_images(Fake, 64, 1) == inference_plan.PASS_BYTES // 65536
    assert inference_plan.pass_images(Fake, 64, 2) == inference_plan.PASS_BYTES // 65536
    assert inference_plan.pass_images(Fake, 3, 2) == 2  # every thread a pass
    assert inference_plan.pass_images(Fake, 1, 2) == 1
    Fake.largest_floats = 10 ** 7
    assert inference_plan.pass_images(Fake, 64, 1) == 1


# ---------------------------------------------------------------- the C++ side's checks
CONV = (8, 8, 3, 3, 3, 1, 1, 1, 1, 8, 8, 1, 1)  # 8x8x3, 3x3 'same'


def conv_plan(whole_from=2):
    return _core.InferencePlan([192, 512, 512], 0, 2, [
        ("conv", 0, -1, 1, CONV, 8, 0, True), ("relu", 1, -1, 2, None, 0, 0, False)], whole_from)


def test_a_plan_made_by_hand_runs_its_ops():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 8, 8, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 8)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    out = conv_plan().run(x, [(w, b), None], 2)
    expected = _core.conv2d_forward(x, w, b, 1, 1, 1, 1, 8, 8, relu=True)
    np.testing.assert_array_equal(out.reshape(5, 8, 8, 8), expected)


@pytest.mark.parametrize("whole_from", [0, 1, 2])
@pytest.mark.parametrize("threads", ["one_thread", "two_threads"])
def test_the_whole_batch_part_gives_the_passes_outputs(whole_from, threads, request):
    request.getfixturevalue(threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 8, 8, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 8)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    plan = conv_plan(whole_from)
    assert plan.whole_from == whole_from
    assert plan.whole_slots == {0: 2, 1: 2, 2: 0}[whole_from]  # the conv's output crosses at 1
    expected = _core.conv2d_forward(x, w, b, 1, 1, 1, 1, 8, 8, relu=True)
    for images in (1, 2, 5):
        out = plan.run(x, [(w, b), None], images)
        np.testing.assert_array_equal(out.reshape(5, 8, 8, 8), expected)


def test_a_large_dense_layer_and_what_follows_run_on_the_whole_batch(two_threads):
    set_random_seed(10)
    model, data = _fitted(cnnkit.Sequential([
        cnnkit.Input((14, 14, 3)), L.Conv2D(16, 3, activation="relu"), L.MaxPooling2D(),
        L.Flatten(), L.Dense(64, activation="relu"), L.Dense(4, activation="softmax")]),
        (14, 14, 3))
    expected = layer_by_layer(model, data)
    model.predict_on_batch(data)
    core = plan_of(model).core
    assert core.whole_from == 2  # conv, max_pool, then Dense(64): 6*6*16 x 64 weights
    np.testing.assert_allclose(model.predict_on_batch(data), expected, rtol=1e-6, atol=1e-7)


def test_whole_from_takes_large_kernels_used_little_in_a_pass():
    dense = ("dense", 0, -1, 1, None, 512, 2304, True)
    conv = ("conv", 0, -1, 1, (8, 8, 64, 3, 3, 1, 1, 1, 1, 8, 8, 1, 1), 64, 0, True)
    assert inference_plan.whole_from([conv, dense], 4) == 1
    assert inference_plan.whole_from([conv], 1) == 1  # 36,864 weights, 64 uses each
    small = ("dense", 0, -1, 1, None, 10, 64, False)
    assert inference_plan.whole_from([small], 1) == 1
    assert inference_plan.whole_from([dense, small], 64) == 2  # 64 uses a weight: none


@pytest.mark.parametrize("ops, message", [
    ([("conv", 0, -1, 0, CONV, 8, 0, False)], "writes a tensor written before"),
    ([("relu", 1, -1, 2, None, 0, 0, False)], "reads a tensor no earlier op wrote"),
    ([("conv", 0, -1, 2, CONV, 4, 0, False)], "tensor sizes do not match"),
    ([("add", 0, 1, 2, None, 0, 0, False)], "reads a tensor no earlier op wrote"),
    ([("relu", 0, -1, 7, None, 0, 0, False)], "out of range"),
    ([("pool", 0, -1, 1, None, 0, 0, False)], "unknown op kind"),
    ([("conv", 0, -1, 1, CONV[:5], 8, 0, False)], "13 integers"),
    ([("conv", 0, -1, 1, None, 8, 0, False)], "needs its window"),
    ([("depthwise", 0, -1, 1, CONV, 4, 0, False)], "multiple of the input"),
    ([("conv", 0, -1, 1, (8, 8, 3, 3, 3, 1, 1, 1, 1, 10, 8, 1, 1), 8, 0, False)], "larger than the window"),
])
def test_a_bad_op_is_a_value_error(ops, message):
    with pytest.raises(ValueError, match=message):
        _core.InferencePlan([192, 512, 512], 0, 2, ops, len(ops))


def test_whole_from_must_be_an_op_index_or_the_op_count():
    for whole_from in (-1, 3):
        with pytest.raises(ValueError, match="whole_from"):
            conv_plan(whole_from)


def test_bad_run_arguments_are_value_or_type_errors():
    plan = conv_plan()
    x = np.zeros((2, 8, 8, 3), np.float32)
    w, b = np.zeros((3, 3, 3, 8), np.float32), np.zeros(8, np.float32)
    with pytest.raises(ValueError, match="values per sample"):
        plan.run(np.zeros((2, 8, 8, 4), np.float32), [(w, b), None], 1)
    with pytest.raises(ValueError, match="one entry per op"):
        plan.run(x, [(w, b)], 1)
    with pytest.raises(ValueError, match=r"weights\[0\] kernel has 64 values"):
        plan.run(x, [(np.zeros(64, np.float32), b), None], 1)
    with pytest.raises(ValueError, match=r"weights\[1\] must be None"):
        plan.run(x, [(w, b), (w, b)], 1)
    with pytest.raises(ValueError, match=r"C-contiguous float32"):
        plan.run(x, [(w.astype(np.float64), b), None], 1)
    with pytest.raises(ValueError, match="images must be >= 1"):
        plan.run(x, [(w, b), None], 0)
    out = np.zeros((2, 512), np.float32)
    with pytest.raises(ValueError, match="out must not share memory with weights"):
        plan.run(x, [(out.reshape(-1)[:216], b), None], 1, out=out)
