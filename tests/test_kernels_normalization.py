"""Batch and layer normalization kernels (cpp/normalization.cpp): the C++ ops against the NumPy
reference (1 and 2 threads), the reference gradients against float64 finite differences,
statistics of badly conditioned inputs, thread-count independence and the bindings' checks."""
import numpy as np
import pytest

import cnnkit
from cnnkit import _core, ops, reference

# (shape, axis): channels last (inner = 1, the fast path), Dense outputs, and channels in the
# middle (inner > 1); the large ones are split into chunks and run in parallel.
BN_CASES = [((8, 5, 5, 3), -1), ((6, 7), -1), ((4, 3, 5, 6), 1), ((2, 3, 4), 1),
            ((3, 4, 5), 2), ((64, 16, 16, 16), -1), ((16, 40, 9, 9), 1), ((300, 1000), 1),
            ((40, 5000), -1)]
# (shape, axis) of layer normalization: trailing axes, several axes, a middle axis.
LN_CASES = [((4, 10), -1), ((3, 5, 7), -1), ((2, 3, 4, 5), [1, 2, 3]), ((2, 3, 4, 5), [2, 3]),
            ((3, 5, 7), 1), ((2, 3, 4, 5), [1, 3]), ((512, 200), -1), ((8, 9, 9, 33), -1),
            ((40, 5000), -1)]


def rand(shape, seed, offset=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    return (offset + scale * rng.standard_normal(shape)).astype(np.float32)


def channel_vectors(c, seed):
    rng = np.random.default_rng(seed)
    gamma = (1 + 0.5 * rng.standard_normal(c)).astype(np.float32)
    beta = rng.standard_normal(c).astype(np.float32)
    return gamma, beta


def assert_close(ours, theirs, rtol=2e-5, atol=2e-5):
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol)


@pytest.mark.parametrize("shape,axis", BN_CASES)
@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_matches_reference(isa_threads, shape, axis, affine):
    x = rand(shape, 1, offset=0.5, scale=2.0)
    c = shape[axis]
    gamma, beta = channel_vectors(c, 2) if affine else (None, None)
    mm, mv = rand((c,), 3), np.abs(rand((c,), 4)) + 0.5
    mm_ref, mv_ref = mm.astype(np.float64), mv.astype(np.float64)
    y, mean, var = ops.batchnorm_forward_train(x, gamma, beta, axis, 1e-3, mm, mv, 0.9)
    ry, rmean, rvar = reference.batchnorm_forward_train(
        x.astype(np.float64), gamma, beta, axis, 1e-3, mm_ref, mv_ref, 0.9)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert_close(y, ry, 1e-4, 1e-4)
    assert_close(mean, rmean, 1e-6, 1e-6)
    assert_close(var, rvar, 1e-5, 1e-6)
    assert_close(mm, mm_ref, 1e-6, 1e-6)
    assert_close(mv, mv_ref, 1e-5, 1e-6)

    dy = rand(shape, 5)
    for training, (m, v) in ((True, (mean, var)), (False, (mm, mv))):
        got = ops.batchnorm_backward(dy, x, m, v, gamma, axis, 1e-3, training)
        want = reference.batchnorm_backward(dy.astype(np.float64), x.astype(np.float64),
                                            m, v, gamma, axis, 1e-3, training)
        for g, w in zip(got, want):
            scale = max(1.0, float(np.abs(w).max()))
            assert_close(g, w, 1e-4, 1e-4 * scale)

    yi = ops.batchnorm_forward(x, gamma, beta, mm, mv, axis, 1e-3)
    assert_close(yi, reference.batchnorm_forward(x.astype(np.float64), gamma, beta, mm, mv,
                                                 axis, 1e-3), 1e-5, 1e-5)


