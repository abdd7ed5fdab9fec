"""The activation kernels (cpp/activation.cpp) against cnnkit.reference in float64, on 1 and 2
threads, odd lengths, sizes on both sides of the parallel threshold and special values (huge,
tiny, subnormal, zero, NaN, infinities); the reference gradients against float64 central finite
differences; the bindings' checks."""
import math

import numpy as np
import pytest

import cnnkit
from cnnkit import _core, ops, reference as R

rng = np.random.default_rng(12)

# name -> (keyword arguments, rtol of the float32 kernel against the float64 reference). The
# float32 input is exact, but in the far tails (gelu at x = -10: exp(-x^2/2), x^3 in the tanh
# form) the function's condition number multiplies the rounding of the argument.
ELEMENTWISE = {
    "relu": ({}, 0), "relu6": ({}, 0), "leaky_relu": ({}, 1e-7),
    "sigmoid": ({}, 3e-7), "tanh": ({}, 5e-7), "exponential": ({}, 5e-7),
    "gelu": ({}, 2e-5), "gelu_approx": ({"approximate": True}, 2e-5),
    "silu": ({}, 5e-7), "elu": ({}, 5e-7), "elu_alpha": ({"alpha": 0.5}, 5e-7), "selu": ({}, 5e-7),
    "softplus": ({}, 5e-7), "softsign": ({}, 3e-7), "hard_sigmoid": ({}, 2e-7),
    "hard_silu": ({}, 3e-7), "mish": ({}, 1e-6),
    "relu_general": ({"negative_slope": 0.1, "max_value": 4.0, "threshold": 0.5}, 3e-7),
    "relu_general_neg_threshold": ({"negative_slope": 0.3, "threshold": -1.0}, 3e-7),
}


def op_name(case):
    return {"gelu_approx": "gelu", "elu_alpha": "elu",
            "relu_general_neg_threshold": "relu_general"}.get(case, case)


SAVES_OUTPUT = {"relu", "sigmoid", "tanh", "exponential"}

SPECIALS = np.array([0.0, -0.0, 1e-40, -1e-40, 1e-30, -1e-30, 1e-7, -1e-7, 2.9999, 3.0, -3.0,
                     6.0, 0.5, 1.0, -1.0, 9.5, -9.5, 20.5, -20.5, 50.0, -50.0, 88.0, 89.5, -87.5,
                     -103.0, -110.0, 1e4, -1e4, 1e30, -1e30, 3e38, -3e38], np.float32)
NONFINITE = np.array([np.nan, np.inf, -np.inf], np.float32)


def values(n, scale=4.0, nonfinite=True):
    """n float32 values: normal ones, every special value, NaN and infinities."""
    x = (rng.standard_normal(n) * scale).astype(np.float32)
    specials = np.concatenate([SPECIALS, NONFINITE]) if nonfinite else SPECIALS
    k = min(n, len(specials))
    x[rng.choice(n, k, replace=False)] = specials[:k]
    return x


@pytest.fixture(params=[1, 2], ids=["1thr", "2thr"])
def threads(request):
    old = cnnkit.get_num_threads()
    cnnkit.set_num_threads(request.param)
    yield request.param
    cnnkit.set_num_threads(old)


def assert_matches(actual, expected, rtol, atol=1e-37, what=""):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    # A float64 value beyond float32's range is infinite in float32.
    with np.errstate(invalid="ignore"):  # NaN * inf where expected is NaN: not selected
        expected = np.where(np.abs(expected) > np.finfo(np.float32).max,
                            np.sign(expected) * np.inf, expected)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True,
                               err_msg=what)


