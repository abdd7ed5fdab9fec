"""Argument normalisation and validation (cnnkit._args), through the reference functions that use
it: every bad input raises the right exception type, with a message that starts with the
function's name and names the argument. cnnkit.ops shares these checks.
"""
import contextlib

import numpy as np
import pytest

from cnnkit import _args as A
from cnnkit import reference as R


X = np.zeros((2, 6, 6, 3), np.float32)
W = np.zeros((3, 3, 3, 8), np.float32)


@contextlib.contextmanager
def raises(exception, *words):
    """pytest.raises whose message must also contain every one of `words`."""
    with pytest.raises(exception) as info:
        yield info
    for word in words:
        assert word in str(info.value), f"{word!r} not in {str(info.value)!r}"


# ---------------------------------------------------------------- pairs

@pytest.mark.parametrize("value,expected", [(3, (3, 3)), ((2, 3), (2, 3)), ([1, 4], (1, 4)),
                                            (np.int64(2), (2, 2)), ((np.int32(2), 5), (2, 5))])
def test_pair_accepts_what_keras_accepts(value, expected):
    assert A.pair(value, "strides") == expected


@pytest.mark.parametrize("value", [True, (True, 1), 2.0, (2, 2.5), "2", None, (np.bool_(1), 1)])
def test_pair_rejects_non_integers(value):
    with raises(TypeError, "f: strides"):
        A.pair(value, "strides", "f")


@pytest.mark.parametrize("value", [0, -1, (0, 1), [1, -2]])
def test_pair_rejects_non_positive(value):
    with raises(ValueError, "f: strides must be positive integers, got " + repr(value)):
        A.pair(value, "strides", "f")


@pytest.mark.parametrize("value", [(), (1,), (1, 2, 3)])
def test_pair_rejects_wrong_length(value):
    with raises(ValueError, "strides"):
        A.pair(value, "strides")


@pytest.mark.parametrize("call,name", [
    (lambda: R.conv2d_forward(X, W, strides=(0, 1)), "strides"),
    (lambda: R.maxpool2d_forward(X, pool_size=0), "pool_size"),
    (lambda: R.maxpool2d_forward(X, strides=(2, -1)), "strides"),
    (lambda: R.upsampling2d_forward(X, size=(0, 2)), "size"),
    (lambda: R.upsampling2d_backward(X, size=-1), "size"),
])
def test_functions_reject_non_positive_sizes(call, name):
    with raises(ValueError, name, "positive"):
        call()


def test_functions_reject_boolean_and_float_sizes():
    with raises(TypeError, "conv2d_forward: strides"):
        R.conv2d_forward(X, W, strides=True)
    with raises(TypeError, "maxpool2d_forward: pool_size"):
        R.maxpool2d_forward(X, pool_size=(2.0, 2))


# ---------------------------------------------------------------- padding and geometry

@pytest.mark.parametrize("value", ["same", "SAME", "Valid", "valid"])
def test_padding_is_case_insensitive(value):
    assert A.padding_mode(value) == value.lower()


@pytest.mark.parametrize("value", ["full", "", None, 1, "causal"])
def test_padding_rejects_other_values(value):
    with raises(ValueError, "conv2d_forward: padding", "'valid'", "'same'"):
        R.conv2d_forward(X, W, padding=value)


@pytest.mark.parametrize("size,k,s,padding,out,pad_before", [
    (6, 3, 1, "valid", 4, 0), (7, 3, 2, "valid", 3, 0), (8, 3, 2, "valid", 3, 0),
    (6, 3, 1, "same", 6, 1), (5, 4, 1, "same", 5, 1), (6, 3, 2, "same", 3, 0),
    (7, 3, 2, "same", 4, 1), (4, 2, 2, "same", 2, 0), (5, 2, 2, "same", 3, 0),
    (7, 4, 3, "same", 3, 1), (2, 5, 1, "same", 2, 2), (1, 1, 3, "same", 1, 0),
])
def test_geometry_matches_keras(size, k, s, padding, out, pad_before):
    g = A.window_geometry((1, size, size + 1, 2), (k, k), (s, s), padding)
    assert (g.OH, g.PT) == (out, pad_before)
    # the width is one larger: same rule
    out_w = (size + 1 - k) // s + 1 if padding == "valid" else -(-(size + 1) // s)
    assert g.OW == out_w
    assert (g.N, g.H, g.W, g.C, g.KH, g.KW, g.SH, g.SW) == (1, size, size + 1, 2, k, k, s, s)