@pytest.mark.parametrize("shape,axis", LN_CASES)
@pytest.mark.parametrize("variant", ["affine", "plain", "rms"])
def test_layernorm_matches_reference(isa_threads, shape, axis, variant):
    x = rand(shape, 6, offset=-0.3, scale=1.5)
    axes = [axis] if isinstance(axis, int) else axis
    wshape = tuple(shape[a] for a in axes)
    rng = np.random.default_rng(7)
    gamma = beta = None
    if variant != "plain":
        gamma = (1 + 0.5 * rng.standard_normal(wshape)).astype(np.float32)
    if variant == "affine":
        beta = rng.standard_normal(wshape).astype(np.float32)
    rms = variant == "rms"
    y = ops.layernorm_forward(x, gamma, beta, axis, 1e-3, rms)
    assert_close(y, reference.layernorm_forward(x.astype(np.float64), gamma, beta, axis, 1e-3,
                                                rms), 1e-4, 1e-4)
    dy = rand(shape, 8)
    got = ops.layernorm_backward(dy, x, gamma, axis, 1e-3, rms)
    want = reference.layernorm_backward(dy.astype(np.float64), x.astype(np.float64), gamma,
                                        axis, 1e-3, rms)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        assert_close(g, w, 1e-4, 1e-4 * max(1.0, float(np.abs(w).max())))


def numeric_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return g


@pytest.mark.parametrize("shape,axis", [((5, 2, 2, 3), -1), ((3, 4, 2), 1), ((6, 4), 1)])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_reference_gradients_match_finite_differences(shape, axis, training):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    c = shape[axis]
    gamma, beta = 1 + rng.standard_normal(c), rng.standard_normal(c)
    mm, mv = rng.standard_normal(c), 0.5 + rng.random(c)
    w = rng.standard_normal(shape)  # loss = sum(w * y)

    def loss():
        if training:
            y = reference.batchnorm_forward_train(x, gamma, beta, axis, 1e-3)[0]
        else:
            y = reference.batchnorm_forward(x, gamma, beta, mm, mv, axis, 1e-3)
        return float((w * y).sum())

    if training:
        _, mean, var = reference.batchnorm_forward_train(x, gamma, beta, axis, 1e-3)
    else:
        mean, var = mm, mv
    dx, dgamma, dbeta = reference.batchnorm_backward(w, x, mean, var, gamma, axis, 1e-3, training)
    for got, value in ((dx, x), (dgamma, gamma), (dbeta, beta)):
        np.testing.assert_allclose(got, numeric_grad(loss, value), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("shape,axis", [((3, 6), -1), ((2, 3, 4), [1, 2]), ((2, 3, 4), 1)])
@pytest.mark.parametrize("rms", [False, True])
def test_layernorm_reference_gradients_match_finite_differences(shape, axis, rms):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    axes = [axis] if isinstance(axis, int) else axis
    wshape = tuple(shape[a] for a in axes)
    gamma, beta = 1 + rng.standard_normal(wshape), rng.standard_normal(wshape)
    w = rng.standard_normal(shape)

    def loss():
        return float((w * reference.layernorm_forward(x, gamma, beta, axis, 1e-3, rms)).sum())

    dx, dgamma, dbeta = reference.layernorm_backward(w, x, gamma, axis, 1e-3, rms)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dgamma, numeric_grad(loss, gamma), rtol=1e-5, atol=1e-7)
    want_dbeta = np.zeros_like(beta) if rms else numeric_grad(loss, beta)
    np.testing.assert_allclose(dbeta if not rms else 0 * dbeta, want_dbeta, rtol=1e-5, atol=1e-7)


def test_statistics_of_a_large_offset_stay_accurate():
    # values 1000 + N(0, 0.01): E[x^2] - E[x]^2 in float32 would lose the variance entirely
    x = rand((64, 8, 8, 4), 9, offset=1000.0, scale=0.01)
    _, mean, var = ops.batchnorm_forward_train(x, axis=-1)
    _, rmean, rvar = reference.batchnorm_forward_train(x.astype(np.float64), axis=-1)
    assert_close(mean, rmean, 1e-7, 0)
    assert_close(var, rvar, 1e-4, 0)
    y = ops.layernorm_forward(x.reshape(64, -1), axis=-1)
    assert_close(y, reference.layernorm_forward(x.reshape(64, -1).astype(np.float64)), 1e-2, 1e-2)


