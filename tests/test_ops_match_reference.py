"""Every cnnkit.ops function against its plain-NumPy twin in cnnkit.reference, on awkward shapes."""

import numpy as np
import pytest

from cnnkit import _core, ops, reference

RTOL, ATOL = 1e-4, 1e-4


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def assert_close(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=rtol, atol=atol)


def assert_close_to_scale(actual, expected, scale_tol=3e-5):
    """assert_close, with the absolute tolerance also a fraction of the largest expected value:
    the rounding error of a float32 sum follows the size of its terms, not of each result, so a
    result near zero among large ones carries the large ones' error. Winograd's F(4x4, 3x3)
    stays within 3e-5 of the largest output (tests/test_kernels_winograd.py)."""
    expected = np.asarray(expected)
    assert_close(actual, expected, atol=max(ATOL, scale_tol * float(np.abs(expected).max())))


# (N, H, W, C, KH, KW, OC, strides, padding): batch 1, odd sizes, C=1, C=3, strides 2 and 3,
# 'same' with even kernels, 1x1 kernels, a kernel as large as the input, the CIFAR-10 shapes.
CONV_CASES = [
    (1, 5, 5, 1, 3, 3, 1, (1, 1), "valid"),
    (2, 7, 6, 3, 3, 3, 4, (1, 1), "valid"),
    (2, 7, 9, 3, 3, 2, 5, (2, 2), "valid"),
    (3, 10, 11, 2, 3, 3, 7, (3, 3), "valid"),
    (2, 8, 8, 3, 2, 2, 4, (1, 1), "same"),
    (2, 9, 7, 4, 4, 4, 3, (2, 2), "same"),
    (1, 10, 10, 5, 4, 2, 6, (3, 2), "same"),
    (2, 6, 6, 3, 1, 1, 8, (1, 1), "valid"),
    (2, 5, 4, 2, 5, 4, 3, (1, 1), "valid"),
    (1, 5, 5, 17, 3, 3, 33, (1, 1), "same"),
    (4, 32, 32, 3, 3, 3, 32, (1, 1), "valid"),
    (4, 15, 15, 32, 3, 3, 64, (1, 1), "valid"),
]