@pytest.mark.parametrize("case", sorted(ELEMENTWISE))
@pytest.mark.parametrize("n", [1, 7, 33, 1001, 40_001])
def test_elementwise_forward_and_backward_match_reference(case, n, threads):
    params, rtol = ELEMENTWISE[case]
    name = op_name(case)
    x = values(n)
    y = getattr(ops, f"{name}_forward")(x, **params)
    assert y.dtype == np.float32 and y.shape == x.shape
    with np.errstate(all="ignore"):
        ref_y = getattr(R, f"{name}_forward")(x.astype(np.float64), **params)
    # hard_sigmoid(x) near x = -3 is x / 6 + 1/2, a cancellation: absolute error only
    assert_matches(y, ref_y, rtol, atol=1e-7 if name.startswith("hard") else 1e-37,
                   what=f"{case} forward")
    dy = rng.standard_normal(n).astype(np.float32)
    saved = y if name in SAVES_OUTPUT else x
    dx = getattr(ops, f"{name}_backward")(dy, saved, **params)
    with np.errstate(all="ignore"):
        ref_dx = getattr(R, f"{name}_backward")(dy.astype(np.float64), saved.astype(np.float64),
                                                 **params)
    # derivatives of order 1 that cross zero (silu, mish, gelu near x = -1.2): absolute error
    assert_matches(dx, ref_dx, max(rtol, 1e-6) * 4, atol=1e-7, what=f"{case} backward")


def test_every_elementwise_activation_is_tested():
    names = {op_name(c) for c in ELEMENTWISE}
    exported = {n[:-len("_forward")] for n in ops.activation.__all__ if n.endswith("_forward")}
    assert exported - names == {"softmax", "log_softmax", "prelu"}


@pytest.mark.parametrize("name", ["sigmoid", "gelu", "mish", "softplus", "elu"])
def test_results_do_not_depend_on_the_thread_count(name):
    x = values(100_003)
    old = cnnkit.get_num_threads()
    try:
        cnnkit.set_num_threads(1)
        one = getattr(ops, f"{name}_forward")(x), getattr(ops, f"{name}_backward")(x, x)
        cnnkit.set_num_threads(2)
        two = getattr(ops, f"{name}_forward")(x), getattr(ops, f"{name}_backward")(x, x)
    finally:
        cnnkit.set_num_threads(old)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_known_values():
    # exact limits and a few values by hand
    x = np.array([-np.inf, -200.0, 0.0, 200.0, np.inf], np.float32)
    np.testing.assert_array_equal(ops.sigmoid_forward(x), [0, 0, 0.5, 1, 1])
    np.testing.assert_array_equal(ops.tanh_forward(x), [-1, -1, 0, 1, 1])
    np.testing.assert_array_equal(ops.exponential_forward(x), [0, 0, 1, np.inf, np.inf])
    np.testing.assert_array_equal(ops.softplus_forward(x[1:4]), np.float32([0, math.log(2.0), 200]))
    assert ops.tanh_forward(np.float32([1e-20]))[0] == np.float32(1e-20)  # relative accuracy at 0
    assert ops.elu_forward(np.float32([-1e-20]))[0] == np.float32(-1e-20)
    np.testing.assert_allclose(ops.gelu_forward(np.float32([1.0]))[0], 0.8413447460685429, 1e-6)
    np.testing.assert_array_equal(ops.hard_sigmoid_forward(np.float32([-3, 0, 3])), [0, 0.5, 1])
    np.testing.assert_array_equal(ops.relu6_forward(np.float32([-1, 3, 7])), [0, 3, 6])
    np.testing.assert_allclose(ops.leaky_relu_forward(np.float32([-1, 2])), [-0.2, 2])


# ---------------------------------------------------------------- softmax and log_softmax

AXIS_SHAPES = [(1,), (5,), (3, 7), (2, 3, 5), (3, 5, 70), (2, 3, 4, 5), (4, 33, 257), (130, 65, 3)]


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape", AXIS_SHAPES)
def test_axis_activations_match_reference_on_every_axis(name, shape, threads):
    x = (rng.standard_normal(shape) * 5).astype(np.float32)
    x.flat[0] = 80.0  # large inputs must not overflow
    dy = rng.standard_normal(shape).astype(np.float32)
    forward, backward = getattr(ops, f"{name}_forward"), getattr(ops, f"{name}_backward")
    for axis in range(-len(shape), len(shape)):
        y = forward(x, axis)
        ref = getattr(R, f"{name}_forward")(x.astype(np.float64), axis)
        np.testing.assert_allclose(y, ref, rtol=2e-6, atol=1e-6 if name == "log_softmax" else 1e-12)
        dx = backward(dy, y, axis)
        ref_dx = getattr(R, f"{name}_backward")(dy.astype(np.float64), y.astype(np.float64), axis)
        np.testing.assert_allclose(dx, ref_dx, rtol=2e-5, atol=2e-6)
    if name == "softmax":
        np.testing.assert_allclose(forward(x, 0).sum(axis=0), 1.0, rtol=1e-5)


