"""The pooling family's kernels (cpp/pool.cpp, cpp/pad_crop.cpp, cpp/resize.cpp): C++ against the
NumPy reference on random shapes with 1 and 2 threads, the reference's gradients against float64
finite differences, and the bindings' own checks (a direct call into _core never reads or
writes out of bounds)."""
import numpy as np
import pytest

from cnnkit import _core, ops
from cnnkit import reference as R
from test_reference_gradients import numeric_grad


def rand(rng, *shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def assert_close(actual, expected, tol=1e-5):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=tol, atol=tol)


def random_pool_case(rng):
    """(x shape, pool_size, strides, padding) with every window holding a real input."""
    padding = str(rng.choice(["valid", "same"]))
    kh, kw = (int(v) for v in rng.integers(1, 5, 2))
    sh, sw = (int(v) for v in rng.integers(1, 4, 2))
    h = int(rng.integers(kh if padding == "valid" else 1, 13))
    w = int(rng.integers(kw if padding == "valid" else 1, 13))
    shape = (int(rng.integers(1, 4)), h, w, int(rng.choice([1, 3, 8, 17, 70])))
    strides = None if rng.random() < 0.3 else (sh, sw)
    return shape, (kh, kw), strides, padding


# ---------------------------------------------------------------- C++ against the reference

@pytest.mark.parametrize("seed", range(12))
def test_avgpool2d_matches_reference_on_random_shapes(isa_threads, seed):
    rng = np.random.default_rng(seed)
    shape, pool, strides, padding = random_pool_case(rng)
    x = rand(rng, *shape)
    kw = dict(pool_size=pool, strides=strides, padding=padding)
    y = ops.avgpool2d_forward(x, **kw)
    assert_close(y, R.avgpool2d_forward(x.astype(np.float64), **kw))
    dy = rand(rng, *y.shape)
    assert_close(ops.avgpool2d_backward(dy, x, **kw), R.avgpool2d_backward(dy.astype(np.float64), x, **kw))


@pytest.mark.parametrize("seed", range(6))
def test_maxpool2d_same_matches_reference_on_random_shapes(isa_threads, seed):
    rng = np.random.default_rng(100 + seed)
    shape, pool, strides, _ = random_pool_case(rng)
    x = rand(rng, *shape)
    kw = dict(pool_size=pool, strides=strides, padding="same")
    y = ops.maxpool2d_forward(x, **kw)
    np.testing.assert_array_equal(y, R.maxpool2d_forward(x, **kw))
    dy = rand(rng, *y.shape)
    assert_close(ops.maxpool2d_backward(dy, x, **kw), R.maxpool2d_backward(dy, x, **kw))


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 5, 7), (3, 8, 8, 64), (2, 7, 9, 130),
                                   (1, 40, 40, 3), (5, 4, 4, 65)])
def test_global_pooling_matches_reference(isa_threads, shape):
    rng = np.random.default_rng(sum(shape))
    x = rand(rng, *shape)
    y = ops.global_avgpool2d_forward(x)
    assert y.shape == (shape[0], shape[3])
    assert_close(y, R.global_avgpool2d_forward(x.astype(np.float64)))
    dy = rand(rng, *y.shape)
    assert_close(ops.global_avgpool2d_backward(dy, x), R.global_avgpool2d_backward(dy, x))
    np.testing.assert_array_equal(ops.global_maxpool2d_forward(x), R.global_maxpool2d_forward(x))
    np.testing.assert_array_equal(ops.global_maxpool2d_backward(dy, x),
                                  R.global_maxpool2d_backward(dy, x))


def test_global_average_of_many_positions_stays_accurate():
    """A 300x300 image of equal values: the two-level sum keeps the mean within a few ulp."""
    x = np.full((1, 300, 300, 5), 0.1, np.float32)
    assert_close(ops.global_avgpool2d_forward(x), np.full((1, 5), 0.1), tol=1e-6)