@pytest.mark.parametrize("shape,axis", [((64, 16, 16, 16), -1), ((16, 40, 9, 9), 1)])
def test_results_do_not_depend_on_the_thread_count(shape, axis):
    x, dy = rand(shape, 10, offset=3.0), rand(shape, 11)
    gamma, beta = channel_vectors(shape[axis], 12)
    old = cnnkit.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            cnnkit.set_num_threads(threads)
            y, mean, var = ops.batchnorm_forward_train(x, gamma, beta, axis)
            grads = ops.batchnorm_backward(dy, x, mean, var, gamma, axis)
            ln = ops.layernorm_backward(dy, x, None, -1)
            results.append([y, mean, var, *grads, *ln])
    finally:
        cnnkit.set_num_threads(old)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_buffers_are_written_in_place_and_checked():
    x, dy = rand((4, 3, 3, 5), 13), rand((4, 3, 3, 5), 14)
    gamma, beta = channel_vectors(5, 15)
    y, mean, var, inv = (np.empty_like(x), np.empty(5, np.float32), np.empty(5, np.float32),
                         np.empty(5, np.float32))
    got = _core.batchnorm_forward_train(x, gamma, beta, None, None, 3, 1e-3, 0.9, out=y,
                                        mean_out=mean, var_out=var, invstd_out=inv)
    assert got[0] is y and got[1] is mean and got[2] is var and got[3] is inv
    np.testing.assert_allclose(inv, 1 / np.sqrt(var + 1e-3), rtol=1e-6)
    dx, dg, db = np.empty_like(x), np.empty(5, np.float32), np.empty(5, np.float32)
    res = _core.batchnorm_backward(dy, x, mean, inv, gamma, 3, True, dx_out=dx, dgamma_out=dg,
                                   dbeta_out=db)
    assert res[0] is dx and res[1] is dg and res[2] is db
    none = _core.batchnorm_backward(dy, x, mean, inv, gamma, 3, True, need_dx=False)
    assert none[0] is None
    np.testing.assert_array_equal(none[1], dg)
    with pytest.raises(ValueError, match="out"):
        _core.batchnorm_forward_train(x, gamma, beta, None, None, 3, 1e-3, 0.9, out=x)
    with pytest.raises(ValueError, match="gamma"):
        _core.batchnorm_forward_train(x, gamma[:4], beta, None, None, 3, 1e-3, 0.9)
    with pytest.raises(ValueError, match="axis"):
        _core.batchnorm_forward_train(x, None, None, None, None, 4, 1e-3, 0.9)
    with pytest.raises(ValueError, match="moving_mean"):
        _core.batchnorm_forward_train(x, None, None, np.zeros(4, np.float32), None, 3, 1e-3, 0.9)
    frozen = np.zeros(5, np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        _core.batchnorm_forward_train(x, None, None, frozen, None, 3, 1e-3, 0.9)
    with pytest.raises(TypeError):
        _core.batchnorm_forward_train(x.astype(np.float64), None, None, None, None, 3, 1e-3, 0.9)
    with pytest.raises(ValueError, match="dy"):
        _core.layernorm_backward(dy[:2], x, mean, inv, None, 1)
    with pytest.raises(ValueError, match="norm_ndim"):
        _core.layernorm_forward(x, None, None, 5, 1e-3)


@pytest.mark.parametrize("module", [ops, reference], ids=["ops", "reference"])
@pytest.mark.parametrize("call,argument", [
    (lambda m, x: m.batchnorm_forward_train(x, axis=4), "axis"),
    (lambda m, x: m.batchnorm_forward_train(x, axis="last"), "axis"),
    (lambda m, x: m.batchnorm_forward_train(x, epsilon=0), "epsilon"),
    (lambda m, x: m.batchnorm_forward_train(x, momentum=1.5), "momentum"),
    (lambda m, x: m.batchnorm_forward_train(x, momentum="high"), "momentum"),
    (lambda m, x: m.batchnorm_forward(x, None, None, np.zeros(2), np.ones(2)), "mean"),
    (lambda m, x: m.batchnorm_backward(x, x, np.zeros(5), np.ones(5), axis=-9), "axis"),
    (lambda m, x: m.layernorm_forward(x, axis=[1, 1]), "axis"),
    (lambda m, x: m.layernorm_forward(x, axis=-5), "axis"),
    (lambda m, x: m.layernorm_forward(x, gamma=np.ones(4)), "gamma"),
    (lambda m, x: m.layernorm_backward(x, x, epsilon=-1.0), "epsilon"),
])
def test_ops_reject_bad_arguments_with_a_value_error_naming_them(module, call, argument):
    with pytest.raises(ValueError, match=argument):
        call(module, rand((2, 3, 3, 5), 16))


# ---------------------------------------------------------------- fuzz
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ = dict(derandomize=True, deadline=None, max_examples=120,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
LAYOUTS = ["C", "F", "strided", "float64"]


def laid_out(values, layout):
    """values (float32) handed over as a Fortran, strided or float64 array."""
    if layout == "F":
        return np.asfortranarray(values)
    if layout == "strided":
        return np.repeat(values, 2, axis=-1)[..., ::2]
    if layout == "float64":
        return values.astype(np.float64)
    return values


@st.composite
def normalization_case(draw):
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.sampled_from([1, 2, 3, 5, 8, 16, 17, 33])) for _ in range(ndim))
    seed = draw(st.integers(0, 2 ** 16))
    return shape, seed, draw(st.sampled_from(LAYOUTS))