def test_softmax_default_axis_is_the_last_and_out_is_written_in_place():
    x = rng.standard_normal((4, 6)).astype(np.float32)
    out = np.empty_like(x)
    assert _core.softmax_forward(x, out=out) is out
    np.testing.assert_array_equal(out, ops.softmax_forward(x, -1))
    np.testing.assert_array_equal(out, ops.softmax_forward(x, 1))


@pytest.mark.parametrize("axis", [2, -3, 5])
def test_softmax_axis_out_of_range_is_a_value_error(axis):
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="axis"):
        ops.softmax_forward(x, axis)
    with pytest.raises(ValueError, match="axis"):
        _core.softmax_forward(x, axis)
    with pytest.raises(ValueError, match="axis"):
        ops.log_softmax_backward(x, x, axis)


# ---------------------------------------------------------------- PReLU

PRELU_CASES = [((4, 6), ()), ((3, 5, 7), ()), ((3, 5, 7), (1,)), ((3, 5, 7), (2,)),
               ((2, 6, 5, 3), (1, 2)), ((2, 6, 5, 3), (2,)), ((2, 6, 5, 3), (1, 3)),
               ((2, 1, 5, 3), (1, 2)), ((2, 4, 5, 3), (1, 2, 3)), ((40, 33, 31, 3), (1, 2)),
               ((37, 21, 45), ())]


def prelu_alpha(shape, shared):
    alpha_shape = [1 if i + 1 in shared else s for i, s in enumerate(shape[1:])]
    return rng.uniform(-0.5, 1.5, alpha_shape).astype(np.float32)


@pytest.mark.parametrize("shape,shared", PRELU_CASES)
def test_prelu_matches_reference(shape, shared, threads):
    x = (rng.standard_normal(shape)).astype(np.float32)
    alpha = prelu_alpha(shape, shared)
    y = ops.prelu_forward(x, alpha)
    np.testing.assert_allclose(y, R.prelu_forward(x.astype(np.float64), alpha.astype(np.float64)),
                               rtol=1e-7)
    dy = rng.standard_normal(shape).astype(np.float32)
    dx, dalpha = ops.prelu_backward(dy, x, alpha)
    rdx, rdalpha = R.prelu_backward(dy.astype(np.float64), x.astype(np.float64),
                                    alpha.astype(np.float64))
    np.testing.assert_allclose(dx, rdx, rtol=1e-7)
    assert dalpha.shape == alpha.shape
    reduced = x.size // alpha.size
    np.testing.assert_allclose(dalpha, rdalpha, rtol=1e-5, atol=1e-6 * math.sqrt(reduced))
    # need_dx=False skips dx; out buffers are written in place
    buf = np.empty_like(alpha)
    none, again = _core.prelu_backward(dy, x, alpha, need_dx=False, dalpha_out=buf)
    assert none is None and again is buf
    np.testing.assert_array_equal(buf, dalpha)


