"""The convolution kernels (cpp/conv/): conv2d with dilation and groups, conv2d_transpose and
depthwise_conv2d, forward and backward, against cnnkit.reference (float64) and against the
naive C++ loops, on every instruction set this CPU runs and 1 and 2 threads (isa_threads), on
listed and random shapes; the reference's own gradients against float64 finite differences; and
the arguments each op refuses."""
import numpy as np
import pytest

from cnnkit import _core, ops
from cnnkit import reference as R
from cnnkit.reference.conv import conv_window, transpose_window
from test_reference_gradients import numeric_grad


def rand(rng, *shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def close(a, b, tol=1e-4):
    b = np.asarray(b)
    scale = max(1.0, float(np.max(np.abs(b)))) if b.size else 1.0
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * scale)


def check_op(fwd, bwd, ref_fwd, ref_bwd, x, w, b, kwargs, rng, need_naive=True):
    """Forward and backward of the C++ op against the reference (float64) and the naive loops."""
    y = fwd(x, w, b, **kwargs)
    close(y, ref_fwd(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), **kwargs))
    if need_naive:
        close(y, fwd(x, w, b, **kwargs, _naive=True))
    dy = rand(rng, *y.shape)
    got = bwd(dy, x, w, **kwargs)
    want = ref_bwd(dy.astype(np.float64), x.astype(np.float64), w.astype(np.float64), **kwargs)
    for name, a, r in zip(("dx", "dw", "db"), got, want):
        assert a.shape == r.shape, name
        close(a, r)
    if need_naive:
        for a, r in zip(got, bwd(dy, x, w, **kwargs, _naive=True)):
            close(a, r)


# ---------------------------------------------------------------- conv2d: dilation, groups

CONV_CASES = [
    # (N, H, W, C, KH, KW, OC, strides, padding, dilation, groups)
    (2, 9, 10, 4, 3, 3, 6, 1, "valid", 2, 1),
    (1, 11, 9, 3, 3, 2, 5, 1, "same", (2, 3), 1),
    (2, 8, 8, 32, 3, 3, 40, 1, "same", 2, 1),     # dilated, wide enough for the GEMM tiles
    (2, 8, 7, 8, 3, 3, 12, 1, "same", 1, 2),
    (1, 9, 9, 12, 3, 3, 24, 2, "valid", 1, 4),
    (2, 6, 6, 64, 3, 3, 64, 1, "same", 1, 2),    # groups of 32 channels
    (1, 7, 9, 6, 2, 3, 9, (2, 1), "same", 1, 3),
    (2, 10, 10, 8, 3, 3, 8, 1, "same", 2, 8),    # groups == channels: the depthwise kernels
    (1, 8, 8, 6, 3, 3, 12, 2, "same", 1, 6),     # ... with 2 outputs per channel (naive)
    (1, 6, 5, 4, 1, 1, 8, 1, "valid", 1, 2),     # grouped 1x1
    (2, 7, 7, 3, 5, 5, 2, 1, "same", 1, 1),      # unchanged paths, through the new arguments
    (2, 6, 7, 24, 1, 1, 40, 1, "valid", 1, 1),   # pointwise: dinp as one GEMM, no col2im
    (2, 6, 7, 24, 1, 1, 40, 2, "valid", 1, 1),   # 1x1 with a stride: col2im again
]