def fuzz_close(ours, theirs):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-4,
                               atol=2e-4 * max(1.0, float(np.abs(theirs).max(initial=0))))


@settings(**FUZZ)
@given(case=normalization_case(), data=st.data())
def test_batchnorm_fuzz(isa_threads, case, data):
    shape, seed, layout = case
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = rand(shape, seed, scale=2.0)
    c = shape[axis]
    gamma, beta = channel_vectors(c, seed + 1)
    dy = rand(shape, seed + 2)
    y, mean, var = ops.batchnorm_forward_train(laid_out(x, layout), gamma, beta, axis)
    ry, rmean, rvar = reference.batchnorm_forward_train(x.astype(np.float64), gamma, beta, axis)
    for a, b in ((y, ry), (mean, rmean), (var, rvar)):
        fuzz_close(a, b)
    for training in (True, False):
        got = ops.batchnorm_backward(laid_out(dy, layout), x, mean, var, gamma, axis,
                                     training=training)
        want = reference.batchnorm_backward(dy.astype(np.float64), x.astype(np.float64), mean,
                                            var, gamma, axis, training=training)
        for a, b in zip(got, want):
            fuzz_close(a, b)


@settings(**FUZZ)
@given(case=normalization_case(), data=st.data())
def test_layernorm_fuzz(isa_threads, case, data):
    shape, seed, layout = case
    axes = sorted(data.draw(st.sets(st.integers(0, len(shape) - 1), min_size=1)))
    wshape = tuple(shape[a] for a in axes)
    rms = data.draw(st.booleans())
    x, dy = rand(shape, seed, offset=0.5), rand(shape, seed + 1)
    gamma, beta = rand(wshape, seed + 2, offset=1.0), rand(wshape, seed + 3)
    fuzz_close(ops.layernorm_forward(laid_out(x, layout), gamma, beta, axes, rms_scaling=rms),
               reference.layernorm_forward(x.astype(np.float64), gamma, beta, axes,
                                           rms_scaling=rms))
    got = ops.layernorm_backward(dy, laid_out(x, layout), gamma, axes, rms_scaling=rms)
    want = reference.layernorm_backward(dy.astype(np.float64), x.astype(np.float64), gamma, axes,
                                        rms_scaling=rms)
    for a, b in zip(got, want):
        fuzz_close(a, b)