def test_prelu_dalpha_does_not_depend_on_the_thread_count():
    x = rng.standard_normal((64, 30, 30, 8)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    alpha = prelu_alpha(x.shape, (1, 2))
    old = cnnkit.get_num_threads()
    try:
        cnnkit.set_num_threads(1)
        one = ops.prelu_backward(dy, x, alpha)
        cnnkit.set_num_threads(2)
        two = ops.prelu_backward(dy, x, alpha)
    finally:
        cnnkit.set_num_threads(old)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("alpha_shape", [(3, 4), (5,), (2, 5), (1, 2, 3)])
def test_prelu_refuses_an_alpha_that_does_not_broadcast(alpha_shape):
    x = np.zeros((2, 3, 5), np.float32)
    alpha = np.zeros(alpha_shape, np.float32)
    with pytest.raises(ValueError, match="alpha"):
        ops.prelu_forward(x, alpha)
    with pytest.raises(ValueError, match="alpha"):
        _core.prelu_forward(x, alpha)
    with pytest.raises(ValueError, match="alpha"):
        _core.prelu_backward(x, x, alpha)


# ---------------------------------------------------------------- bindings' checks

@pytest.mark.parametrize("name", ["gelu", "elu", "mish", "relu_general", "tanh"])
def test_backward_refuses_a_dy_of_another_shape_and_an_overlapping_out(name):
    x = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="dy"):
        getattr(ops, f"{name}_backward")(np.zeros((4, 3), np.float32), x)
    with pytest.raises(ValueError, match="dy"):
        getattr(_core, f"{name}_backward")(np.zeros(12, np.float32), x)
    with pytest.raises(ValueError, match="share memory"):
        getattr(_core, f"{name}_forward")(x, out=x)
    with pytest.raises(TypeError):
        getattr(_core, f"{name}_forward")(x.astype(np.float64))


def test_relu_general_refuses_nonfinite_arguments():
    x = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="negative_slope"):
        _core.relu_general_forward(x, negative_slope=math.nan)
    with pytest.raises(ValueError, match="threshold"):
        ops.relu_general_forward(x, threshold=math.inf)
    with pytest.raises(ValueError, match="max_value"):
        _core.relu_general_forward(x, max_value=math.nan)
    with pytest.raises(TypeError, match="approximate"):
        ops.gelu_forward(x, approximate="yes")


# ---------------------------------------------------------------- reference gradients

def numeric_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        up = f(x)
        x[i] = old - eps
        down = f(x)
        x[i] = old
        g[i] = (up - down) / (2 * eps)
    return g


GRAD_CASES = sorted(set(ELEMENTWISE)) + ["softmax_axis0", "softmax_axis1", "log_softmax_axis0",
                                         "log_softmax_axis2"]


@pytest.mark.parametrize("case", GRAD_CASES)
def test_reference_gradients_match_finite_differences(case):
    r = np.random.default_rng(3)
    if "softmax" in case:
        name, axis = case.rsplit("_axis", 1)
        params, shape = {"axis": int(axis)}, (3, 4, 5)
    else:
        name, params, shape = op_name(case), ELEMENTWISE[case][0], (4, 5)
    x = r.uniform(-5, 5, shape)
    # keep clear of the kinks (0, the threshold, max_value, +-3 of hard_sigmoid)
    for kink in (0.0, 0.5, -1.0, 3.0, -3.0, 4.0, 6.0):
        near = np.abs(x - kink) < 0.05
        x[near] += 0.2
    dy = r.standard_normal(shape)
    forward = getattr(R, f"{name}_forward")
    backward = getattr(R, f"{name}_backward")
    y = forward(x, **params)
    saved = y if name in SAVES_OUTPUT | {"softmax", "log_softmax"} else x
    dx = backward(dy, saved, **params)
    assert dx.dtype == np.float64
    expected = numeric_grad(lambda v: float((forward(v, **params) * dy).sum()), x.copy())
    np.testing.assert_allclose(dx, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("shape,shared", [((3, 4), ()), ((2, 3, 4), (1,)), ((2, 3, 2, 2), (1, 2))])
def test_reference_prelu_gradients_match_finite_differences(shape, shared):
    r = np.random.default_rng(5)
    x = r.standard_normal(shape)
    x[np.abs(x) < 0.05] = 0.3
    alpha = r.uniform(-0.5, 1.5, [1 if i + 1 in shared else s for i, s in enumerate(shape[1:])])
    dy = r.standard_normal(shape)
    dx, dalpha = R.prelu_backward(dy, x, alpha)
    np.testing.assert_allclose(
        dx, numeric_grad(lambda v: float((R.prelu_forward(v, alpha) * dy).sum()), x.copy()),
        rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(
        dalpha, numeric_grad(lambda a: float((R.prelu_forward(x, a) * dy).sum()), alpha.copy()),
        rtol=1e-6, atol=1e-8)