@pytest.mark.parametrize("seed", range(8))
def test_padding_and_cropping_match_reference(isa_threads, seed):
    rng = np.random.default_rng(200 + seed)
    shape = (int(rng.integers(1, 4)), int(rng.integers(5, 10)), int(rng.integers(5, 10)),
             int(rng.choice([1, 3, 16])))
    sides = tuple(tuple(int(v) for v in rng.integers(0, 3, 2)) for _ in range(2))
    x = rand(rng, *shape)
    y = ops.zero_padding2d_forward(x, sides)
    np.testing.assert_array_equal(y, R.zero_padding2d_forward(x, sides))
    np.testing.assert_array_equal(ops.zero_padding2d_backward(y, sides), x)
    np.testing.assert_array_equal(ops.cropping2d_forward(x, sides), R.cropping2d_forward(x, sides))
    dy = rand(rng, *ops.cropping2d_forward(x, sides).shape)
    np.testing.assert_array_equal(ops.cropping2d_backward(dy, sides), R.cropping2d_backward(dy, sides))


@pytest.mark.parametrize("seed", range(8))
def test_bilinear_upsampling_matches_reference(isa_threads, seed):
    rng = np.random.default_rng(300 + seed)
    shape = (int(rng.integers(1, 4)), int(rng.integers(1, 9)), int(rng.integers(1, 9)),
             int(rng.choice([1, 3, 16, 33])))
    size = tuple(int(v) for v in rng.integers(1, 5, 2))
    x = rand(rng, *shape)
    y = ops.upsampling2d_forward(x, size, "bilinear")
    assert_close(y, R.upsampling2d_forward(x.astype(np.float64), size, "bilinear"))
    dy = rand(rng, *y.shape)
    assert_close(ops.upsampling2d_backward(dy, size, "bilinear"),
                 R.upsampling2d_backward(dy.astype(np.float64), size, "bilinear"), tol=1e-4)


def test_results_do_not_depend_on_the_thread_count():
    import cnnkit
    rng = np.random.default_rng(7)
    x = rand(rng, 6, 24, 24, 32)
    runs = []
    old = cnnkit.get_num_threads()
    try:
        for threads in (1, 2):
            cnnkit.set_num_threads(threads)
            y = ops.avgpool2d_forward(x, 3, 2, "same")
            runs.append([y, ops.avgpool2d_backward(y, x, 3, 2, "same"),
                         ops.global_avgpool2d_forward(x),
                         ops.upsampling2d_backward(ops.upsampling2d_forward(x, 2, "bilinear"), 2, "bilinear")])
    finally:
        cnnkit.set_num_threads(old)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- worked by hand

def test_same_average_pooling_divides_by_the_real_inputs():
    x = np.arange(9, dtype=np.float32).reshape(1, 3, 3, 1)
    y = R.avgpool2d_forward(x, 2, 2, "same")[0, :, :, 0]
    # windows [0,1,3,4], [2,5], [6,7], [8]: padded positions are not counted
    np.testing.assert_array_equal(y, [[2.0, 3.5], [6.5, 8.0]])
    np.testing.assert_array_equal(ops.avgpool2d_forward(x, 2, 2, "same")[0, :, :, 0], y)


def test_bilinear_upsampling_by_two_by_hand():
    x = np.array([0.0, 4.0], np.float32).reshape(1, 1, 2, 1)
    y = ops.upsampling2d_forward(x, (1, 2), "bilinear")[0, 0, :, 0]
    # samples at -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1)
    np.testing.assert_allclose(y, [0.0, 1.0, 3.0, 4.0])


# ---------------------------------------------------------------- reference gradients

GRAD_POOL_CASES = [
    ((1, 5, 5, 2), 2, None, "valid"),
    ((2, 5, 6, 1), 3, 2, "same"),
    ((1, 4, 7, 2), (2, 3), (1, 2), "same"),
    ((1, 6, 6, 1), 3, 1, "valid"),
]


@pytest.mark.parametrize("shape,pool,strides,padding", GRAD_POOL_CASES)
def test_avgpool2d_gradient_matches_finite_differences(shape, pool, strides, padding):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape)
    r = rng.standard_normal(R.avgpool2d_forward(x, pool, strides, padding).shape)
    numeric = numeric_grad(lambda: np.sum(r * R.avgpool2d_forward(x, pool, strides, padding)), x)
    assert_close(R.avgpool2d_backward(r, x, pool, strides, padding), numeric, 1e-6)