def test_conv_and_pool_geometry_return_window2d():
    g = A.conv_geometry((2, 6, 6, 3), (3, 3, 3, 8), 2, "SAME", "f")
    assert g == A.Window2d(2, 6, 6, 3, 3, 3, 2, 2, 0, 0, 3, 3)
    assert g._fields == ("N", "H", "W", "C", "KH", "KW", "SH", "SW", "PT", "PL", "OH", "OW",
                         "DH", "DW")
    assert (g.DH, g.DW) == (1, 1)  # no dilation unless a convolution asks for it
    assert all(type(v) is int for v in g)
    pool = A.pool_geometry((1, 7, 7, 1), 3, None, "valid")  # strides default to pool_size
    assert pool == A.Window2d(1, 7, 7, 1, 3, 3, 3, 3, 0, 0, 2, 2)
    assert A.pool_geometry((1, 7, 7, 1), 3, 2, "valid").OH == 3


def test_kernel_larger_than_valid_input():
    with raises(ValueError, "conv2d_forward", "3x3", "2x2", "valid"):
        R.conv2d_forward(np.zeros((1, 2, 2, 3)), W)
    with raises(ValueError, "maxpool2d_forward", "3x3", "2x2"):
        R.maxpool2d_forward(np.zeros((1, 2, 2, 1)), 3)
    # with 'same' padding it is fine
    assert R.conv2d_forward(np.zeros((1, 2, 2, 3)), W, padding="same").shape == (1, 2, 2, 8)


# ---------------------------------------------------------------- arrays: dtypes

@pytest.mark.parametrize("bad", [np.zeros((2, 6, 6, 3), np.int32), np.zeros((2, 6, 6, 3), bool),
                                 np.zeros((2, 6, 6, 3), np.complex64),
                                 np.zeros((2, 6, 6, 3), object)])
def test_non_float_arrays_are_type_errors(bad):
    with raises(TypeError, "conv2d_forward: x", str(bad.dtype)):
        R.conv2d_forward(bad, W)
    with raises(TypeError, "conv2d_forward: w"):
        R.conv2d_forward(X, W.astype(bad.dtype))


def test_non_arrays_that_do_not_convert_are_type_errors():
    with raises(TypeError, "relu_forward: x"):
        R.relu_forward([[1.0, 2.0], [3.0]])  # ragged
    with raises(TypeError, "relu_forward: x"):
        R.relu_forward("image")
    with raises(TypeError, "dense_forward: x"):
        R.dense_forward([[1, 2]], np.ones((2, 1)))  # a list of ints is an int array


def test_float_array_converts_once_to_contiguous_working_dtype():
    x = np.zeros((4, 6), np.float32)
    assert A.float_array(x, "x") is x  # nothing to convert: no copy
    strided = A.float_array(np.zeros((4, 6), np.float64)[:, ::2], "x", 2)
    assert strided.dtype == np.float32 and strided.flags.c_contiguous
    assert A.float_array(np.zeros(3, np.float16), "x", dtype=np.float64).dtype == np.float64
    assert A.float_array([1.5, 2.5], "x").dtype == np.float32
    assert A.working_dtype(np.zeros(1), None) == np.float64
    assert A.working_dtype(np.zeros(1, np.float16), [1.0]) == np.float32


# ---------------------------------------------------------------- arrays: shapes

@pytest.mark.parametrize("call,words", [
    (lambda: R.conv2d_forward(X[0], W), ("conv2d_forward: x must be 4-D", "(6, 6, 3)")),
    (lambda: R.conv2d_forward(X, W[0]), ("conv2d_forward: w must be 4-D",)),
    (lambda: R.maxpool2d_forward(X[0]), ("maxpool2d_forward: x must be 4-D",)),
    (lambda: R.upsampling2d_forward(X[0]), ("upsampling2d_forward: x must be 4-D",)),
    (lambda: R.dense_forward(X, np.ones((3, 2))), ("dense_forward: x must be 2-D",)),
    (lambda: R.dense_forward(np.ones((2, 3)), np.ones(3)), ("dense_forward: w must be 2-D",)),
    (lambda: R.softmax_cross_entropy(np.array([0]), np.zeros(3)),
     ("softmax_cross_entropy: logits must be 2-D",)),
])
def test_wrong_rank(call, words):
    with raises(ValueError, *words):
        call()


def test_channel_and_feature_mismatch():
    with raises(ValueError, "conv2d_forward: x has 3 channels but w expects 4", "(3, 3, 4, 8)"):
        R.conv2d_forward(X, np.zeros((3, 3, 4, 8)))
    with raises(ValueError, "conv2d_backward: x has 3 channels but w expects 4"):
        R.conv2d_backward(np.zeros((2, 4, 4, 8)), X, np.zeros((3, 3, 4, 8)))
    with raises(ValueError, "dense_forward: x has 3 features but w expects 4", "(4, 2)"):
        R.dense_forward(np.ones((2, 3)), np.ones((4, 2)))


