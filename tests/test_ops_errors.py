"""Bad arguments to cnnkit.ops raise ValueError or TypeError naming the argument; the C++ layer
below them refuses what could make it read or write out of bounds; dtypes convert once."""

import numpy as np
import pytest

from cnnkit import _core, ops

X = np.zeros((2, 8, 8, 3), np.float32)
W = np.zeros((3, 3, 3, 4), np.float32)

BAD_CALLS = [
    # (call, exception, words the message must contain)
    (lambda: ops.conv2d_forward(X[0], W), ValueError, ["x", "4-D", "(8, 8, 3)"]),
    (lambda: ops.conv2d_forward(X, W[0]), ValueError, ["w", "4-D"]),
    (lambda: ops.conv2d_forward(X, np.zeros((3, 3, 2, 4), np.float32)), ValueError, ["3 channels", "expects 2"]),
    (lambda: ops.conv2d_forward(X, np.zeros((9, 9, 3, 4), np.float32)), ValueError, ["9x9", "8x8"]),
    (lambda: ops.conv2d_forward(X, W, strides=0), ValueError, ["strides"]),
    (lambda: ops.conv2d_forward(X, W, strides=(1, -2)), ValueError, ["strides"]),
    (lambda: ops.conv2d_forward(X, W, strides=(1, 2, 3)), ValueError, ["strides"]),
    (lambda: ops.conv2d_forward(X, W, strides=1.5), TypeError, ["strides"]),
    (lambda: ops.conv2d_forward(X, W, padding="full"), ValueError, ["padding", "'full'"]),
    (lambda: ops.conv2d_forward(X, W, b=np.zeros(3, np.float32)), ValueError, ["b", "(3,)"]),
    (lambda: ops.conv2d_forward(X.astype(np.int32), W), TypeError, ["x", "int32"]),
    (lambda: ops.conv2d_forward(np.zeros((0, 8, 8, 3), np.float32), W), ValueError, ["x", "empty"]),
    (lambda: ops.conv2d_backward(np.zeros((2, 5, 5, 4), np.float32), X, W), ValueError,
     ["dy", "(2, 5, 5, 4)", "(2, 6, 6, 4)"]),
    (lambda: ops.maxpool2d_forward(X, pool_size=9), ValueError, ["9x9", "8x8"]),
    (lambda: ops.maxpool2d_forward(X, pool_size=0), ValueError, ["pool_size"]),
    (lambda: ops.maxpool2d_forward(X, strides=(0, 1)), ValueError, ["strides"]),
    (lambda: ops.maxpool2d_backward(np.zeros((2, 3, 4, 3), np.float32), X), ValueError, ["dy", "(2, 4, 4, 3)"]),
    (lambda: ops.upsampling2d_forward(X, size=0), ValueError, ["size"]),
    (lambda: ops.upsampling2d_backward(np.zeros((1, 5, 4, 1), np.float32), size=2), ValueError, ["dy", "multiples"]),
    (lambda: ops.dense_forward(np.zeros((2, 5), np.float32), np.zeros((4, 3), np.float32)), ValueError,
     ["5 features", "expects 4"]),
    (lambda: ops.dense_forward(np.zeros(5, np.float32), np.zeros((5, 3), np.float32)), ValueError, ["x", "2-D"]),
    (lambda: ops.dense_backward(np.zeros((2, 4), np.float32), np.zeros((2, 5), np.float32),
                                np.zeros((5, 3), np.float32)), ValueError, ["dy", "(2, 4)", "(2, 3)"]),
    (lambda: ops.relu_backward(np.zeros(3, np.float32), np.zeros(4, np.float32)), ValueError, ["dy"]),
    (lambda: ops.softmax_cross_entropy(np.array([0, 10]), np.zeros((2, 10), np.float32)), ValueError,
     ["y_true", "10", "[0, 10)"]),
    (lambda: ops.softmax_cross_entropy(np.zeros((2, 9), np.float32), np.zeros((2, 10), np.float32)),
     ValueError, ["y_true", "(2, 9)"]),
    (lambda: ops.mean_squared_error(np.zeros(3), np.zeros(4)), ValueError, ["y_true"]),
    (lambda: ops.adam_update(np.zeros(3), np.zeros(3), np.zeros(3, np.float32), np.zeros(3, np.float32), 1),
     TypeError, ["param", "float32"]),
    (lambda: ops.adam_update(*[np.zeros(3, np.float32)] * 4, step=0), ValueError, ["step"]),
    (lambda: ops.adam_update(np.zeros((4, 4), np.float32)[:, ::2], np.zeros((4, 2), np.float32),
                             np.zeros((4, 2), np.float32), np.zeros((4, 2), np.float32), 1),
     ValueError, ["param", "contiguous"]),
    (lambda: ops.sgd_update(np.zeros(3, np.float32), np.zeros(3, np.float32), momentum=0.9), ValueError,
     ["velocity"]),
]