@pytest.mark.parametrize("shape", [(2, 3, 4, 2), (1, 1, 5, 3)])
def test_global_pooling_gradients_match_finite_differences(shape):
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape)
    r = rng.standard_normal((shape[0], shape[3]))
    for forward, backward in [(R.global_avgpool2d_forward, R.global_avgpool2d_backward),
                              (R.global_maxpool2d_forward, R.global_maxpool2d_backward)]:
        numeric = numeric_grad(lambda: np.sum(r * forward(x)), x)
        assert_close(backward(r, x), numeric, 1e-6)


@pytest.mark.parametrize("size", [(2, 2), (3, 1), (1, 4)])
def test_bilinear_upsampling_gradient_matches_finite_differences(size):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 4, 2))
    r = rng.standard_normal(R.upsampling2d_forward(x, size, "bilinear").shape)
    numeric = numeric_grad(lambda: np.sum(r * R.upsampling2d_forward(x, size, "bilinear")), x)
    assert_close(R.upsampling2d_backward(r, size, "bilinear"), numeric, 1e-6)


def test_padding_and_cropping_gradients_match_finite_differences():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 4, 5, 2))
    for forward, backward, sides in [(R.zero_padding2d_forward, R.zero_padding2d_backward, ((1, 0), (2, 1))),
                                     (R.cropping2d_forward, R.cropping2d_backward, ((1, 0), (2, 1)))]:
        r = rng.standard_normal(forward(x, sides).shape)
        numeric = numeric_grad(lambda: np.sum(r * forward(x, sides)), x)
        assert_close(backward(r, sides), numeric, 1e-6)


def test_reference_computes_in_float64_when_given_float64():
    x = np.random.default_rng(9).standard_normal((1, 4, 4, 2))
    for y in [R.avgpool2d_forward(x), R.global_avgpool2d_forward(x), R.global_maxpool2d_forward(x),
              R.upsampling2d_forward(x, 2, "bilinear"), R.zero_padding2d_forward(x),
              R.cropping2d_forward(x, 1)]:
        assert y.dtype == np.float64


# ---------------------------------------------------------------- argument and binding checks