# ------------------------------------------------------------------ fused ReLU
@pytest.mark.parametrize("shape,axis", [((8, 5, 5, 3), -1), ((4, 3, 5, 6), 1),
                                        ((64, 16, 16, 16), -1), ((16, 40, 9, 9), 1)])
def test_batchnorm_with_a_fused_relu_is_the_unfused_kernels_then_relu(isa_threads, shape, axis):
    """Forward relu=True == forward then relu_forward, bit for bit; backward with y == backward
    of relu_backward(dy, y), bit for bit (the mask is a select of the same values, summed in the
    same order), in training and inference, with dx and without."""
    x = rand(shape, 11, offset=0.3)
    c = shape[x.ndim + axis if axis < 0 else axis]
    gamma, beta = channel_vectors(c, 12)
    mm, mv = rand((c,), 13), np.abs(rand((c,), 14)) + 0.5
    a = axis % x.ndim
    y0, mean0, var0, inv0 = _core.batchnorm_forward_train(x, gamma, beta, mm.copy(), mv.copy(), a,
                                                          1e-3, 0.9)
    y1, mean1, var1, inv1 = _core.batchnorm_forward_train(x, gamma, beta, mm.copy(), mv.copy(), a,
                                                          1e-3, 0.9, True)
    relu0 = _core.relu_forward(y0)
    assert (y1 >= 0).all() and (y1 == 0).any() and (y1 > 0).any()
    np.testing.assert_array_equal(y1, relu0)
    for u, v in ((mean0, mean1), (var0, var1), (inv0, inv1)):
        np.testing.assert_array_equal(u, v)
    yi0, _ = _core.batchnorm_forward_infer(x, gamma, beta, mm, mv, a, 1e-3)
    yi1, _ = _core.batchnorm_forward_infer(x, gamma, beta, mm, mv, a, 1e-3, True)
    np.testing.assert_array_equal(yi1, _core.relu_forward(yi0))

    dy = rand(shape, 15)
    dy[0].flat[:3] = np.inf  # where y <= 0 an infinite gradient is masked to 0, not NaN
    for train, (m, inv, y) in ((True, (mean1, inv1, y1)), (False, (mm, inv1, yi1))):
        if not train:
            inv = (1 / np.sqrt(mv.astype(np.float64) + 1e-3)).astype(np.float32)
        dy_masked = _core.relu_backward(dy, y)
        for need_dx in (True, False):
            want = _core.batchnorm_backward(dy_masked, x, m, inv, gamma, a, train,
                                            need_dx=need_dx)
            got = _core.batchnorm_backward(dy, x, m, inv, gamma, a, train, y, need_dx=need_dx)
            for g, w in zip(got, want):
                if w is None:
                    assert g is None
                else:
                    np.testing.assert_array_equal(g, w)


def test_batchnorm_fused_relu_lets_nan_through_as_relu_forward():
    x = rand((6, 4), 21)
    x[2, 1] = np.nan
    for fused in (_core.batchnorm_forward_train(x, None, None, None, None, 1, 1e-3, 0.9, True)[0],
                  _core.batchnorm_forward_infer(x, None, None, np.zeros(4, np.float32),
                                                np.ones(4, np.float32), 1, 1e-3, True)[0]):
        assert np.isnan(fused[2, 1])
        finite = ~np.isnan(fused)
        assert (fused[finite] >= 0).all()


