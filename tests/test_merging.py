"""The merge layers (cnnkit.layers.merging), run directly through forward/backward on a
CallState: values against NumPy in float64, gradients against finite differences, broadcasting,
ties, shapes, configs, buffer reuse and errors; and, where keras is installed, against Keras 3."""
import functools
import os
import re
import tracemalloc

import numpy as np
import pytest

from cnnkit.layers import merging
from cnnkit.layers.base import Layer
from cnnkit.layers.call_state import CallState
from cnnkit.layers.merging import (Add, Average, Concatenate, Maximum, Merge, Minimum, Multiply,
                                   Subtract)

ELEMENTWISE = [Add, Subtract, Multiply, Average, Maximum, Minimum]
ALL = ELEMENTWISE + [Concatenate]

# Shape sets, batch axis first: equal shapes; a size-1 axis and a lower rank (broadcast).
SAME = [(2, 3, 2, 2), (2, 3, 2, 2), (2, 3, 2, 2)]
BROADCAST = [(2, 3, 2), (2, 1, 2), (2, 2)]
CASES = [SAME, BROADCAST]


def inputs_for(shapes, seed=0):
    """Float32 inputs whose values are all distinct, 0.05 apart (no ties for Maximum/Minimum,
    even after a finite-difference step of 0.01)."""
    sizes = [int(np.prod(s)) for s in shapes]
    values = (np.random.default_rng(seed).permutation(sum(sizes)) - sum(sizes) / 2) * 0.05
    parts = np.split(values.astype(np.float32), np.cumsum(sizes)[:-1])
    return [p.reshape(s) for p, s in zip(parts, shapes)]


def n_inputs(cls, shapes):
    return shapes[:2] if cls is Subtract else shapes


def built(cls, xs, **kwargs):
    layer = cls(**kwargs)
    layer.build([(None,) + x.shape[1:] for x in xs])
    return layer


def forward(layer, xs, reuse=False):
    call = CallState(layer, reuse=reuse)
    return layer.forward(call, xs, True), call


def reference(cls, xs):
    """Keras' result in float64: lower ranks expanded at axis 1, then NumPy's broadcasting."""
    ndim = max(x.ndim for x in xs)
    xs = [x.astype(np.float64).reshape(x.shape[:1] + (1,) * (ndim - x.ndim) + x.shape[1:])
          for x in xs]
    fold = functools.partial(functools.reduce, {Add: np.add, Subtract: np.subtract,
                                                Multiply: np.multiply, Average: np.add,
                                                Maximum: np.maximum, Minimum: np.minimum}[cls])
    return fold(xs) / len(xs) if cls is Average else fold(xs)


