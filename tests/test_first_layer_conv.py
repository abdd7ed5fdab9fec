"""The direct convolution without packing (conv2d_few_channels.cpp: up to 16 input channels, or
with AVX2 up to 64 and 1x1 kernels up to 128 in and out; OC > 4), which reads the input in place
instead of packing im2col patches, against the naive C++ kernels and cnnkit.reference: strides,
'same' padding with even kernels, 1-64 input channels, output channels that are not whole
register tiles, images cut into several blocks of rows, no bias, fused ReLU, with and without
the input gradient, 1 and 2 threads, every micro-kernel instruction set this CPU runs."""

import numpy as np
import pytest

import cnnkit
from cnnkit import _args, _core, reference


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def close(a, b, tol=1e-4):
    scale = max(1.0, float(np.max(np.abs(b)))) if b.size else 1.0
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * scale)


# (N, H, W, C, KH, KW, OC, strides, padding). Output rows shorter and longer than a 6-pixel tile,
# OC below, at and past 16-channel tiles, 'same' padding on every side, even kernels, strides.
CASES = [
    (4, 32, 32, 3, 3, 3, 32, (1, 1), "valid"),   # the CIFAR-10 CNN's first layer
    (1, 32, 32, 3, 3, 3, 32, (1, 1), "same"),
    (2, 9, 11, 1, 3, 3, 5, (1, 1), "valid"),
    (1, 7, 8, 2, 3, 3, 16, (1, 1), "same"),
    (2, 10, 9, 3, 4, 4, 17, (2, 2), "same"),
    (1, 13, 12, 4, 5, 5, 40, (3, 3), "valid"),
    (2, 6, 7, 4, 2, 2, 8, (1, 2), "same"),
    (1, 5, 5, 3, 5, 5, 33, (1, 1), "valid"),     # one output pixel
    (3, 8, 20, 3, 3, 3, 24, (2, 1), "same"),
    (1, 4, 3, 1, 1, 1, 7, (1, 1), "valid"),      # 1x1 kernel, K = 1
    (2, 12, 14, 2, 3, 2, 31, (3, 2), "same"),
    (2, 9, 10, 5, 3, 3, 20, (1, 1), "same"),
    (1, 11, 9, 8, 2, 3, 16, (2, 1), "same"),
    (2, 8, 8, 16, 3, 3, 12, (1, 1), "valid"),
    # 'same' padding: the interior read in place, each border strip from a padded copy of its own
    (1, 2, 1, 3, 5, 5, 16, (1, 1), "same"),      # smaller than the kernel: no interior at all
    (2, 16, 16, 16, 1, 1, 32, (2, 2), "same"),   # ResNet's 1x1 shortcut: no padding
    (2, 16, 16, 16, 3, 3, 32, (2, 2), "same"),   # its strided 3x3: padded below and right only
    (1, 7, 9, 16, 3, 3, 16, (3, 3), "same"),
    (1, 3, 12, 6, 3, 5, 20, (1, 1), "same"),     # one interior row, columns 2-9 of 12
    (1, 6, 6, 17, 3, 3, 16, (1, 1), "same"),
    (2, 8, 8, 32, 3, 3, 32, (1, 1), "same"),      # ResNet-20's second stage
    (2, 9, 7, 40, 3, 3, 50, (2, 2), "same"),
    (1, 8, 8, 64, 3, 3, 64, (1, 1), "same"),
    (2, 5, 6, 64, 1, 1, 128, (1, 1), "valid"),   # pointwise
    (1, 6, 5, 128, 1, 1, 100, (2, 2), "valid"),  # pointwise, strided, 128 inputs
    (1, 40, 36, 24, 3, 3, 20, (1, 1), "same"),    # one image in blocks of a few rows
    (1, 30, 34, 40, 3, 3, 24, (2, 1), "valid"),
    (1, 5, 5, 65, 3, 3, 16, (1, 1), "same"),      # C > 64: the GEMM again
    (1, 5, 5, 129, 1, 1, 16, (1, 1), "valid"),   # 1x1, C > 128: the GEMM
    (1, 5, 5, 96, 1, 1, 160, (1, 1), "valid"),   # 1x1, OC > 128: the GEMM
    (1, 6, 6, 3, 3, 3, 1, (1, 1), "same"),       # OC <= 4: the few-output-channel path
    (3, 12, 10, 32, 3, 3, 3, (1, 1), "same"),    # an autoencoder's RGB output layer
    (2, 9, 8, 50, 3, 3, 2, (1, 1), "same"),      # rows of 150: vector tiles and a scalar tail
    (2, 11, 9, 12, 3, 3, 4, (2, 2), "valid"),
    (1, 8, 9, 7, 2, 5, 1, (1, 2), "same"),       # even kernel, rows of 35
    (2, 7, 6, 16, 1, 1, 3, (1, 1), "valid"),     # pointwise
]


