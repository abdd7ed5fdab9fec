"""The elementwise kernels (Rescaling, Normalization, SpatialDropout2D, GaussianNoise, Add): C++
against the NumPy reference on 1 and 2 threads, the reference's gradients against float64
finite differences, the bindings' checks and the ops' argument errors."""
import numpy as np
import pytest

from cnnkit import _core, ops, reference as R
from test_reference_gradients import numeric_grad

rng = np.random.default_rng(2026)


def rand(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def close(actual, expected, tol=1e-5):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=tol, atol=tol)


# (x shape, scale shape, offset shape): per channel, scalar, per pixel, a middle axis (the
# block then spans the axes after it), channels of 1, a 2-D and a 1-D input, and sizes large
# enough for OpenMP to split the work.
AFFINE_CASES = [
    ((2, 5, 4, 3), (3,), (3,)),
    ((2, 5, 4, 3), (), ()),
    ((2, 5, 4, 3), (), (3,)),
    ((2, 5, 4, 3), (5, 4, 3), (3,)),
    ((2, 5, 4, 3), (5, 1, 1), ()),
    ((3, 7, 6, 1), (1,), (1,)),
    ((4, 9), (9,), ()),
    ((11,), (), (11,)),
    ((16, 48, 48, 3), (3,), (3,)),
    ((8, 32, 32, 16), (32, 1, 16), (16,)),
]


@pytest.mark.parametrize("x_shape,scale_shape,offset_shape", AFFINE_CASES)
def test_affine_matches_reference(isa_threads, x_shape, scale_shape, offset_shape):
    x, scale, offset = rand(*x_shape), rand(*scale_shape), rand(*offset_shape)
    y = ops.affine_forward(x, scale, offset)
    assert y.dtype == np.float32 and y.shape == x.shape
    close(y, R.affine_forward(x.astype(np.float64), scale.astype(np.float64), offset))
    dy = rand(*x_shape)
    close(ops.affine_backward(dy, scale), R.affine_backward(dy.astype(np.float64), scale))


@pytest.mark.parametrize("outer,channels,inner", [(1, 1, 1), (3, 4, 5), (2, 1, 70000), (5, 7, 1),
                                                 (9000, 5, 1)])
@pytest.mark.parametrize("with_shift,with_offset", [(False, False), (True, False), (False, True),
                                                    (True, True)])
def test_affine_kernel_variants(isa_threads, outer, channels, inner, with_shift, with_offset):
    """Each of the kernel's four variants (shift and offset given or not), on both of its
    branches: the contiguous one (inner == 1) and the strided one (one value per run of `inner`
    inputs, which the ops never take, as they extend the block to the last axis)."""
    x, a, b, c = rand(outer, channels, inner), rand(channels), rand(channels), rand(channels)
    want = x.astype(np.float64)
    if with_shift:
        want = want - c[:, None]
    want = want * a[:, None] + (b[:, None] if with_offset else 0)
    got = _core.affine_forward(x, a, b if with_offset else None, outer, inner,
                               shift=c if with_shift else None)
    close(got, want)
    close(_core.affine_backward(x, a, outer, inner), x.astype(np.float64) * a[:, None])


def test_normalization_of_a_constant_channel_is_exactly_zero():
    """Keras subtracts the mean before dividing by max(sqrt(variance), 1e-7): a channel equal to
    its mean gives zeros, not the rounding noise of x / 1e-7 - mean / 1e-7."""
    x = rand(3, 4, 4, 2) + 100
    x[..., 0] = np.float32(123.456)
    y = ops.normalization_forward(x, [123.456, 100.0], [0.0, 1.0])
    assert np.all(y[..., 0] == 0)