@pytest.mark.parametrize("n,h,w,c,kh,kw,oc,strides,padding,dilation,groups", CONV_CASES)
def test_conv2d_dilation_and_groups(isa_threads, n, h, w, c, kh, kw, oc, strides, padding,
                                    dilation, groups):
    rng = np.random.default_rng(n + 3 * h + 7 * c + 11 * oc + 13 * groups)
    x, k, b = rand(rng, n, h, w, c), rand(rng, kh, kw, c // groups, oc), rand(rng, oc)
    kwargs = dict(strides=strides, padding=padding, dilation_rate=dilation, groups=groups)
    check_op(ops.conv2d_forward, ops.conv2d_backward, R.conv2d_forward, R.conv2d_backward,
             x, k, b, kwargs, rng)


def test_conv2d_fused_relu_and_partial_gradients_with_groups():
    rng = np.random.default_rng(5)
    x, k, b = rand(rng, 2, 8, 8, 8), rand(rng, 3, 3, 2, 8), rand(rng, 8)
    want = np.maximum(R.conv2d_forward(x, k, b, padding="same", dilation_rate=2, groups=4), 0)
    g = conv_window(x.shape, (3, 3), 1, "same", 2)
    y = _core.conv2d_forward(x, k, b, 1, 1, g.PT, g.PL, g.OH, g.OW, relu=True, dh=2, dw=2, groups=4)
    close(y, want)
    dy = rand(rng, *y.shape)
    full = _core.conv2d_backward(dy, x, k, 1, 1, g.PT, g.PL, dh=2, dw=2, groups=4)
    part = _core.conv2d_backward(dy, x, k, 1, 1, g.PT, g.PL, dh=2, dw=2, groups=4, need_dx=False)
    assert part[0] is None
    close(part[1], full[1])
    close(part[2], full[2])


# ---------------------------------------------------------------- conv2d_transpose

TRANSPOSE_CASES = [
    # (N, H, W, IC, KH, KW, F, strides, padding, output_padding, dilation)
    (2, 5, 6, 4, 3, 3, 6, 2, "valid", None, 1),
    (1, 4, 4, 3, 3, 3, 5, 2, "same", None, 1),
    (2, 5, 4, 8, 4, 4, 20, 2, "same", None, 1),
    (1, 3, 5, 6, 3, 3, 4, (2, 3), "valid", (1, 2), 1),
    (1, 4, 3, 5, 3, 2, 3, (3, 2), "same", (2, 1), 1),
    (2, 6, 6, 4, 3, 3, 6, 1, "same", None, 2),
    (1, 5, 5, 3, 2, 2, 4, 1, "valid", None, (2, 1)),
    (2, 4, 4, 32, 3, 3, 32, 2, "same", 1, 1),    # wide: the GEMM input gradient
    (1, 6, 5, 20, 3, 3, 2, 2, "same", None, 1),  # 2 filters: the few-output-channel path
    (1, 3, 3, 2, 5, 5, 3, 1, "same", 0, 1),
    (2, 4, 5, 3, 1, 1, 4, 2, "valid", None, 1),  # 1x1 kernel, stride 2: gaps in the output
]


@pytest.mark.parametrize("n,h,w,ic,kh,kw,f,strides,padding,output_padding,dilation",
                         TRANSPOSE_CASES)
def test_conv2d_transpose(isa_threads, n, h, w, ic, kh, kw, f, strides, padding, output_padding,
                          dilation):
    rng = np.random.default_rng(n + 3 * h + 7 * ic + 11 * f)
    x, k, b = rand(rng, n, h, w, ic), rand(rng, kh, kw, f, ic), rand(rng, f)
    kwargs = dict(strides=strides, padding=padding, output_padding=output_padding,
                  dilation_rate=dilation)
    check_op(ops.conv2d_transpose_forward, ops.conv2d_transpose_backward,
             R.conv2d_transpose_forward, R.conv2d_transpose_backward, x, k, b, kwargs, rng)


def test_conv2d_transpose_is_the_input_gradient_of_conv2d():
    rng = np.random.default_rng(2)
    x, k = rand(rng, 2, 4, 4, 3, dtype=np.float64), rand(rng, 3, 3, 5, 3, dtype=np.float64)
    y = R.conv2d_transpose_forward(x, k, strides=2, padding="same")
    assert y.shape == (2, 8, 8, 5)
    dx, _, _ = R.conv2d_backward(x, np.zeros(y.shape), k, strides=2, padding="same")
    close(y, dx, 1e-12)


# ---------------------------------------------------------------- depthwise_conv2d

DEPTHWISE_CASES = [
    # (N, H, W, C, KH, KW, DM, strides, padding, dilation)
    (2, 32, 32, 32, 3, 3, 1, 1, "same", 1),      # MobileNet's block on CIFAR-sized images
    (2, 16, 16, 64, 3, 3, 1, 2, "same", 1),
    (1, 9, 11, 24, 3, 3, 1, 1, "valid", 1),      # 24 = 16 + 8 channels
    (2, 8, 7, 37, 5, 5, 1, 1, "same", 1),        # 37 = 32 + 4 + 1
    (1, 10, 10, 3, 3, 3, 1, (2, 1), "same", 1),
    (2, 9, 9, 16, 3, 3, 1, 1, "same", 2),
    (1, 12, 10, 19, 3, 2, 1, (3, 2), "same", 1),  # a size with weights read from memory
    (1, 7, 7, 8, 7, 7, 1, 1, "same", 1),
    (2, 6, 6, 5, 3, 3, 3, 1, "same", 1),         # depth multiplier 3: the naive loops
    (1, 8, 9, 4, 4, 4, 2, 2, "valid", 1),
    (1, 5, 5, 1, 3, 3, 1, 1, "same", 1),
    (1, 4, 4, 16, 1, 1, 1, 1, "valid", 1),
    (1, 3, 3, 8, 3, 3, 1, 1, "same", 3),         # dilated taps reaching past every border
]


@pytest.mark.parametrize("n,h,w,c,kh,kw,dm,strides,padding,dilation", DEPTHWISE_CASES)
def test_depthwise_conv2d(isa_threads, n, h, w, c, kh, kw, dm, strides, padding, dilation):
    rng = np.random.default_rng(n + 3 * h + 7 * c + 11 * dm + 13 * kh)
    x, k, b = rand(rng, n, h, w, c), rand(rng, kh, kw, c, dm), rand(rng, c * dm)
    kwargs = dict(strides=strides, padding=padding, dilation_rate=dilation)
    check_op(ops.depthwise_conv2d_forward, ops.depthwise_conv2d_backward,
             R.depthwise_conv2d_forward, R.depthwise_conv2d_backward, x, k, b, kwargs, rng)


def test_depthwise_fused_relu_no_bias_and_no_dx(isa_threads):
    rng = np.random.default_rng(8)
    x, k = rand(rng, 2, 9, 9, 24), rand(rng, 3, 3, 24, 1)
    g = conv_window(x.shape, (3, 3), 1, "same")
    args = (1, 1, 1, 1, g.PT, g.PL, g.OH, g.OW)
    y = _core.depthwise_conv2d_forward(x, k, None, *args, relu=True)
    close(y, np.maximum(R.depthwise_conv2d_forward(x, k, padding="same"), 0))
    dy = rand(rng, *y.shape)
    full = _core.depthwise_conv2d_backward(dy, x, k, 1, 1, 1, 1, g.PT, g.PL)
    part = _core.depthwise_conv2d_backward(dy, x, k, 1, 1, 1, 1, g.PT, g.PL, need_dx=False)
    assert part[0] is None
    np.testing.assert_array_equal(part[1], full[1])


def test_depthwise_equals_conv2d_with_one_group_per_channel():
    rng = np.random.default_rng(3)
    x, k = rand(rng, 2, 8, 8, 6), rand(rng, 3, 3, 6, 2)
    y = ops.depthwise_conv2d_forward(x, k, padding="same")
    close(y, ops.conv2d_forward(x, k.reshape(3, 3, 1, 12), padding="same", groups=6))
    close(y, R.conv2d_forward(x, k.reshape(3, 3, 1, 12), padding="same", groups=6))


# ---------------------------------------------------------------- random shapes

def random_case(rng):
    n, h, w = rng.integers(1, 3), rng.integers(1, 12), rng.integers(1, 12)
    kh, kw = rng.integers(1, 5), rng.integers(1, 5)
    strides = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    dilation = (1, 1) if max(strides) > 1 or rng.random() < 0.4 else \
        (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    padding = "same" if rng.random() < 0.5 else "valid"
    return int(n), int(h), int(w), int(kh), int(kw), strides, dilation, padding


def fits(h, w, kh, kw, dilation, padding):
    return padding == "same" or ((kh - 1) * dilation[0] + 1 <= h and (kw - 1) * dilation[1] + 1 <= w)


@pytest.mark.parametrize("seed", range(12))
def test_random_shapes(isa_threads, seed):
    rng = np.random.default_rng(1000 + seed)
    n, h, w, kh, kw, strides, dilation, padding = random_case(rng)
    if not fits(h, w, kh, kw, dilation, padding):
        padding = "same"
    groups = int(rng.choice([1, 2, 3]))
    c, oc = groups * int(rng.integers(1, 9)), groups * int(rng.integers(1, 9))
    x, b = rand(rng, n, h, w, c), rand(rng, oc)
    kwargs = dict(strides=strides, padding=padding, dilation_rate=dilation, groups=groups)
    check_op(ops.conv2d_forward, ops.conv2d_backward, R.conv2d_forward, R.conv2d_backward,
             x, rand(rng, kh, kw, c // groups, oc), b, kwargs, rng)

    dm = int(rng.choice([1, 1, 2]))
    kwargs = dict(strides=strides, padding=padding, dilation_rate=dilation)
    check_op(ops.depthwise_conv2d_forward, ops.depthwise_conv2d_backward,
             R.depthwise_conv2d_forward, R.depthwise_conv2d_backward, x,
             rand(rng, kh, kw, c, dm), rand(rng, c * dm), kwargs, rng)

    output_padding = None
    if rng.random() < 0.5:
        output_padding = tuple(int(rng.integers(0, s)) for s in strides)
    kwargs = dict(strides=strides, padding=padding, output_padding=output_padding,
                  dilation_rate=dilation)
    f = int(rng.integers(1, 7))
    try:
        transpose_window(x.shape, (kh, kw), f, strides, padding, output_padding, dilation)
    except ValueError:  # an empty output ('same', even kernel, output_padding 0, 1 pixel)
        kwargs["padding"] = "valid"
    check_op(ops.conv2d_transpose_forward, ops.conv2d_transpose_backward,
             R.conv2d_transpose_forward, R.conv2d_transpose_backward, x,
             rand(rng, kh, kw, f, c), rand(rng, f), kwargs, rng)


# ---------------------------------------------------------------- the reference's gradients


def check_reference_gradients(fwd, bwd, x, w, b, kwargs, rng):
    dy = rng.standard_normal(fwd(x, w, b, **kwargs).shape)
    dx, dw, db = bwd(dy, x, w, **kwargs)
    loss = lambda: float(np.sum(fwd(x, w, b, **kwargs) * dy))  # noqa: E731
    for analytic, array in ((dx, x), (dw, w), (db, b)):
        np.testing.assert_allclose(analytic, numeric_grad(loss, array), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kwargs,c,oc", [
    (dict(strides=1, padding="same", dilation_rate=2, groups=1), 2, 3),
    (dict(strides=2, padding="valid", dilation_rate=1, groups=2), 4, 2),
    (dict(strides=(1, 2), padding="same", dilation_rate=1, groups=3), 3, 6),
])
def test_reference_conv2d_gradients(kwargs, c, oc):
    rng = np.random.default_rng(c + oc)
    x, w, b = (rng.standard_normal(s) for s in ((2, 5, 6, c), (3, 2, c // kwargs["groups"], oc), (oc,)))
    check_reference_gradients(R.conv2d_forward, R.conv2d_backward, x, w, b, kwargs, rng)


@pytest.mark.parametrize("kwargs", [
    dict(strides=2, padding="same", output_padding=None, dilation_rate=1),
    dict(strides=(2, 3), padding="valid", output_padding=(1, 2), dilation_rate=1),
    dict(strides=1, padding="same", output_padding=None, dilation_rate=2),
])
def test_reference_conv2d_transpose_gradients(kwargs):
    rng = np.random.default_rng(7)
    x, w, b = (rng.standard_normal(s) for s in ((2, 3, 4, 2), (3, 2, 3, 2), (3,)))
    check_reference_gradients(R.conv2d_transpose_forward, R.conv2d_transpose_backward, x, w, b,
                              kwargs, rng)


@pytest.mark.parametrize("kwargs,dm", [
    (dict(strides=1, padding="same", dilation_rate=1), 1),
    (dict(strides=2, padding="valid", dilation_rate=1), 2),
    (dict(strides=1, padding="same", dilation_rate=(2, 1)), 1),
])
def test_reference_depthwise_gradients(kwargs, dm):
    rng = np.random.default_rng(dm)
    x, w, b = (rng.standard_normal(s) for s in ((2, 5, 6, 3), (3, 3, 3, dm), (3 * dm,)))
    check_reference_gradients(R.depthwise_conv2d_forward, R.depthwise_conv2d_backward, x, w, b,
                              kwargs, rng)


def test_reference_keeps_float64():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 4, 4, 2)), rng.standard_normal((3, 3, 2, 1))
    assert R.depthwise_conv2d_forward(x, w).dtype == np.float64
    assert R.conv2d_transpose_forward(x, rng.standard_normal((3, 3, 2, 2))).dtype == np.float64
    assert R.conv2d_forward(x, rng.standard_normal((3, 3, 1, 2)), groups=2).dtype == np.float64


# ---------------------------------------------------------------- refused arguments

X = np.zeros((1, 6, 6, 4), np.float32)


@pytest.mark.parametrize("call,words", [
    (lambda m: m.conv2d_forward(X, np.zeros((3, 3, 2, 6)), groups=3), ["groups=3", "divide"]),
    (lambda m: m.conv2d_forward(X, np.zeros((3, 3, 2, 5)), groups=2), ["groups=2", "filters"]),
    (lambda m: m.conv2d_forward(X, np.zeros((3, 3, 4, 6)), groups=2), ["channels", "per group"]),
    (lambda m: m.conv2d_forward(X, np.zeros((3, 3, 4, 6)), groups=0), ["groups"]),
    (lambda m: m.conv2d_forward(X, np.zeros((3, 3, 4, 6)), dilation_rate=0), ["dilation_rate"]),
    (lambda m: m.conv2d_forward(X, np.zeros((3, 3, 4, 6)), dilation_rate=3), ["dilated to 7x7"]),
    (lambda m: m.conv2d_transpose_forward(X, np.zeros((3, 3, 2, 4)), strides=2, output_padding=2),
     ["output_padding", "strides"]),
    (lambda m: m.conv2d_transpose_forward(X, np.zeros((3, 3, 2, 3))), ["4 channels", "expects 3"]),
    (lambda m: m.depthwise_conv2d_forward(X, np.zeros((3, 3, 3, 1))), ["4 channels", "expects 3"]),
    (lambda m: m.depthwise_conv2d_forward(X, np.zeros((7, 7, 4, 1))), ["7x7", "larger"]),
])
@pytest.mark.parametrize("module", [ops, R], ids=["ops", "reference"])
def test_bad_arguments(module, call, words):
    with pytest.raises((ValueError, TypeError)) as info:
        call(module)
    for word in words:
        assert word in str(info.value)


def test_bindings_check_what_the_kernels_trust():
    k = np.zeros((3, 3, 2, 6), np.float32)
    with pytest.raises(ValueError, match="groups"):
        _core.conv2d_forward(X, k, None, 1, 1, 0, 0, 4, 4, groups=3)
    with pytest.raises(ValueError, match="dilation"):
        _core.conv2d_forward(X, np.zeros((3, 3, 4, 6), np.float32), None, 1, 1, 0, 0, 4, 4, dh=0)
    with pytest.raises(ValueError, match="past the input"):
        _core.depthwise_conv2d_forward(X, np.zeros((3, 3, 4, 1), np.float32), None, 1, 1, 1, 1,
                                       0, 0, 7, 4)
    with pytest.raises(ValueError, match="padding"):
        _core.conv2d_transpose_forward(X, np.zeros((3, 3, 2, 4), np.float32), None, 1, 1, 1, 1,
                                       3, 0, 8, 8)