@pytest.mark.parametrize("n,h,w,c,kh,kw,oc,strides,padding", CASES)
def test_few_channel_conv_matches_naive(isa_threads, n, h, w, c, kh, kw, oc, strides, padding):
    rng = np.random.default_rng(n + 7 * h + 31 * c + 101 * oc + 1009 * kh)
    x, k, b = rand(rng, n, h, w, c), rand(rng, kh, kw, c, oc), rand(rng, oc)
    g = _args.conv_geometry(x.shape, k.shape, strides, padding, "test")
    geo = (g.SH, g.SW, g.PT, g.PL)
    for bias in (b, None):
        for relu in (False, True):
            y = _core.conv2d_forward(x, k, bias, *geo, g.OH, g.OW, relu=relu)
            close(y, _core.conv2d_forward(x, k, bias, *geo, g.OH, g.OW, naive=True, relu=relu))
    close(_core.conv2d_forward(x, k, b, *geo, g.OH, g.OW),
          reference.conv2d_forward(x, k, b, strides=strides, padding=padding))
    dy = rand(rng, n, g.OH, g.OW, oc)
    naive = _core.conv2d_backward(dy, x, k, *geo, naive=True)
    got = _core.conv2d_backward(dy, x, k, *geo)
    for a, r in zip(got, naive):
        assert a.shape == r.shape
        close(a, r)
    dx, dw, db = _core.conv2d_backward(dy, x, k, *geo, need_dx=False)
    assert dx is None
    close(dw, naive[1])
    close(db, naive[2])
    want = reference.conv2d_backward(dy, x, k, strides=strides, padding=padding)
    for a, r in zip(got, want):
        close(a, r, 1e-3)


def test_few_channel_conv_relu_keeps_nan(isa_threads):
    x = np.zeros((1, 5, 5, 3), np.float32)
    x[0, 2, 2, 1] = np.nan
    k = np.ones((1, 1, 3, 20), np.float32)
    b = np.full(20, -1.0, np.float32)
    y = _core.conv2d_forward(x, k, b, 1, 1, 0, 0, 5, 5, relu=True)
    assert np.isnan(y[0, 2, 2]).all()
    assert (np.nan_to_num(y, nan=0.0) == 0).all()


def test_few_channel_conv_threads_agree():
    """The weight gradient sums per-thread partials: 1 and 2 threads agree to rounding."""
    rng = np.random.default_rng(3)
    x, k = rand(rng, 16, 32, 32, 3), rand(rng, 3, 3, 3, 32)
    dy = rand(rng, 16, 30, 30, 32)
    old = cnnkit.get_num_threads()
    try:
        out = []
        for t in (1, 2):
            cnnkit.set_num_threads(t)
            out.append(_core.conv2d_backward(dy, x, k, 1, 1, 0, 0, need_dx=False))
    finally:
        cnnkit.set_num_threads(old)
    close(out[0][1], out[1][1])


@pytest.mark.parametrize("n", [1, 3])
def test_direct_conv_blocks_agree_across_threads(n):
    """Forward outputs do not depend on how images are cut into blocks of rows for the threads
    (1 image: cut so that each thread has rows; 3: whole images); the weight gradient sums
    per-thread partials over blocks that cross image boundaries, so it agrees to rounding."""
    rng = np.random.default_rng(11 + n)
    x, k, b = rand(rng, n, 48, 40, 32), rand(rng, 3, 3, 32, 24), rand(rng, 24)
    dy = rand(rng, n, 48, 40, 24)
    old = cnnkit.get_num_threads()
    try:
        out = []
        for t in (1, 2):
            cnnkit.set_num_threads(t)
            y = _core.conv2d_forward(x, k, b, 1, 1, 1, 1, 48, 40)
            out.append((y,) + _core.conv2d_backward(dy, x, k, 1, 1, 1, 1))
    finally:
        cnnkit.set_num_threads(old)
    np.testing.assert_array_equal(out[0][0], out[1][0])
    for a, r in zip(out[0][1:], out[1][1:]):
        close(a, r)
    close(out[0][0], reference.conv2d_forward(x, k, b, padding="same"))
    close(out[0][2], out[1][2])


@pytest.mark.parametrize("n,h,w,c,oc,groups", [
    (2, 9, 8, 16, 24, 1),   # the direct kernels: the sum in the tiles' epilogue, edge tiles too
    (1, 32, 32, 16, 16, 1),  # ResNet-20's first stage: borders and interior summed alike
    (3, 8, 8, 32, 32, 1),   # a ResNet block's last convolution
    (1, 6, 6, 80, 20, 1),   # C > 64: the GEMM, then a pass for the sum
    (2, 7, 6, 12, 3, 1),    # few outputs
    (1, 6, 7, 8, 12, 2),    # groups
])
def test_conv_adds_a_residual_before_its_relu(isa_threads, n, h, w, c, oc, groups):
    rng = np.random.default_rng(n * 7 + c + oc)
    x, k, b = rand(rng, n, h, w, c), rand(rng, 3, 3, c // groups, oc), rand(rng, oc)
    res = rand(rng, n, h, w, oc)
    for relu in (False, True):
        for naive in (False, True):
            got = _core.conv2d_forward(x, k, b, 1, 1, 1, 1, h, w, relu=relu, groups=groups,
                                       residual=res, naive=naive)
            plain = _core.conv2d_forward(x, k, b, 1, 1, 1, 1, h, w, groups=groups, naive=True)
            want = plain + res
            close(got, np.maximum(want, 0) if relu else want)
    with pytest.raises(ValueError, match="residual"):
        _core.conv2d_forward(x, k, b, 1, 1, 1, 1, h, w, groups=groups, residual=res[:, :1].copy())
    out = np.empty_like(res)
    with pytest.raises(ValueError, match="share memory"):
        _core.conv2d_forward(x, k, b, 1, 1, 1, 1, h, w, groups=groups, residual=out, out=out)
