"""The NumPy reference (cnnkit.reference) checked on its own: every backward pass against central
finite differences in float64, plus a few cases worked out by hand. The reference is the
yardstick for the C++ kernels, so nothing here calls them.
"""
import math

import numpy as np
import pytest

from cnnkit import reference as R

rng = np.random.default_rng(1234)


def randn(*shape):
    return rng.standard_normal(shape)


def numeric_grad(loss, array, h=1e-6):
    """d loss() / d array by central differences, perturbing `array` in place."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + h
        plus = loss()
        array[index] = saved - h
        minus = loss()
        array[index] = saved
        grad[index] = (plus - minus) / (2 * h)
    return grad


def assert_close(actual, expected, tol=1e-6):
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol)


# ---------------------------------------------------------------- convolution

CONV_CASES = [
    # (N, H, W, C, KH, KW, OC, strides, padding)
    (1, 5, 5, 1, 3, 3, 2, 1, "valid"),
    (2, 6, 7, 3, 2, 2, 2, 2, "same"),       # even kernel, 'same': the extra row goes below
    (1, 7, 6, 3, 4, 4, 2, 3, "same"),       # even kernel, stride 3
    (2, 8, 7, 3, 3, 2, 3, (2, 3), "valid"),  # rows left unused by 'valid'
    (1, 5, 4, 1, 2, 3, 1, (1, 2), "same"),
    (1, 3, 2, 3, 5, 4, 2, 1, "same"),       # kernel larger than the image
    (1, 4, 4, 3, 1, 1, 2, 1, "valid"),      # 1x1 kernel
]


@pytest.mark.parametrize("n,h,w,c,kh,kw,oc,strides,padding", CONV_CASES)
def test_conv2d_backward_matches_finite_differences(n, h, w, c, kh, kw, oc, strides, padding):
    x, k, b = randn(n, h, w, c), randn(kh, kw, c, oc), randn(oc)
    y = R.conv2d_forward(x, k, b, strides=strides, padding=padding)
    r = randn(*y.shape)  # the loss is sum(r * y), so dy = r

    def loss():
        return np.sum(r * R.conv2d_forward(x, k, b, strides=strides, padding=padding))

    dx, dk, db = R.conv2d_backward(r, x, k, strides=strides, padding=padding)
    assert dx.dtype == dk.dtype == db.dtype == np.float64
    assert_close(dx, numeric_grad(loss, x))
    assert_close(dk, numeric_grad(loss, k))
    assert_close(db, numeric_grad(loss, b))


def _valid_conv_by_hand(x, k):
    # direct loops over every output pixel: slow and obviously right, for tiny images only
    n, h, w, _ = x.shape
    kh, kw, _, oc = k.shape
    y = np.zeros((n, h - kh + 1, w - kw + 1, oc))
    for row in range(y.shape[1]):
        for col in range(y.shape[2]):
            patch = x[:, row:row + kh, col:col + kw, :]
            y[:, row, col, :] = np.einsum("nijc,ijco->no", patch, k)
    return y


@pytest.mark.parametrize("kh,kw,pads", [
    (3, 3, ((1, 1), (1, 1))),
    (4, 4, ((1, 2), (1, 2))),  # even: pad_total 3, one row above, two below
    (2, 3, ((0, 1), (1, 1))),
])
def test_same_conv_is_valid_conv_of_zero_padded_image(kh, kw, pads):
    x, k = randn(2, 5, 5, 2), randn(kh, kw, 2, 3)
    padded = np.pad(x, ((0, 0), *pads, (0, 0)))
    assert_close(R.conv2d_forward(x, k, padding="same"), _valid_conv_by_hand(padded, k), 1e-12)


def test_strided_same_conv_pads_below_only_when_odd():
    # 6x6, kernel 3, stride 2: out 3, pad_total max(2*2 + 3 - 6, 0) = 1, all of it below
    x, k = randn(1, 6, 6, 1), randn(3, 3, 1, 1)
    full = _valid_conv_by_hand(np.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0))), k)
    assert_close(R.conv2d_forward(x, k, strides=2, padding="same"), full[:, ::2, ::2], 1e-12)


def test_conv2d_tiny_case_by_hand():
    x = np.arange(9.0).reshape(1, 3, 3, 1)  # 0 1 2 / 3 4 5 / 6 7 8
    k = np.ones((2, 2, 1, 1))
    y = R.conv2d_forward(x, k, np.array([0.5]))
    assert_close(y[0, :, :, 0], [[8.5, 12.5], [20.5, 24.5]], 0)
    dx, dk, db = R.conv2d_backward(np.ones_like(y), x, k)
    assert_close(dx[0, :, :, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]], 0)
    window_sums = [[0 + 1 + 3 + 4, 1 + 2 + 4 + 5], [3 + 4 + 6 + 7, 4 + 5 + 7 + 8]]
    assert_close(dk[:, :, 0, 0], window_sums, 0)
    assert_close(db, [4.0], 0)


# ---------------------------------------------------------------- pooling

POOL_CASES = [
    # (N, H, W, C, pool_size, strides, padding)
    (1, 7, 7, 1, 3, 2, "valid"),        # overlapping windows
    (2, 6, 7, 3, (3, 3), (2, 2), "same"),
    (1, 5, 5, 3, 2, None, "valid"),     # strides default to pool_size; last row unused
    (1, 5, 5, 1, 2, None, "same"),      # padded windows at the bottom and right
    (2, 6, 5, 3, (3, 2), (1, 2), "same"),
    (1, 4, 4, 3, 4, 3, "same"),
]


def distinct_values(*shape):
    # values at least 0.1 apart, so that no finite-difference step changes a window's winner
    return rng.permutation(math.prod(shape)).reshape(shape) * 0.1 - 3.0


@pytest.mark.parametrize("n,h,w,c,pool_size,strides,padding", POOL_CASES)
def test_maxpool2d_backward_matches_finite_differences(n, h, w, c, pool_size, strides, padding):
    x = distinct_values(n, h, w, c)
    y = R.maxpool2d_forward(x, pool_size, strides, padding)
    r = randn(*y.shape)

    def loss():
        return np.sum(r * R.maxpool2d_forward(x, pool_size, strides, padding))

    dx = R.maxpool2d_backward(r, x, pool_size, strides, padding)
    assert dx.shape == x.shape and dx.dtype == np.float64
    assert_close(dx, numeric_grad(loss, x))


def test_maxpool_ties_go_to_the_first_maximum_in_row_major_order():
    x = np.array([[1.0, 5.0], [5.0, 2.0]]).reshape(1, 2, 2, 1)
    dx = R.maxpool2d_backward(np.array([[[[3.0]]]]), x)
    assert_close(dx[0, :, :, 0], [[0, 3], [0, 0]], 0)


def test_maxpool_ties_with_overlapping_windows_add_up():
    # a constant 5x5 image, 3x3 windows at stride 2: each of the four windows' winner is its
    # top-left element, at (0,0), (0,2), (2,0) and (2,2)
    x = np.ones((1, 5, 5, 1))
    dy = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 2, 2, 1)
    dx = R.maxpool2d_backward(dy, x, 3, 2)
    expected = np.zeros((5, 5))
    expected[0, 0], expected[0, 2], expected[2, 0], expected[2, 2] = 1, 2, 3, 4
    assert_close(dx[0, :, :, 0], expected, 0)
    # a window whose maximum is shared with its neighbour: both windows send it their gradient
    x = np.zeros((1, 1, 5, 1))
    x[0, 0, 2, 0] = 1.0
    dx = R.maxpool2d_backward(np.array([1.0, 10.0]).reshape(1, 1, 2, 1), x, (1, 3), (1, 2))
    assert_close(dx[0, 0, :, 0], [0, 0, 11, 0, 0], 0)


def test_maxpool_padding_never_wins():
    x = -np.arange(1.0, 10.0).reshape(1, 3, 3, 1)  # all negative: a zero pad would win
    y = R.maxpool2d_forward(x, 2, padding="same")  # out 2x2, one padded row/column below/right
    assert_close(y[0, :, :, 0], [[-1, -3], [-7, -9]], 0)
    dx = R.maxpool2d_backward(np.ones_like(y), x, 2, padding="same")
    assert_close(dx[0, :, :, 0], [[1, 0, 1], [0, 0, 0], [1, 0, 1]], 0)


# ---------------------------------------------------------------- dense and upsampling

@pytest.mark.parametrize("n,fan_in,units,with_bias", [(1, 4, 3, True), (3, 5, 2, False),
                                                      (2, 1, 1, True)])
def test_dense_backward_matches_finite_differences(n, fan_in, units, with_bias):
    x, w = randn(n, fan_in), randn(fan_in, units)
    b = randn(units) if with_bias else None
    r = randn(n, units)

    def loss():
        return np.sum(r * R.dense_forward(x, w, b))

    dx, dw, db = R.dense_backward(r, x, w)
    assert_close(dx, numeric_grad(loss, x))
    assert_close(dw, numeric_grad(loss, w))
    if with_bias:
        assert_close(db, numeric_grad(loss, b))


@pytest.mark.parametrize("size", [2, (3, 2), (1, 1)])
def test_upsampling2d_backward_matches_finite_differences(size):
    x = randn(2, 3, 2, 3)
    y = R.upsampling2d_forward(x, size)
    r = randn(*y.shape)
    dx = R.upsampling2d_backward(r, size)
    assert_close(dx, numeric_grad(lambda: np.sum(r * R.upsampling2d_forward(x, size)), x))


def test_upsampling2d_by_hand():
    x = np.array([[1.0, 2.0]]).reshape(1, 1, 2, 1)
    y = R.upsampling2d_forward(x, (2, 3))
    assert_close(y[0, :, :, 0], [[1, 1, 1, 2, 2, 2], [1, 1, 1, 2, 2, 2]], 0)
    dx = R.upsampling2d_backward(np.arange(12.0).reshape(1, 2, 6, 1), (2, 3))
    assert_close(dx[0, :, :, 0], [[0 + 1 + 2 + 6 + 7 + 8, 3 + 4 + 5 + 9 + 10 + 11]], 0)


# ---------------------------------------------------------------- activations

def away_from_zero(*shape):
    # relu has a kink at 0: keep every value well clear of it
    x = randn(*shape)
    return x + np.where(x >= 0, 0.1, -0.1)


@pytest.mark.parametrize("name,shape", [("relu", (3, 4)), ("relu", (1, 2, 2, 3)),
                                        ("sigmoid", (3, 4)), ("sigmoid", (2, 2, 2, 1)),
                                        ("softmax", (3, 5)), ("softmax", (2, 3, 4)),
                                        ("softmax", (1, 1))])
def test_activation_backward_matches_finite_differences(name, shape):
    forward, backward = getattr(R, f"{name}_forward"), getattr(R, f"{name}_backward")
    x = away_from_zero(*shape)
    r = randn(*shape)
    dx = backward(r, forward(x))  # the backward pass takes the forward output
    assert_close(dx, numeric_grad(lambda: np.sum(r * forward(x)), x))


def test_activations_by_hand():
    assert_close(R.relu_forward(np.array([-1.0, 0.0, 2.0])), [0, 0, 2], 0)
    assert_close(R.sigmoid_forward(np.array([0.0, -1000.0, 1000.0])), [0.5, 0, 1], 0)
    y = R.softmax_forward(np.array([[0.0, math.log(3.0)], [1000.0, 1000.0]]))
    assert_close(y, [[0.25, 0.75], [0.5, 0.5]], 1e-12)


# ---------------------------------------------------------------- losses

@pytest.mark.parametrize("labels", ["onehot", "soft", "indices", "column"])
def test_softmax_cross_entropy_matches_finite_differences(labels):
    n, k = 4, 5
    logits = randn(n, k)
    classes = rng.integers(0, k, n)
    y_true = {"onehot": np.eye(k)[classes], "soft": R.softmax_forward(randn(n, k)),
              "indices": classes, "column": classes.reshape(n, 1)}[labels]
    loss, dlogits = R.softmax_cross_entropy(y_true, logits)
    assert isinstance(loss, float)
    assert_close(dlogits, numeric_grad(lambda: R.softmax_cross_entropy(y_true, logits)[0], logits))


def test_softmax_cross_entropy_by_hand():
    loss, dlogits = R.softmax_cross_entropy(np.array([1, 3]), np.zeros((2, 4)))
    assert loss == pytest.approx(math.log(4.0))
    assert_close(dlogits, [[0.125, -0.375, 0.125, 0.125], [0.125, 0.125, 0.125, -0.375]], 1e-7)


def test_mean_squared_error_matches_finite_differences():
    y_true, y_pred = randn(3, 4), randn(3, 4)
    loss, grad = R.mean_squared_error(y_true, y_pred)
    assert loss == pytest.approx(np.mean((y_pred - y_true) ** 2))
    assert_close(grad, numeric_grad(lambda: R.mean_squared_error(y_true, y_pred)[0], y_pred))


def test_binary_crossentropy_matches_finite_differences():
    y_true = rng.integers(0, 2, (3, 4)).astype(np.float64)
    y_true[0, 0] = 0.3  # soft targets are allowed
    y_pred = rng.uniform(0.05, 0.95, (3, 4))
    y_pred[1, 1], y_pred[2, 2] = -0.5, 1.5  # clipped: no gradient
    loss, grad = R.binary_crossentropy(y_true, y_pred)
    assert grad[1, 1] == 0 and grad[2, 2] == 0
    assert_close(grad, numeric_grad(lambda: R.binary_crossentropy(y_true, y_pred)[0], y_pred))


def test_binary_crossentropy_clips_by_hand():
    loss, grad = R.binary_crossentropy(np.array([1.0, 0.0]), np.array([0.0, 1.0]), epsilon=0.01)
    assert loss == pytest.approx(-math.log(0.01))
    assert_close(grad, [0, 0], 0)
    loss, grad = R.binary_crossentropy(np.array([1.0]), np.array([0.25]))
    assert loss == pytest.approx(-math.log(0.25))
    assert_close(grad, [(0.25 - 1) / (0.25 * 0.75)], 1e-12)


# ---------------------------------------------------------------- optimizers

def test_adam_two_steps_by_hand():
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-7
    param, m, v = np.array([1.0, -2.0]), np.zeros(2), np.zeros(2)
    g1, g2 = np.array([0.5, -1.0]), np.array([-0.25, 2.0])
    R.adam_update(param, g1, m, v, 1, learning_rate=lr)
    R.adam_update(param, g2, m, v, 2, learning_rate=lr)
    for i, p in enumerate([1.0, -2.0]):
        mi = vi = 0.0
        for step, g in [(1, g1[i]), (2, g2[i])]:
            alpha = lr * math.sqrt(1 - b2**step) / (1 - b1**step)
            mi = mi + (g - mi) * (1 - b1)
            vi = vi + (g * g - vi) * (1 - b2)
            p = p - alpha * mi / (math.sqrt(vi) + eps)
        assert param[i] == pytest.approx(p, rel=1e-12)
        assert m[i] == pytest.approx(mi, rel=1e-12) and v[i] == pytest.approx(vi, rel=1e-12)
    # the first step of Adam moves each parameter by about lr, against its gradient's sign
    param = np.zeros(2)
    R.adam_update(param, g1, np.zeros(2), np.zeros(2), 1, learning_rate=lr)
    assert_close(param, [-lr, lr], 1e-5)


def test_adam_keeps_float32_in_place():
    param, m, v = (np.ones(3, np.float32) for _ in range(3))
    before = param.copy()
    R.adam_update(param, np.array([1.0, -1.0, 0.0]), m, v, 3)  # a float64 grad is converted
    assert param.dtype == np.float32 and not np.array_equal(param, before)


def test_sgd_by_hand():
    param = np.array([1.0, 2.0])
    R.sgd_update(param, np.array([1.0, -1.0]), learning_rate=0.5)
    assert_close(param, [0.5, 2.5], 0)

    param, velocity = np.array([1.0]), np.array([0.2])
    R.sgd_update(param, np.array([1.0]), velocity, learning_rate=0.1, momentum=0.9)
    assert_close(velocity, [0.9 * 0.2 - 0.1], 1e-15)
    assert_close(param, [1.0 + 0.08], 1e-15)

    param, velocity = np.array([1.0]), np.array([0.2])
    R.sgd_update(param, np.array([1.0]), velocity, learning_rate=0.1, momentum=0.9, nesterov=True)
    assert_close(velocity, [0.08], 1e-15)
    assert_close(param, [1.0 + 0.9 * 0.08 - 0.1], 1e-15)


# ---------------------------------------------------------------- dtypes

def test_reference_keeps_float64_and_otherwise_computes_in_float32():
    x64, w64 = randn(1, 4, 4, 2), randn(3, 3, 2, 2)
    assert R.conv2d_forward(x64, w64).dtype == np.float64
    assert R.conv2d_forward(x64.astype(np.float32), w64.astype(np.float32)).dtype == np.float32
    assert R.conv2d_forward(x64.astype(np.float16), w64.astype(np.float16)).dtype == np.float32
    assert R.maxpool2d_forward(x64.astype(np.float32)).dtype == np.float32
    assert R.relu_forward(x64.astype(np.float16)).dtype == np.float32
    _, dlogits = R.softmax_cross_entropy(np.array([0]), np.zeros((1, 3), np.float32))
    assert dlogits.dtype == np.float32
    assert R.binary_crossentropy(np.array([1]), np.array([0.5], np.float32))[1].dtype == np.float32