def test_bias_shape():
    with raises(ValueError, "conv2d_forward: b has shape (3,)", "(8,)"):
        R.conv2d_forward(X, W, np.zeros(3))
    with raises(ValueError, "dense_forward: b has shape (1, 2)", "(2,)"):
        R.dense_forward(np.ones((2, 3)), np.ones((3, 2)), np.ones((1, 2)))
    with raises(TypeError, "dense_forward: b"):
        R.dense_forward(np.ones((2, 3)), np.ones((3, 2)), np.ones(2, int))


def test_dy_must_match_the_forward_output():
    x, w = np.zeros((2, 7, 7, 3)), np.zeros((2, 2, 3, 8))
    with raises(ValueError, "conv2d_backward: dy has shape (2, 5, 5, 8) but the output of this "
                "convolution is (2, 6, 6, 8)"):
        R.conv2d_backward(np.zeros((2, 5, 5, 8)), x, w)
    with raises(ValueError, "maxpool2d_backward: dy has shape (2, 3, 3, 3)", "(2, 2, 2, 3)"):
        R.maxpool2d_backward(np.zeros((2, 3, 3, 3)), np.zeros((2, 5, 5, 3)))
    with raises(ValueError, "dense_backward: dy has shape (2, 3)", "(2, 2)"):
        R.dense_backward(np.ones((2, 3)), np.ones((2, 3)), np.ones((3, 2)))
    with raises(ValueError, "upsampling2d_backward: dy has shape (1, 5, 4, 1)", "(2, 2)"):
        R.upsampling2d_backward(np.zeros((1, 5, 4, 1)))
    for name in ("relu", "sigmoid", "softmax"):
        with raises(ValueError, f"{name}_backward: dy has shape (2, 3)", "(3, 2)"):
            getattr(R, f"{name}_backward")(np.ones((2, 3)), np.ones((3, 2)))


@pytest.mark.parametrize("call,name", [
    (lambda: R.conv2d_forward(np.zeros((0, 6, 6, 3)), W), "x"),
    (lambda: R.conv2d_forward(X, np.zeros((3, 3, 3, 0))), "w"),
    (lambda: R.maxpool2d_forward(np.zeros((1, 4, 0, 1))), "x"),
    (lambda: R.dense_forward(np.zeros((2, 3)), np.zeros((3, 0))), "w"),
    (lambda: R.relu_forward(np.zeros(0)), "x"),
    (lambda: R.softmax_forward(np.zeros((2, 0))), "x"),
    (lambda: R.mean_squared_error(np.zeros(0), np.zeros(0)), "y_pred"),
])
def test_empty_arrays_are_value_errors(call, name):
    with raises(ValueError, f" {name} is empty"):
        call()


# ---------------------------------------------------------------- labels and targets

def test_integer_labels():
    logits = np.zeros((3, 4))
    loss, _ = R.softmax_cross_entropy(np.array([0, 3, 1], np.uint8), logits)
    assert loss == pytest.approx(np.log(4))
    with raises(ValueError, "softmax_cross_entropy: y_true", "class index 4", "[0, 4)"):
        R.softmax_cross_entropy(np.array([0, 4, 1]), logits)
    with raises(ValueError, "class index -1", "K=4"):
        R.softmax_cross_entropy(np.array([[0], [-1], [1]]), logits)
    with raises(ValueError, "softmax_cross_entropy: y_true", "(3,) or (3, 1)", "(2,)"):
        R.softmax_cross_entropy(np.array([0, 1]), logits)
    with raises(ValueError, "y_true", "(3, 2)"):
        R.softmax_cross_entropy(np.zeros((3, 2), int), logits)


def test_one_hot_labels():
    logits = np.zeros((3, 4))
    with raises(ValueError, "softmax_cross_entropy: y_true has shape (3, 5)", "(3, 4)"):
        R.softmax_cross_entropy(np.zeros((3, 5)), logits)
    with raises(ValueError, "y_true has shape (3,)", "integer"):
        R.softmax_cross_entropy(np.array([0.0, 1.0, 2.0]), logits)  # float class indices
    with raises(TypeError, "softmax_cross_entropy: y_true"):
        R.softmax_cross_entropy(np.zeros((3, 4), bool), logits)