@pytest.mark.parametrize("shapes", CASES, ids=["same", "broadcast"])
@pytest.mark.parametrize("cls", ELEMENTWISE)
def test_forward_matches_numpy(cls, shapes):
    xs = inputs_for(n_inputs(cls, shapes))
    layer = built(cls, xs)
    y, _ = forward(layer, xs)
    assert y.dtype == np.float32 and y.flags.c_contiguous
    assert y.shape == (2,) + layer.output_shape[1:]
    np.testing.assert_allclose(y, reference(cls, xs), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("axis", [-1, 1, 2, 0])
def test_concatenate_forward(axis):
    xs = [x.reshape(2, 3, 4) if i != 1 else x for i, x in
          enumerate(inputs_for([(24,), (2, 3, 4), (24,)]))]
    layer = built(Concatenate, xs, axis=axis)
    y, _ = forward(layer, xs)
    np.testing.assert_array_equal(y, np.concatenate(xs, axis=axis))


def numeric_grads(layer, xs, dy, eps=1e-2):
    """Central differences of sum(layer(xs) * dy), the forward pass in float32."""
    def loss(values):
        return np.sum(forward(layer, values)[0].astype(np.float64) * dy)
    grads = []
    for i, x in enumerate(xs):
        g = np.zeros(x.shape)
        for index in np.ndindex(x.shape):
            up, down = [v.copy() for v in xs], [v.copy() for v in xs]
            up[i][index] += eps
            down[i][index] -= eps
            g[index] = (loss(up) - loss(down)) / (2 * eps)
        grads.append(g)
    return grads


def check_grads(layer, xs, seed=1):
    y, call = forward(layer, xs)
    dy = np.random.default_rng(seed).standard_normal(y.shape).astype(np.float32)
    dxs = layer.backward(call, dy)
    assert isinstance(dxs, list) and len(dxs) == len(xs)
    for dx, x, expected in zip(dxs, xs, numeric_grads(layer, xs, dy)):
        assert dx.shape == x.shape and dx.dtype == np.float32
        np.testing.assert_allclose(dx, expected, rtol=1e-2, atol=1e-3)
    return dy, dxs


@pytest.mark.parametrize("shapes", CASES, ids=["same", "broadcast"])
@pytest.mark.parametrize("cls", ELEMENTWISE)
def test_gradients_match_finite_differences(cls, shapes):
    xs = inputs_for(n_inputs(cls, [s[:1] + s[2:] if len(s) == 4 else s for s in shapes]))
    check_grads(built(cls, xs), xs)


def test_concatenate_gradients_match_finite_differences():
    xs = inputs_for([(2, 2, 3), (2, 1, 3), (2, 3, 3)])
    check_grads(built(Concatenate, xs, axis=1), xs)
    check_grads(built(Concatenate, xs[:1] * 2, axis=-1), xs[:1] * 2)


def test_broadcast_gradients_are_sums():
    """A size-1 axis or a missing one: the input's gradient sums dy over the broadcast axes."""
    a, b, c = inputs_for(BROADCAST)
    for cls in (Add, Subtract, Average):
        layer = built(cls, [a, b, c][:2 if cls is Subtract else 3])
        y, call = forward(layer, [a, b, c][:2 if cls is Subtract else 3])
        dy = np.random.default_rng(2).standard_normal(y.shape).astype(np.float32)
        dxs = layer.backward(call, dy)
        scale = {Add: 1, Subtract: -1, Average: 1 / 3}[cls]
        np.testing.assert_allclose(dxs[1], scale * dy.sum(axis=1, keepdims=True), rtol=1e-5)
        if cls is not Subtract:
            np.testing.assert_allclose(dxs[2], scale * dy.sum(axis=1), rtol=1e-5)


def test_add_hands_dy_back_without_copying():
    xs = inputs_for(SAME[:2])
    layer = built(Add, xs)
    _, call = forward(layer, xs)
    dy = np.ones(xs[0].shape, np.float32)
    assert all(dx is dy for dx in layer.backward(call, dy))


@pytest.mark.parametrize("cls", [Maximum, Minimum])
def test_ties_go_to_the_first_input_holding_the_value(cls):
    a = np.array([[1, 5, 3, 0]], np.float32)
    b = np.array([[1, 2, 3, 7]], np.float32)
    c = np.array([[1, 5, 0, 7]], np.float32)
    layer = built(cls, [a, b, c])
    y, call = forward(layer, [a, b, c])
    dy = np.array([[10, 20, 30, 40]], np.float32)
    dxs = layer.backward(call, dy)
    np.testing.assert_array_equal(sum(dxs), dy)  # the gradient is never split nor doubled
    winners = np.argmax(np.stack([a, b, c]) == y, axis=0)  # the first input holding y
    for i, dx in enumerate(dxs):
        np.testing.assert_array_equal(dx, np.where(winners == i, dy, 0))
    # A broadcast input that ties: it gets the ties its position wins, summed.
    row = np.array([[1, 1, 1, 1]], np.float32).reshape(1, 1, 4)
    full = np.ones((1, 3, 4), np.float32)
    layer = built(cls, [row, full])
    _, call = forward(layer, [row, full])
    dxs = layer.backward(call, np.ones((1, 3, 4), np.float32))
    np.testing.assert_array_equal(dxs[0], np.full((1, 1, 4), 3))
    np.testing.assert_array_equal(dxs[1], np.zeros((1, 3, 4)))


def test_multiply_gradient_with_zeros():
    a = np.array([[0, 2, 0]], np.float32)
    b = np.array([[3, 0, 0]], np.float32)
    c = np.array([[5, 7, 1]], np.float32)
    layer = built(Multiply, [a, b, c])
    _, call = forward(layer, [a, b, c])
    dxs = layer.backward(call, np.ones((1, 3), np.float32))
    np.testing.assert_array_equal(dxs[0], b * c)
    np.testing.assert_array_equal(dxs[1], a * c)
    np.testing.assert_array_equal(dxs[2], a * b)


@pytest.mark.parametrize("cls", ALL)
def test_single_input_passes_through_as_a_copy(cls):
    """Keras 3 merges a list of one input (Subtract excepted): the output is that input."""
    if cls is Subtract:
        with pytest.raises(ValueError, match="exactly 2 inputs"):
            Subtract().build([(None, 3)])
        return
    x = inputs_for([(2, 3)])[0]
    layer = built(cls, [x])
    assert layer.output_shape == (None, 3)
    y, call = forward(layer, [x])
    assert y is not x
    np.testing.assert_array_equal(y, x)
    dy = np.ones_like(x)
    np.testing.assert_array_equal(layer.backward(call, dy)[0], dy)


@pytest.mark.parametrize("cls", ALL)
def test_no_input_gradient_when_not_needed(cls):
    xs = inputs_for(n_inputs(cls, SAME))
    layer = built(cls, xs)
    y, call = forward(layer, xs)
    call.need_dx = False
    assert layer.backward(call, np.ones_like(y)) is None


@pytest.mark.parametrize("shapes, expected", [
    ([(None, 4, 3), (None, 4, 3)], (None, 4, 3)),
    ([(None, 1, 3), (None, 5, 3)], (None, 5, 3)),
    ([(None, None, 3), (None, 5, 3)], (None, None, 3)),
    ([(None, 5, 1), (None, 1, 3), (None, 3)], (None, 5, 3)),
    ([(8, 4, 3), (None, 4, 3)], (8, 4, 3)),
    ([(None,), (None, 2, 3)], (None, 2, 3)),
])
def test_elementwise_output_shapes(shapes, expected):
    for cls in (Add, Multiply, Average, Maximum, Minimum):
        layer = cls()
        layer.build(shapes)
        assert layer.output_shape == expected == layer.compute_output_shape(shapes)


@pytest.mark.parametrize("axis, shapes, expected", [
    (-1, [(None, 2, 3), (None, 2, 5)], (None, 2, 8)),
    (1, [(None, 2, 3), (None, None, 3)], (None, None, 3)),
    (1, [(None, None, 3), (None, 4, 3)], (None, None, 3)),
    (-2, [(None, 2, 3), (None, 4, 3), (None, 1, 3)], (None, 7, 3)),
    (2, [(None, 2, None), (None, 2, 3)], (None, 2, None)),
    (0, [(None, 3), (None, 3)], (None, 3)),
])
def test_concatenate_output_shapes(axis, shapes, expected):
    layer = Concatenate(axis=axis)
    layer.build(shapes)
    assert layer.output_shape == expected


@pytest.mark.parametrize("cls", ALL)
def test_config_round_trip(cls):
    kwargs = {"axis": 2} if cls is Concatenate else {}
    layer = cls(name="merge_me", trainable=False, **kwargs)
    config = layer.get_config()
    assert config["name"] == "merge_me" and config["trainable"] is False
    assert ("axis" in config) == (cls is Concatenate)
    again = cls.from_config(config)
    assert type(again) is cls and again.get_config() == config
    assert re.fullmatch(re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower() + r"(_\d+)?",
                        cls().name)
    assert cls.takes_list and isinstance(layer, Merge)
    if cls is Concatenate:
        assert Concatenate().get_config()["axis"] == -1


@pytest.mark.parametrize("shapes", CASES, ids=["same", "broadcast"])
@pytest.mark.parametrize("cls", ALL)
def test_buffers_are_reused(cls, shapes):
    if cls is Concatenate:
        shapes = [(2, 3, 2), (2, 1, 2)]
    xs = inputs_for(n_inputs(cls, shapes))
    layer = built(cls, xs, **({"axis": 1} if cls is Concatenate else {}))
    call = CallState(layer, reuse=True)
    y1 = layer.forward(call, xs, True)
    dy = np.random.default_rng(3).standard_normal(y1.shape).astype(np.float32)
    dx1 = layer.backward(call, dy)
    xs2 = inputs_for(n_inputs(cls, shapes), seed=5)
    y2 = layer.forward(call, xs2, True)
    dx2 = layer.backward(call, dy)
    assert y2 is y1
    assert all(np.shares_memory(a, b) for a, b in zip(dx1, dx2))
    # The reused arrays hold the new call's values (the masks of Maximum start afresh).
    fresh_y, fresh_call = forward(layer, xs2)
    np.testing.assert_array_equal(y2, fresh_y)
    for a, b in zip(dx2, layer.backward(fresh_call, dy)):
        np.testing.assert_array_equal(a, b)
    # Without reuse, every call makes its own arrays.
    assert forward(layer, xs2)[0] is not fresh_y


@pytest.mark.parametrize("cls", ALL)
def test_a_warm_step_allocates_no_array(cls):
    shapes = [(8, 32, 32, 8), (8, 1, 32, 8), (8, 32, 8)] if cls is not Concatenate else \
        [(8, 32, 32, 8), (8, 32, 32, 4)]
    xs = inputs_for(n_inputs(cls, shapes))
    layer = built(cls, xs)
    call = CallState(layer, reuse=True)
    dy = np.ones((8, 32, 32, 12 if cls is Concatenate else 8), np.float32)
    for _ in range(2):
        layer.forward(call, xs, True)
        layer.backward(call, dy)
    tracemalloc.start()
    layer.forward(call, xs, True)
    layer.backward(call, dy)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # NumPy's fixed iteration buffers (32 KiB at most), never an array: dy is 256 KiB.
    assert peak < 64 * 1024, peak


def test_function_forms_build_their_layer(monkeypatch):
    made = []
    monkeypatch.setattr(Layer, "__call__", lambda self, inputs: made.append(self) or inputs)
    for name in ("add", "subtract", "multiply", "average", "maximum", "minimum"):
        getattr(merging, name)(["x", "y"], name=f"my_{name}")
        assert type(made[-1]).__name__.lower() == name and made[-1].name == f"my_{name}"
    merging.concatenate(["x", "y"], axis=1, name="cat")
    assert isinstance(made[-1], Concatenate) and made[-1].axis == 1 and made[-1].name == "cat"


def test_function_forms_run_once_the_engine_takes_lists():
    if "takes_list" not in vars(Layer):
        pytest.skip("Layer.__call__ does not take a list of inputs yet")
    a, b = inputs_for([(2, 3), (2, 3)])
    np.testing.assert_allclose(merging.add([a, b]), a + b)
    np.testing.assert_allclose(merging.concatenate([a, b], axis=1), np.concatenate([a, b], 1))


# ------------------------------------------------------------ errors
@pytest.mark.parametrize("cls, shapes, match", [
    (Add, (None, 3), r"Add\) should be called on a list of inputs"),
    (Add, [3, 4], r"should be called on a list of inputs"),
    (Maximum, [], r"Maximum\) should be called on a list of at least 1 input"),
    (Subtract, [(None, 3)] * 3, r"Subtract\) should be called on exactly 2 inputs, got 3"),
    (Multiply, [(None, 4, 3), (None, 2, 3)],
     r"incompatible shapes .*input_shape=\[\(None, 4, 3\), \(None, 2, 3\)\]"),
    (Average, [(None, 3), (None, 3), (None, 2, 5)], r"Average\) received inputs of incompatible"),
    (Add, [(4, 3), (8, 3)], r"different batch sizes. Received: input_shape=\[\(4, 3\), \(8, 3\)\]"),
    (Add, [(None, 3), ()], r"batch axis first"),
    (Add, [(None, 3), (None, "3")], r"integers or None"),
    (Concatenate, [(None, 4, 3), (None, 2, 3)], r"Concatenate\) requires inputs with matching "
     r"shapes except for the concatenation axis \(axis=-1\). Received: input_shape=\[\(None, 4, "
     r"3\), \(None, 2, 3\)\]"),
    (Concatenate, [(None, 4, 3), (None, 4)], r"matching shapes"),
    (Concatenate, [(2, 4), (3, 4)], r"matching shapes"),
])
def test_bad_shapes_name_the_layer_and_every_shape(cls, shapes, match):
    layer = cls(name="the_merge")
    with pytest.raises(ValueError, match=match) as info:
        layer.build(shapes)
    assert 'Layer "the_merge"' in str(info.value)
    assert not layer.built


def test_bad_axis():
    with pytest.raises(TypeError, match=r"`axis` must be an integer. Received: axis='a'"):
        Concatenate(axis="a")
    with pytest.raises(TypeError, match="axis"):
        Concatenate(axis=1.0)
    with pytest.raises(TypeError, match="axis"):
        Concatenate(axis=True)
    with pytest.raises(ValueError, match=r"axis=3: its inputs have rank 3"):
        Concatenate(axis=3).build([(None, 2, 3), (None, 2, 3)])
    with pytest.raises(ValueError, match=r"axis=-4"):
        Concatenate(axis=-4).build([(None, 2, 3), (None, 2, 3)])


@pytest.mark.parametrize("cls", ALL)
def test_bad_arrays_at_run_time(cls):
    """Sizes left open at build are checked on the arrays themselves."""
    layer = cls(name="late")
    layer.build([(None, None, 3), (None, None, 3)])
    a, b = inputs_for([(2, 4, 3), (2, 5, 3)])
    if cls is not Concatenate:
        with pytest.raises(ValueError, match=r'"late".*incompatible.*\(2, 4, 3\), \(2, 5, 3\)'):
            layer.forward(CallState(layer), [a, b])
    c = inputs_for([(3, 4, 3)])[0]
    with pytest.raises(ValueError, match=r'"late"'):
        layer.forward(CallState(layer), [a, c])
    with pytest.raises(ValueError, match="list of inputs"):
        layer.forward(CallState(layer), a)


# ------------------------------------------------------------ against Keras 3
KERAS_SHAPES = [
    [(None, 4, 3), (None, 4, 3)],
    [(None, 1, 3), (None, 5, 3), (None, 5, 1)],
    [(None, None, 3), (None, 5, 3)],
    [(2, 3), (None, 4, 3)],
    [(None, 2, 3)],
]
KERAS_CONCAT = [(-1, [(None, 2, 3), (None, 2, 5)]), (1, [(None, 2, 3), (None, None, 3)]),
                (1, [(4, 2, 3), (None, 1, 3)]), (0, [(None, 3), (None, 3)])]
KERAS_BAD = [(Add, [(None, 4, 3), (None, 2, 3)]), (Add, [(2, 3), (4, 3)]),
             (Subtract, [(None, 3)] * 3), (Concatenate, [(None, 4, 3), (None, 2, 3)]),
             (Concatenate, [(None, 4, 3), (None, 4)])]


def test_matches_keras():
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    keras = pytest.importorskip("keras")
    for cls in ALL:
        ours, theirs = cls(), getattr(keras.layers, cls.__name__)()
        assert re.sub(r"_\d+$", "", ours.name) == re.sub(r"_\d+$", "", theirs.name)
        assert set(ours.get_config()) <= set(theirs.get_config())
        theirs_f = getattr(keras.layers, cls.__name__.lower())
        assert theirs_f.__name__ == cls.__name__.lower() and hasattr(merging, theirs_f.__name__)
    for shapes in KERAS_SHAPES:
        for cls in ELEMENTWISE:
            if cls is Subtract and len(shapes) != 2:
                continue
            assert cls().compute_output_shape(shapes) == \
                tuple(getattr(keras.layers, cls.__name__)().compute_output_shape(shapes))
    for axis, shapes in KERAS_CONCAT:
        assert Concatenate(axis=axis).compute_output_shape(shapes) == \
            tuple(keras.layers.Concatenate(axis=axis).compute_output_shape(shapes))
    for cls, shapes in KERAS_BAD:
        with pytest.raises(ValueError):
            getattr(keras.layers, cls.__name__)().build(shapes)
        with pytest.raises(ValueError):
            cls().build(shapes)
    # Values, with a lower-rank input (Keras expands it at axis 1).
    xs = inputs_for([(2, 3, 4), (2, 1, 4), (2, 4)])
    for cls in ELEMENTWISE:
        args = n_inputs(cls, xs)
        y, _ = forward(built(cls, args), args)
        np.testing.assert_allclose(y, np.asarray(getattr(keras.layers, cls.__name__)()(args)),
                                   rtol=1e-6)
    y, _ = forward(built(Concatenate, xs[:2], axis=1), xs[:2])
    np.testing.assert_array_equal(y, np.asarray(keras.layers.Concatenate(axis=1)(xs[:2])))