@pytest.mark.parametrize("n,h,w,c,kh,kw,oc,strides,padding", CONV_CASES)
def test_conv2d_matches_reference(n, h, w, c, kh, kw, oc, strides, padding):
    rng = np.random.default_rng(h * 100 + kh * 10 + oc)
    x, k, b = rand(rng, n, h, w, c), rand(rng, kh, kw, c, oc), rand(rng, oc)
    y = ops.conv2d_forward(x, k, b, strides=strides, padding=padding)
    assert y.dtype == np.float32
    assert_close_to_scale(y, reference.conv2d_forward(x, k, b, strides=strides, padding=padding))
    dy = rand(rng, *y.shape)
    got = ops.conv2d_backward(dy, x, k, strides=strides, padding=padding)
    want = reference.conv2d_backward(dy, x, k, strides=strides, padding=padding)
    for g, r in zip(got, want):
        assert g.shape == r.shape
        assert_close(g, r, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("n,h,w,c,kh,kw,oc,strides,padding", CONV_CASES[:6])
def test_conv2d_naive_kernel_matches_fast_kernel(n, h, w, c, kh, kw, oc, strides, padding):
    """The C++ direct-loop kernels stay beside the fast ones as their reference."""
    rng = np.random.default_rng(7)
    x, k, b = rand(rng, n, h, w, c), rand(rng, kh, kw, c, oc), rand(rng, oc)
    y = ops.conv2d_forward(x, k, b, strides=strides, padding=padding)
    fast = ops.conv2d_backward(y, x, k, strides=strides, padding=padding)
    naive = ops.conv2d_backward(y, x, k, strides=strides, padding=padding, _naive=True)
    assert_close(ops.conv2d_forward(x, k, b, strides=strides, padding=padding, _naive=True), y)
    for f, s in zip(fast, naive):
        assert_close(f, s, rtol=1e-3, atol=1e-3)


def test_conv2d_without_bias_equals_zero_bias():
    rng = np.random.default_rng(1)
    x, k = rand(rng, 2, 6, 6, 3), rand(rng, 3, 3, 3, 4)
    assert_close(ops.conv2d_forward(x, k), ops.conv2d_forward(x, k, np.zeros(4, np.float32)))


# (N, H, W, C, pool, strides, padding): default pools, overlap (3x3 stride 2), 'same', odd sizes.
POOL_CASES = [
    (2, 4, 4, 3, (2, 2), None, "valid"),
    (1, 7, 5, 1, (2, 2), None, "valid"),
    (2, 9, 9, 4, (3, 3), (2, 2), "valid"),
    (2, 7, 8, 3, (3, 3), (2, 2), "same"),
    (1, 5, 7, 2, (2, 3), (1, 2), "same"),
    (3, 6, 6, 5, (3, 3), (3, 3), "valid"),
    (4, 30, 30, 32, (2, 2), None, "valid"),
]


@pytest.mark.parametrize("n,h,w,c,pool,strides,padding", POOL_CASES)
def test_maxpool2d_matches_reference(n, h, w, c, pool, strides, padding):
    rng = np.random.default_rng(h * 10 + c)
    x = rand(rng, n, h, w, c)
    kw = dict(pool_size=pool, strides=strides, padding=padding)
    y = ops.maxpool2d_forward(x, **kw)
    assert_close(y, reference.maxpool2d_forward(x, **kw), rtol=0, atol=0)
    dy = rand(rng, *y.shape)
    assert_close(ops.maxpool2d_backward(dy, x, **kw), reference.maxpool2d_backward(dy, x, **kw))


@pytest.mark.parametrize("pool,strides", [((2, 2), None), ((3, 3), (2, 2)), ((3, 3), (1, 1))])
def test_maxpool2d_ties_route_to_exactly_one_input(pool, strides):
    """Windows of equal values: each output's gradient goes to one input, the first maximum."""
    rng = np.random.default_rng(3)
    x = np.round(rng.uniform(0, 2, size=(2, 7, 7, 3))).astype(np.float32)  # many ties
    x[0] = 1.0  # a whole image of ties
    kw = dict(pool_size=pool, strides=strides)
    dy = np.ones_like(ops.maxpool2d_forward(x, **kw))
    dx = ops.maxpool2d_backward(dy, x, **kw)
    assert dx.sum() == pytest.approx(dy.size)  # exactly one winner per window
    assert_close(dx, reference.maxpool2d_backward(dy, x, **kw), rtol=0, atol=0)
    # In the all-ties image each window's winner is its own top-left corner.
    step = strides or pool
    origins = np.zeros((7, 7, 3), np.float32)
    origins[: dy.shape[1] * step[0]: step[0], : dy.shape[2] * step[1]: step[1]] = 1.0
    assert_close(dx[0], origins, rtol=0, atol=0)


def test_maxpool2d_propagates_nan_from_the_first_nan_in_a_window():
    x = np.arange(2 * 4 * 4 * 1, dtype=np.float32).reshape(2, 4, 4, 1)
    x[0, 1, 0, 0] = x[0, 0, 1, 0] = np.nan
    y = ops.maxpool2d_forward(x)
    assert np.isnan(y[0, 0, 0, 0]) and np.isfinite(y[0, 1:]).all() and np.isfinite(y[1]).all()
    dx = ops.maxpool2d_backward(np.ones_like(y), x)
    assert dx[0, 0, 1, 0] == 1.0 and dx[0, 1, 0, 0] == 0.0  # row-major: (0, 1) comes first
    np.testing.assert_array_equal(dx, reference.maxpool2d_backward(np.ones_like(y), x))


@pytest.mark.parametrize("shape,size", [((2, 3, 4, 5), (2, 2)), ((1, 5, 3, 1), (3, 2)), ((2, 4, 4, 3), 3)])
def test_upsampling2d_matches_reference(shape, size):
    rng = np.random.default_rng(5)
    x = rand(rng, *shape)
    y = ops.upsampling2d_forward(x, size=size)
    assert_close(y, reference.upsampling2d_forward(x, size=size), rtol=0, atol=0)
    dy = rand(rng, *y.shape)
    assert_close(ops.upsampling2d_backward(dy, size=size), reference.upsampling2d_backward(dy, size=size))


@pytest.mark.parametrize("n,fin,fout", [(1, 1, 1), (3, 7, 5), (64, 2304, 128), (64, 128, 10), (5, 33, 65)])
def test_dense_matches_reference(n, fin, fout):
    rng = np.random.default_rng(n + fin + fout)
    x, w, b = rand(rng, n, fin), rand(rng, fin, fout), rand(rng, fout)
    y = ops.dense_forward(x, w, b)
    assert_close(y, reference.dense_forward(x, w, b), rtol=1e-4, atol=1e-3)
    assert_close(ops.dense_forward(x, w, b, _naive=True), y, rtol=1e-4, atol=1e-3)
    dy = rand(rng, n, fout)
    got, want = ops.dense_backward(dy, x, w), reference.dense_backward(dy, x, w)
    naive = ops.dense_backward(dy, x, w, _naive=True)
    for g, r, s in zip(got, want, naive):
        assert_close(g, r, rtol=1e-4, atol=1e-3)
        assert_close(s, g, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("name", ["relu", "sigmoid", "softmax"])
@pytest.mark.parametrize("shape", [(1, 1), (4, 10), (3, 5, 7), (70000,)])
def test_activations_match_reference(name, shape):
    rng = np.random.default_rng(len(shape))
    x = rand(rng, *shape) * 4
    x.flat[0] = 50.0  # large inputs must not overflow sigmoid or softmax
    y = getattr(ops, f"{name}_forward")(x)
    assert_close(y, getattr(reference, f"{name}_forward")(x), rtol=1e-5, atol=1e-6)
    dy = rand(rng, *shape)
    assert_close(getattr(ops, f"{name}_backward")(dy, y),
                 getattr(reference, f"{name}_backward")(dy, y), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("labels", ["onehot", "int", "int_column"])
def test_softmax_cross_entropy_matches_reference(labels):
    rng = np.random.default_rng(11)
    logits = rand(rng, 16, 10) * 5
    classes = rng.integers(0, 10, size=16)
    y_true = {"onehot": np.eye(10, dtype=np.float32)[classes], "int": classes,
              "int_column": classes.reshape(-1, 1)}[labels]
    loss, grad = ops.softmax_cross_entropy(y_true, logits)
    ref_loss, ref_grad = reference.softmax_cross_entropy(y_true, logits)
    assert isinstance(loss, float)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    assert_close(grad, ref_grad, rtol=1e-4, atol=1e-7)


def test_regression_losses_match_reference():
    rng = np.random.default_rng(12)
    y_true = rng.uniform(0, 1, size=(8, 6, 6, 3)).astype(np.float32)
    y_pred = rng.uniform(0, 1, size=(8, 6, 6, 3)).astype(np.float32)
    y_pred[0, 0, 0] = [0.0, 1.0, 1e-9]  # clipped by binary cross-entropy
    for name in ["mean_squared_error", "binary_crossentropy"]:
        loss, grad = getattr(ops, name)(y_true, y_pred)
        ref_loss, ref_grad = getattr(reference, name)(y_true, y_pred)
        assert loss == pytest.approx(ref_loss, rel=1e-5)
        assert_close(grad, ref_grad, rtol=1e-4, atol=1e-9)


def test_adam_matches_reference_over_several_steps():
    rng = np.random.default_rng(13)
    param = rand(rng, 3, 3, 4, 5)
    state = [param.copy(), np.zeros_like(param), np.zeros_like(param)]
    ref_state = [p.astype(np.float64) for p in state]
    for step in range(1, 6):
        grad = rand(rng, *param.shape)
        ops.adam_update(state[0], grad, state[1], state[2], step, learning_rate=0.01)
        reference.adam_update(ref_state[0], grad.astype(np.float64), ref_state[1], ref_state[2], step,
                              learning_rate=0.01)
    for got, want in zip(state, ref_state):
        assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(state[0], param)


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_matches_reference_over_several_steps(momentum, nesterov):
    rng = np.random.default_rng(14)
    param = rand(rng, 50)
    p, v = param.copy(), np.zeros_like(param)
    rp, rv = param.copy(), np.zeros_like(param)
    for _ in range(4):
        grad = rand(rng, 50)
        ops.sgd_update(p, grad, v if momentum else None, learning_rate=0.1, momentum=momentum, nesterov=nesterov)
        reference.sgd_update(rp, grad, rv if momentum else None, learning_rate=0.1, momentum=momentum,
                             nesterov=nesterov)
    assert_close(p, rp, rtol=1e-6, atol=1e-6)
    assert_close(v, rv, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("isa", ["generic", "avx2", "avx512"])
def test_every_instruction_set_this_cpu_runs_gives_the_same_convolution(isa):
    before = _core.simd_isa()
    try:
        _core.set_simd_isa(isa)
    except ValueError:
        pytest.skip(f"this CPU or build cannot run {isa} (it runs {before})")
    try:
        rng = np.random.default_rng(15)
        x, k, b = rand(rng, 3, 11, 9, 5), rand(rng, 3, 3, 5, 19), rand(rng, 19)
        y = ops.conv2d_forward(x, k, b, padding="same")
        assert_close(y, reference.conv2d_forward(x, k, b, padding="same"))
        dy = rand(rng, *y.shape)
        for g, r in zip(ops.conv2d_backward(dy, x, k, padding="same"),
                        reference.conv2d_backward(dy, x, k, padding="same")):
            assert_close(g, r, rtol=1e-3, atol=1e-3)
        d = rand(rng, 13, 37)
        w = rand(rng, 37, 21)
        assert_close(ops.dense_forward(d, w), reference.dense_forward(d, w), atol=1e-3)
    finally:
        _core.set_simd_isa(before)


def test_backward_without_the_input_gradient_gives_the_same_weight_gradients():
    rng = np.random.default_rng(16)
    x, k, dy = rand(rng, 2, 9, 9, 3), rand(rng, 3, 3, 3, 8), rand(rng, 2, 7, 7, 8)
    full = _core.conv2d_backward(dy, x, k, 1, 1, 0, 0)
    lean = _core.conv2d_backward(dy, x, k, 1, 1, 0, 0, need_dx=False)
    assert lean[0] is None
    for a, b in zip(full[1:], lean[1:]):
        np.testing.assert_array_equal(a, b)
    d, w, dd = rand(rng, 4, 6), rand(rng, 6, 5), rand(rng, 4, 5)
    full, lean = _core.dense_backward(dd, d, w), _core.dense_backward(dd, d, w, need_dx=False)
    assert lean[0] is None
    np.testing.assert_array_equal(full[1], lean[1])