def test_normalization_affine_form_matches_keras_formula(isa_threads):
    x = rand(4, 6, 5, 3) * 10 + 3
    mean, variance = rand(3) * 4, np.abs(rand(3)) * 9
    variance[1] = 0.0  # the epsilon floor: sqrt(0) -> 1e-7
    x[..., 1] = mean[1]  # so that (x - mean) / 1e-7 stays finite
    for invert in (False, True):
        y = ops.normalization_forward(x, mean, variance, invert=invert)
        want = R.normalization_forward(x.astype(np.float64), mean, variance, invert=invert)
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-4)
    x64, m64, v64 = x.astype(np.float64), mean.astype(np.float64), variance.astype(np.float64)
    s = np.maximum(np.sqrt(v64), 1e-7)
    close(R.normalization_forward(x64, m64, v64), (x64 - m64) / s, 1e-12)
    close(R.normalization_forward(x64, m64, v64, invert=True), m64 + x64 * s, 1e-12)


@pytest.mark.parametrize("shape", [(2, 5, 4, 3), (3, 1, 1, 1), (16, 40, 40, 8), (4, 7), (2, 3, 5)])
def test_spatial_dropout_matches_reference(isa_threads, shape):
    x, dy = rand(*shape), rand(*shape)
    mask = (rng.random((shape[0], shape[-1])) > 0.4).astype(np.float32) / np.float32(0.6)
    y = ops.spatial_dropout_forward(x, mask)
    close(y, R.spatial_dropout_forward(x.astype(np.float64), mask))
    close(ops.spatial_dropout_backward(dy, mask), R.spatial_dropout_backward(dy.astype(np.float64), mask))
    # the structure: each (image, channel) plane is entirely dropped or entirely kept and scaled
    planes = y.reshape(shape[0], -1, shape[-1])
    source = x.reshape(shape[0], -1, shape[-1])
    for n, c in np.ndindex(shape[0], shape[-1]):
        assert np.array_equal(planes[n, :, c], source[n, :, c] * mask[n, c])


@pytest.mark.parametrize("shape", [(2, 5, 4, 3), (7,), (16, 40, 40, 8)])
def test_gaussian_noise_matches_reference(isa_threads, shape):
    x, noise = rand(*shape), rand(*shape)
    close(ops.gaussian_noise_forward(x, noise, 0.3),
          R.gaussian_noise_forward(x.astype(np.float64), noise, 0.3))
    assert np.array_equal(ops.gaussian_noise_forward(x, noise, 0.0), x)


@pytest.mark.parametrize("shape", [(2, 5, 4, 3), (7,), (16, 40, 40, 8)])
def test_add_matches_reference(isa_threads, shape):
    a, b = rand(*shape), rand(*shape)
    for relu in (False, True):
        got = ops.add_forward(a, b, relu=relu)
        want = R.add_forward(a.astype(np.float64), b, relu=relu)
        close(got, want)
        assert np.array_equal(got, np.maximum(a + b, 0) if relu else a + b)  # float32 exactly
    a.flat[1], b.flat[2] = np.nan, -np.inf
    y = ops.add_forward(a, b, relu=True)
    assert np.isnan(y.flat[1]) and y.flat[2] == 0  # NaN passes the ReLU, as relu_forward


def test_reference_add_gradients_match_finite_differences():
    a, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4))
    dy = rng.standard_normal(a.shape)
    for relu in (False, True):
        y = R.add_forward(a, b, relu=relu)
        want = dy * (y > 0) if relu else dy  # Add's gradient, masked by the fused ReLU
        for x in (a, b):
            numeric = numeric_grad(lambda: np.sum(dy * R.add_forward(a, b, relu=relu)), x)
            close(want, numeric, 1e-6)


def test_results_do_not_depend_on_the_thread_count():
    import cnnkit
    x, a, b = rand(8, 64, 64, 16), rand(16), rand(16)
    mask = rng.random((8, 16)).astype(np.float32)
    old = cnnkit.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            cnnkit.set_num_threads(threads)
            results.append((ops.affine_forward(x, a, b), ops.spatial_dropout_forward(x, mask),
                            ops.gaussian_noise_forward(x, x, 0.5),
                            ops.add_forward(x, x[::-1].copy(), relu=True)))
    finally:
        cnnkit.set_num_threads(old)
    for one, two in zip(*results):
        assert np.array_equal(one, two)


# ---------------------------------------------------------------- reference gradients