@pytest.mark.parametrize("shape,axis", BN_CASES[:5])
def test_batchnorm_fused_relu_ops_match_the_reference(isa_threads, shape, axis):
    x = rand(shape, 31, offset=0.2)
    c = shape[axis]
    gamma, beta = channel_vectors(c, 32)
    mm, mv = rand((c,), 33), np.abs(rand((c,), 34)) + 0.5
    y, mean, var = ops.batchnorm_forward_train(x, gamma, beta, axis, 1e-3, relu=True)
    ry, rmean, rvar = reference.batchnorm_forward_train(x.astype(np.float64), gamma, beta, axis,
                                                        1e-3, relu=True)
    assert_close(y, ry, 1e-4, 1e-4)
    yi = ops.batchnorm_forward(x, gamma, beta, mm, mv, axis, 1e-3, relu=True)
    ryi = reference.batchnorm_forward(x.astype(np.float64), gamma, beta, mm, mv, axis, 1e-3,
                                      relu=True)
    assert_close(yi, ryi, 1e-4, 1e-4)
    dy = rand(shape, 35)
    for training, (m, v, out, rout) in ((True, (mean, var, y, ry)), (False, (mm, mv, yi, ryi))):
        got = ops.batchnorm_backward(dy, x, m, v, gamma, axis, 1e-3, training, y=out)
        # the reference masks with its own output; where the two outputs straddle 0 (a value
        # within rounding of 0) the masks could differ: use the kernel's mask for both
        want = reference.batchnorm_backward(dy.astype(np.float64), x.astype(np.float64), m, v,
                                            gamma, axis, 1e-3, training, y=out)
        for g, w in zip(got, want):
            assert_close(g, w, 1e-4, 1e-4)
        assert ((rout > 0) == (out > 0)).mean() > 0.999


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_fused_relu_reference_gradients_match_finite_differences(training):
    rng = np.random.default_rng(7)
    shape, axis = (6, 2, 2, 3), -1
    x = rng.standard_normal(shape)
    c = shape[axis]
    gamma, beta = 1 + rng.standard_normal(c), rng.standard_normal(c)
    mm, mv = rng.standard_normal(c), 0.5 + rng.random(c)
    w = rng.standard_normal(shape)

    def forward():
        if training:
            return reference.batchnorm_forward_train(x, gamma, beta, axis, 1e-3, relu=True)[0]
        return reference.batchnorm_forward(x, gamma, beta, mm, mv, axis, 1e-3, relu=True)

    def loss():
        return float((w * forward()).sum())

    y = forward()
    # away from the kink: no output within the finite-difference step of 0 before the ReLU
    pre = (reference.batchnorm_forward_train(x, gamma, beta, axis, 1e-3)[0] if training
           else reference.batchnorm_forward(x, gamma, beta, mm, mv, axis, 1e-3))
    assert np.abs(pre).min() > 1e-4 and (y == 0).any()
    if training:
        _, mean, var = reference.batchnorm_forward_train(x, gamma, beta, axis, 1e-3)
    else:
        mean, var = mm, mv
    dx, dgamma, dbeta = reference.batchnorm_backward(w, x, mean, var, gamma, axis, 1e-3,
                                                     training, y=y)
    for got, value in ((dx, x), (dgamma, gamma), (dbeta, beta)):
        np.testing.assert_allclose(got, numeric_grad(loss, value), rtol=1e-5, atol=1e-7)


def test_batchnorm_backward_checks_the_fused_relu_output():
    x = rand((4, 3), 41)
    m, inv = np.zeros(3, np.float32), np.ones(3, np.float32)
    with pytest.raises(ValueError, match="y"):
        _core.batchnorm_backward(x, x, m, inv, None, 1, True, np.zeros((4, 2), np.float32))
    dx = np.empty((4, 3), np.float32)
    with pytest.raises(ValueError, match="y"):
        _core.batchnorm_backward(x.copy(), x, m, inv, None, 1, True, dx, dx_out=dx)
    with pytest.raises(TypeError):
        _core.batchnorm_backward(x, x, m, inv, None, 1, True, x.astype(np.float64))
    with pytest.raises(TypeError, match="relu"):
        ops.batchnorm_forward_train(x, relu=1)
    with pytest.raises(ValueError, match="y"):
        ops.batchnorm_backward(x, x, m, inv, y=np.zeros((3, 4), np.float32))


# ---------------------------------------------------------------- the inference fold


def _numpy_fold32(kernel, bias, gamma, beta, mean, variance, eps):
    """The fold as engine/folding.py computed it with NumPy before the kernel: float32, each
    operation rounded on its own."""
    s = np.sqrt(variance + np.float32(eps))
    s = np.float32(1.0) / s
    if gamma is not None:
        s = s * gamma
    k = (kernel.reshape(-1, len(mean)) * s).reshape(kernel.shape)
    b = (bias - mean if bias is not None else -mean) * s
    return k, (b + beta if beta is not None else b)