@pytest.mark.parametrize("call,exc,words", [
    (lambda: ops.avgpool2d_forward(np.zeros((1, 4, 4, 1)), 0), ValueError, ["avgpool2d_forward", "pool_size"]),
    (lambda: ops.avgpool2d_forward(np.zeros((1, 4, 4, 1)), 2, (1, -1)), ValueError, ["strides"]),
    (lambda: ops.avgpool2d_forward(np.zeros((1, 4, 4, 1)), 2, padding="full"), ValueError, ["padding"]),
    (lambda: ops.avgpool2d_forward(np.zeros((1, 2, 2, 1)), 3), ValueError, ["3x3", "larger"]),
    (lambda: ops.avgpool2d_backward(np.zeros((1, 3, 3, 1)), np.zeros((1, 4, 4, 1))), ValueError, ["dy"]),
    (lambda: ops.global_avgpool2d_backward(np.zeros((1, 2)), np.zeros((1, 4, 4, 1))), ValueError, ["dy"]),
    (lambda: ops.zero_padding2d_forward(np.zeros((1, 4, 4, 1)), -1), ValueError, ["padding", "negative"]),
    (lambda: ops.zero_padding2d_forward(np.zeros((1, 4, 4, 1)), ((1, 1), 2)), TypeError, ["padding"]),
    (lambda: ops.zero_padding2d_forward(np.zeros((1, 4, 4, 1)), (1, 2, 3)), ValueError, ["padding"]),
    (lambda: ops.zero_padding2d_forward(np.zeros((1, 4, 4, 1)), ((1, 1), (1, 2, 3))), ValueError, ["padding[1]"]),
    (lambda: ops.zero_padding2d_forward(np.zeros((1, 4, 4, 1)), 1.5), TypeError, ["padding"]),
    (lambda: ops.cropping2d_forward(np.zeros((1, 4, 4, 1)), ((2, 2), (0, 0))), ValueError, ["cropping2d_forward", "too small"]),
    (lambda: ops.zero_padding2d_backward(np.zeros((1, 2, 4, 1)), 1), ValueError, ["too small"]),
    (lambda: ops.upsampling2d_forward(np.zeros((1, 4, 4, 1)), 2, "bicubic"), ValueError, ["interpolation"]),
    (lambda: ops.upsampling2d_forward(np.zeros((1, 4, 4, 1)), 2, None), TypeError, ["interpolation"]),
    (lambda: ops.upsampling2d_backward(np.zeros((1, 5, 4, 1)), 2, "bilinear"), ValueError, ["multiples"]),
])
def test_bad_arguments_name_the_argument(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def f32(*shape):
    return np.zeros(shape, np.float32)


@pytest.mark.parametrize("call,words", [
    (lambda: _core.avgpool2d_forward(f32(1, 4, 4, 1), 2, 2, 2, 2, 2, 0, 2, 2), ["padding"]),
    (lambda: _core.avgpool2d_forward(f32(1, 4, 4, 1), 2, 2, 2, 2, 0, 0, 3, 2), ["reaches past"]),
    (lambda: _core.avgpool2d_backward(f32(1, 2, 2, 1), 4, 4, 2, 2, 0, 2, 0, 0), ["strides"]),
    (lambda: _core.avgpool2d_backward(f32(1, 3, 2, 1), 4, 4, 2, 2, 2, 2, 0, 0), ["reaches past"]),
    (lambda: _core.avgpool2d_backward(f32(1, 2, 2, 1), 0, 4, 2, 2, 2, 2, 0, 0), ["height"]),
    (lambda: _core.global_avgpool2d_forward(f32(1, 4, 4)), ["4-D"]),
    (lambda: _core.global_avgpool2d_backward(f32(1, 2, 3), 2, 2), ["2-D"]),
    (lambda: _core.global_avgpool2d_backward(f32(1, 2), 2, -2), ["width"]),
    (lambda: _core.zero_padding2d_forward(f32(1, 4, 4, 1), 1, -1, 0, 0), ["negative"]),
    (lambda: _core.cropping2d_forward(f32(1, 4, 4, 1), 0, 0, 3, 1), ["too small"]),
    (lambda: _core.cropping2d_backward(f32(1, 4, 4, 1), 0, 0, -3, 1), ["negative"]),
    (lambda: _core.upsampling2d_bilinear_forward(f32(1, 4, 4, 1), 0, 1), ["size"]),
    (lambda: _core.upsampling2d_bilinear_backward(f32(1, 4, 3, 1), 2, 2), ["multiples"]),
    (lambda: _core.avgpool2d_forward(f32(1, 4, 4, 1), 2, 2, 2, 2, 0, 0, 2, 2, out=f32(1, 2, 2, 2)), ["out"]),
])
def test_bindings_refuse_what_the_kernels_cannot_take(call, words):
    with pytest.raises(ValueError) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_outputs_are_written_in_place():
    x = np.random.default_rng(0).standard_normal((2, 4, 4, 3)).astype(np.float32)
    cases = [(_core.avgpool2d_forward, (x, 2, 2, 2, 2, 0, 0, 2, 2), (2, 2, 2, 3)),
             (_core.global_avgpool2d_forward, (x,), (2, 3)),
             (_core.zero_padding2d_forward, (x, 1, 0, 2, 0), (2, 5, 6, 3)),
             (_core.cropping2d_forward, (x, 1, 0, 2, 0), (2, 3, 2, 3)),
             (_core.upsampling2d_bilinear_forward, (x, 2, 1), (2, 8, 4, 3))]
    for kernel, args, shape in cases:
        out = np.full(shape, np.nan, np.float32)
        assert kernel(*args, out=out) is out
        np.testing.assert_array_equal(out, kernel(*args))