@pytest.mark.parametrize("scale_shape", [(), (3,), (4, 1, 3)])
def test_reference_affine_gradient_matches_finite_differences(scale_shape):
    x = rng.standard_normal((2, 4, 2, 3))
    scale, offset = rng.standard_normal(scale_shape), rng.standard_normal((3,))
    dy = rng.standard_normal(x.shape)
    numeric = numeric_grad(lambda: np.sum(dy * R.affine_forward(x, scale, offset)), x)
    close(R.affine_backward(dy, scale), numeric, 1e-7)


def test_reference_normalization_gradient_is_the_affine_scale():
    x = rng.standard_normal((3, 2, 2, 4))
    mean, variance = rng.standard_normal(4), rng.random(4) + 0.1
    dy = rng.standard_normal(x.shape)
    for invert in (False, True):
        numeric = numeric_grad(lambda: np.sum(dy * R.normalization_forward(x, mean, variance, invert)), x)
        _, scale, _ = ops.elementwise.normalization_affine(mean, variance, invert)
        close(R.affine_backward(dy, scale), numeric, 1e-7)


def test_reference_spatial_dropout_and_noise_gradients_match_finite_differences():
    x = rng.standard_normal((2, 3, 2, 4))
    mask = (rng.random((2, 4)) > 0.5) / 0.5
    noise = rng.standard_normal(x.shape)
    dy = rng.standard_normal(x.shape)
    numeric = numeric_grad(lambda: np.sum(dy * R.spatial_dropout_forward(x, mask)), x)
    close(R.spatial_dropout_backward(dy, mask), numeric, 1e-7)
    # GaussianNoise's input gradient is dy itself (its layer returns dy)
    numeric = numeric_grad(lambda: np.sum(dy * R.gaussian_noise_forward(x, noise, 0.7)), x)
    close(dy, numeric, 1e-7)


def test_reference_keeps_float64():
    x = rng.standard_normal((2, 3))
    assert R.affine_forward(x, 2.0, 1.0).dtype == np.float64
    assert R.spatial_dropout_forward(x, np.ones((2, 3))).dtype == np.float64
    assert R.normalization_forward(x, 0.0, 1.0).dtype == np.float64


# ---------------------------------------------------------------- bindings and arguments