@pytest.mark.parametrize("kernel_shape", [(3, 3, 5, 7), (12, 9), (3, 3, 4, 2), (1, 1, 3, 16)])
@pytest.mark.parametrize("with_bias,with_gamma,with_beta", [(True, True, True),
                                                            (False, True, False),
                                                            (True, False, True),
                                                            (False, False, False)])
def test_batchnorm_fold_equals_numpy_bit_for_bit(kernel_shape, with_bias, with_gamma, with_beta):
    rng = np.random.default_rng(len(kernel_shape) + kernel_shape[-1])
    # (3, 3, 4, 2) is a depthwise kernel: 4 channels x multiplier 2 = 8 output channels.
    c = 8 if kernel_shape == (3, 3, 4, 2) else kernel_shape[-1]
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    kernel, mean = f32(*kernel_shape), f32(c)
    variance = rng.random(c).astype(np.float32) + np.float32(0.1)
    bias = f32(c) if with_bias else None
    gamma = f32(c) if with_gamma else None
    beta = f32(c) if with_beta else None
    k, b = _core.batchnorm_fold(kernel, bias, gamma, beta, mean, variance, 1e-3)
    want_k, want_b = _numpy_fold32(kernel, bias, gamma, beta, mean, variance, 1e-3)
    assert k.shape == kernel.shape and k.dtype == np.float32
    np.testing.assert_array_equal(k, want_k)
    np.testing.assert_array_equal(b, want_b)
    ref_k, ref_b = reference.batchnorm_fold(kernel.astype(np.float64), bias, gamma, beta, mean,
                                            variance, 1e-3)
    np.testing.assert_allclose(k, ref_k, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b, ref_b, rtol=1e-5, atol=1e-6)


def test_batchnorm_fold_is_the_layer_then_the_normalization():
    """conv(x, kernel') + bias' == batchnorm(conv(x, kernel) + bias), in float64."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 6, 6, 3))
    kernel, bias = rng.standard_normal((3, 3, 3, 4)), rng.standard_normal(4)
    gamma, beta, mean = rng.standard_normal(4), rng.standard_normal(4), rng.standard_normal(4)
    variance = rng.random(4) + 0.5
    k, b = reference.batchnorm_fold(kernel, bias, gamma, beta, mean, variance, 1e-3)
    want = reference.batchnorm_forward(reference.conv2d_forward(x, kernel, bias), gamma, beta,
                                       mean, variance, epsilon=1e-3)
    np.testing.assert_allclose(reference.conv2d_forward(x, k, b), want, rtol=1e-10, atol=1e-10)


def test_batchnorm_fold_checks_its_arguments():
    k, v = np.ones((3, 3, 2, 4), np.float32), np.ones(4, np.float32)
    out = np.empty_like(k)
    got, _ = _core.batchnorm_fold(k, None, None, None, v, v, 1e-3, kernel_out=out)
    assert got is out
    with pytest.raises(ValueError, match="output channels"):
        _core.batchnorm_fold(k, None, None, None, np.ones(3, np.float32), np.ones(3, np.float32), 1e-3)
    with pytest.raises(ValueError, match="variance"):
        _core.batchnorm_fold(k, None, None, None, v, np.ones(5, np.float32), 1e-3)
    with pytest.raises(ValueError, match="gamma"):
        _core.batchnorm_fold(k, None, np.ones(2, np.float32), None, v, v, 1e-3)
    with pytest.raises(ValueError, match="epsilon"):
        _core.batchnorm_fold(k, None, None, None, v, v, -1.0)
    with pytest.raises(ValueError, match="share memory"):
        _core.batchnorm_fold(k, None, None, None, v, v, 1e-3, kernel_out=k)
    with pytest.raises(ValueError, match="kernel"):
        reference.batchnorm_fold(k, None, None, None, np.ones(3), np.ones(3))