@pytest.mark.parametrize("call,error,words", BAD_CALLS, ids=range(len(BAD_CALLS)))
def test_bad_arguments_raise_clear_errors(call, error, words):
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value), f"{word!r} missing from: {info.value}"


def test_read_only_parameters_are_refused_not_copied():
    param = np.zeros(3, np.float32)
    param.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        ops.sgd_update(param, np.ones(3, np.float32))


def test_other_float_dtypes_and_layouts_are_converted_once_at_the_boundary():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 6, 3))
    w = rng.standard_normal((3, 3, 3, 5))
    want = ops.conv2d_forward(x.astype(np.float32), w.astype(np.float32))
    np.testing.assert_allclose(ops.conv2d_forward(x, w), want, rtol=1e-5, atol=1e-5)  # float64
    np.testing.assert_allclose(ops.conv2d_forward(x.astype(np.float16), w), want, rtol=1e-2, atol=1e-1)
    wide = np.asfortranarray(x)
    reversed_view = x[:, ::-1][:, ::-1]  # a negatively strided view of the same values
    np.testing.assert_allclose(ops.conv2d_forward(wide, w), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ops.conv2d_forward(reversed_view, w), want, rtol=1e-5, atol=1e-5)
    assert ops.conv2d_forward(x, w).dtype == np.float32


def test_the_core_refuses_silent_conversion_and_inconsistent_sizes():
    x = np.zeros((1, 4, 4, 1), np.float32)
    w = np.zeros((2, 2, 1, 1), np.float32)
    with pytest.raises(TypeError):  # float64 would be a silent copy: refused
        _core.conv2d_forward(x.astype(np.float64), w, None, 1, 1, 0, 0, 3, 3)
    with pytest.raises(ValueError, match="past the input"):
        _core.conv2d_forward(x, w, None, 1, 1, 0, 0, 9, 3)
    with pytest.raises(ValueError, match="channels"):
        _core.conv2d_forward(x, np.zeros((2, 2, 2, 1), np.float32), None, 1, 1, 0, 0, 3, 3)
    with pytest.raises(ValueError, match="argmax"):
        _core.maxpool2d_backward_argmax(np.ones((1, 2, 2, 1), np.float32),
                                        np.full((1, 2, 2, 1), 99, np.int32), 4, 4)
    with pytest.raises(ValueError, match="outside"):
        _core.softmax_cross_entropy(np.zeros((2, 3), np.float32), None, np.array([0, 3]))
    with pytest.raises(ValueError, match="not available"):
        _core.set_simd_isa("sse9")


def unaligned(array):
    """A copy of array whose data starts one byte past an element boundary."""
    raw = np.zeros(array.nbytes + 1, np.uint8)[1:]
    view = raw.view(array.dtype).reshape(array.shape)
    view[...] = array
    assert not view.flags.aligned
    return view


def test_unaligned_arrays_are_copied_by_ops_and_refused_by_the_core():
    """A view that starts mid-element is legal NumPy but undefined behaviour for a float*
    (UBSan reports it, and vectorised loops may fault): ops copies it, the core refuses it."""
    rng = np.random.default_rng(0)
    x = rng.random((2, 5, 5, 3), dtype=np.float32)
    w = rng.random((3, 3, 3, 4), dtype=np.float32)
    np.testing.assert_array_equal(ops.conv2d_forward(unaligned(x), unaligned(w)),
                                  ops.conv2d_forward(x, w))
    with pytest.raises(ValueError, match="x must be aligned"):
        _core.conv2d_forward(unaligned(x), w, None, 1, 1, 0, 0, 3, 3)
    with pytest.raises(ValueError, match="out must be aligned"):
        _core.relu_forward(x, out=unaligned(np.zeros_like(x)))
    p = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="aligned"):
        ops.adam_update(unaligned(p), p, p.copy(), p.copy(), 1)