def test_out_buffers_are_written_in_place_and_checked():
    x, a, b = rand(2, 3, 4, 5), rand(5), rand(5)
    out = np.empty_like(x)
    assert _core.affine_forward(x, a, b, 24, 1, out=out) is out
    close(out, x.astype(np.float64) * a + b)
    mask = rand(2, 5)
    assert _core.spatial_dropout_backward(x, mask, out=out) is out
    assert _core.gaussian_noise_forward(x, x.copy(), 0.5, out=out) is out
    assert _core.add_forward(x, x.copy(), out=out) is out
    with pytest.raises(ValueError, match="share memory"):
        _core.add_forward(x, out, out=out)
    inplace, twice = x.copy(), 2 * x
    assert _core.add_forward(inplace, x, out=inplace) is inplace  # a += b
    assert np.array_equal(inplace, twice)
    flat = np.zeros(x.size + 1, np.float32)  # out one float before a: a partial overlap
    with pytest.raises(ValueError, match="a itself"):
        _core.add_forward(flat[1:].reshape(x.shape), x, out=flat[:-1].reshape(x.shape))
    with pytest.raises(ValueError, match="out"):
        _core.affine_forward(x, a, b, 24, 1, out=np.empty((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="share memory"):
        _core.affine_forward(x, a, b, 24, 1, out=x)
    with pytest.raises(TypeError):
        _core.affine_forward(x.astype(np.float64), a, b, 24, 1)


@pytest.mark.parametrize("call,match", [
    (lambda x: _core.affine_forward(x, np.ones(5, np.float32), np.ones(5, np.float32), 23, 1), "outer"),
    (lambda x: _core.affine_forward(x, np.ones(5, np.float32), np.ones(4, np.float32), 24, 1), "offset"),
    (lambda x: _core.affine_forward(x, np.ones((5, 1), np.float32), np.ones(5, np.float32), 24, 1), "scale"),
    (lambda x: _core.affine_backward(x, np.ones(5, np.float32), 0, 1), "positive"),
    (lambda x: _core.affine_backward(x, np.ones(0, np.float32), 24, 1), "empty"),
    (lambda x: _core.spatial_dropout_forward(x, np.ones((2, 4), np.float32)), "mask"),
    (lambda x: _core.spatial_dropout_forward(x[0, 0, 0], np.ones((5, 5), np.float32)), "2 axes"),
    (lambda x: _core.gaussian_noise_forward(x, x[:1].copy(), 0.1), "noise"),
    (lambda x: _core.gaussian_noise_forward(x, x.copy(), -0.1), "stddev"),
    (lambda x: _core.add_forward(x, x[:1].copy()), "b"),
])
def test_bindings_refuse_inconsistent_sizes(call, match):
    with pytest.raises(ValueError, match=match):
        call(rand(2, 3, 4, 5))


@pytest.mark.parametrize("call,match", [
    (lambda x: ops.affine_forward(x, np.ones(4), 0.0), "scale"),
    (lambda x: ops.affine_forward(x, 1.0, np.ones((2, 2, 3, 4, 5))), "offset"),
    (lambda x: ops.affine_forward(x, np.ones(5), np.ones(4)), "offset"),
    (lambda x: ops.affine_forward(x, np.nan, 0.0), "scale"),
    (lambda x: ops.affine_backward(x, np.ones(3)), "scale"),
    (lambda x: ops.normalization_forward(x, np.zeros(5), np.ones(4)), "variance"),
    (lambda x: ops.normalization_forward(x, np.zeros(5), -np.ones(5)), "variance"),
    (lambda x: ops.normalization_forward(x, np.zeros(4), np.ones(4)), "mean"),
    (lambda x: ops.spatial_dropout_forward(x, np.ones((2, 4))), "mask"),
    (lambda x: ops.spatial_dropout_backward(x, np.ones((3, 5))), "mask"),
    (lambda x: ops.gaussian_noise_forward(x, x[:1], 0.1), "noise"),
    (lambda x: ops.gaussian_noise_forward(x, x, -0.1), "stddev"),
    (lambda x: R.affine_forward(x, np.ones(4), 0.0), "scale"),
    (lambda x: R.spatial_dropout_forward(x, np.ones((2, 4))), "mask"),
    (lambda x: R.gaussian_noise_forward(x, x, -1.0), "stddev"),
    (lambda x: ops.add_forward(x, x[:1]), "b"),
    (lambda x: R.add_forward(x, x[:, :1]), "b"),
])
def test_ops_and_reference_name_the_bad_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call(rand(2, 3, 4, 5))


def test_ops_refuse_integer_inputs():
    with pytest.raises(TypeError, match="x"):
        ops.affine_forward(np.ones((2, 3), np.int32), 1.0, 0.0)


def test_fuzz_random_shapes_and_broadcasts():
    """Random ranks, sizes and broadcast patterns of scale and offset: ops against reference."""
    fuzz = np.random.default_rng(99)
    for _ in range(40):
        ndim = int(fuzz.integers(1, 5))
        shape = tuple(int(s) for s in fuzz.integers(1, 7, ndim))
        x = fuzz.standard_normal(shape).astype(np.float32)

        def param():
            rank = int(fuzz.integers(0, ndim + 1))
            tail = shape[ndim - rank:]
            return fuzz.standard_normal(tuple(s if fuzz.random() < 0.6 else 1 for s in tail))
        scale, offset = param(), param()
        close(ops.affine_forward(x, scale, offset), R.affine_forward(x.astype(np.float64), scale, offset))
        close(ops.affine_backward(x, scale), R.affine_backward(x.astype(np.float64), scale))
        if ndim >= 2:
            mask = fuzz.random((shape[0], shape[-1])).astype(np.float32)
            close(ops.spatial_dropout_forward(x, mask), R.spatial_dropout_forward(x.astype(np.float64), mask))