def test_class_labels_helper():
    onehot, indices = A.class_labels([[1], [0]], (2, 3))
    assert onehot is None and indices.dtype == np.int64 and indices.tolist() == [1, 0]
    onehot, indices = A.class_labels(np.eye(3)[:2], (2, 3))
    assert indices is None and onehot.dtype == np.float32


def test_regression_targets():
    # integer and bool targets are cast, as Keras does; the shape must match y_pred
    assert R.mean_squared_error(np.array([1, 0]), np.array([1.0, 0.0]))[0] == 0
    assert R.binary_crossentropy(np.array([True, False]), np.array([0.5, 0.5]))[0] > 0
    with raises(ValueError, "mean_squared_error: y_true has shape (3,)", "(2,)"):
        R.mean_squared_error(np.zeros(3), np.zeros(2))
    with raises(TypeError, "binary_crossentropy: y_true"):
        R.binary_crossentropy(np.zeros(2, complex), np.zeros(2))
    with raises(TypeError, "binary_crossentropy: y_pred"):
        R.binary_crossentropy(np.zeros(2), np.zeros(2, int))
    for eps in (-1e-3, 0.5, float("nan")):
        with raises(ValueError, "binary_crossentropy: epsilon"):
            R.binary_crossentropy(np.zeros(2), np.zeros(2), epsilon=eps)
    with raises(TypeError, "binary_crossentropy: epsilon"):
        R.binary_crossentropy(np.zeros(2), np.zeros(2), epsilon="1e-7")


# ---------------------------------------------------------------- arrays updated in place

def adam_arrays(dtype=np.float32, shape=(3, 2)):
    return [np.zeros(shape, dtype) for _ in range(3)]


def test_inplace_arrays_must_be_exact_numpy_arrays():
    grad = np.ones((3, 2))
    param, m, v = adam_arrays()
    with raises(TypeError, "adam_update: param", "list"):
        R.adam_update(param.tolist(), grad, m, v, 1)
    with raises(TypeError, "adam_update: m", "int64"):
        R.adam_update(param, grad, m.astype(np.int64), v, 1)
    with raises(TypeError, "adam_update: v", "float16"):
        R.adam_update(param, grad, m, v.astype(np.float16), 1)
    with raises(TypeError, "adam_update", "share one dtype", "m is float64"):
        R.adam_update(param, grad, m.astype(np.float64), v, 1)
    with raises(ValueError, "adam_update: m", "C-contiguous"):
        R.adam_update(param, grad, np.zeros((2, 3), np.float32).T, v, 1)
    readonly = param.copy()
    readonly.flags.writeable = False
    with raises(ValueError, "adam_update: param", "writeable"):
        R.adam_update(readonly, grad, m, v, 1)
    with raises(ValueError, "adam_update: v has shape (6,)", "(3, 2)"):
        R.adam_update(param, grad, m, v.reshape(6), 1)
    with raises(TypeError, "sgd_update: velocity"):
        R.sgd_update(param, grad, velocity=[0.0] * 6, momentum=0.9)
    with raises(ValueError, "sgd_update: param has shape (3, 2)", "(2, 3)"):
        R.sgd_update(param, np.ones((2, 3)))
    with raises(TypeError, "sgd_update: grad", "int64"):
        R.sgd_update(param, np.ones((3, 2), np.int64))
    # float32 or float64, as long as they agree
    R.adam_update(*adam_arrays(np.float64)[:1], grad, *adam_arrays(np.float64)[1:], 1)


def test_optimizer_hyperparameters():
    param, m, v = adam_arrays()
    grad = np.ones((3, 2))
    for step in (0, -1):
        with raises(ValueError, "adam_update: step"):
            R.adam_update(param, grad, m, v, step)
    for step in (True, 1.0, "1"):
        with raises(TypeError, "adam_update: step"):
            R.adam_update(param, grad, m, v, step)
    with raises(ValueError, "adam_update: beta_1"):
        R.adam_update(param, grad, m, v, 1, beta_1=1.0)
    with raises(ValueError, "adam_update: learning_rate"):
        R.adam_update(param, grad, m, v, 1, learning_rate=float("inf"))
    with raises(TypeError, "adam_update: learning_rate"):
        R.adam_update(param, grad, m, v, 1, learning_rate=None)
    with raises(ValueError, "sgd_update: momentum", "velocity"):
        R.sgd_update(param, grad, momentum=0.9)
    with raises(ValueError, "sgd_update: momentum"):
        R.sgd_update(param, grad, np.zeros_like(param), momentum=1.5)
    with raises(TypeError, "sgd_update: nesterov"):
        R.sgd_update(param, grad, np.zeros_like(param), momentum=0.9, nesterov=1)
