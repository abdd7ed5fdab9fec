"""Winograd's unpacked forward driver for few channels (cpp/conv/conv2d_winograd_fused.cpp): with
F(4x4, 3x3) forced, its outputs against the packed driver's (bit for bit: the two sum the same
products in the same order) and against cnnkit.reference in float64, with a bias, a residual and
a ReLU fused, on every instruction set this CPU runs and 1 and 2 threads; and its switch.
(test_kernels_winograd.py's F(4x4) tests, 16 channels and more with the tile forced, run through
it too: its NaN test among them.)
The shapes where it runs (conv2d_winograd.cpp's fused_rule: output channels a multiple of 8, C +
OC up to 64, or up to 128 on outputs of 8x8 or less) take it on AVX2; elsewhere, and on the
generic and AVX-512 instruction sets, both settings run the packed driver."""
import numpy as np
import pytest

from cnnkit import _core, ops
from cnnkit import reference as R
from cnnkit.reference.conv import conv_window

from test_kernels_conv import check_op, close, rand


@pytest.fixture
def f4_forced():
    """Winograd on, F(4x4, 3x3) forced, the unpacked driver on; all restored after the test."""
    before = (_core.winograd_enabled(), _core.winograd_tile(), _core.winograd_fused_enabled())
    _core.set_winograd(True)
    _core.set_winograd_tile(4)
    _core.set_winograd_fused(True)
    yield
    _core.set_winograd(before[0])
    _core.set_winograd_tile(before[1])
    _core.set_winograd_fused(before[2])


def both_drivers(fn):
    """fn() through the unpacked driver, then through the packed one."""
    try:
        _core.set_winograd_fused(True)
        unpacked = fn()
        _core.set_winograd_fused(False)
        packed = fn()
    finally:
        _core.set_winograd_fused(True)
    return unpacked, packed


CASES = [
    # (N, H, W, C, OC, padding)
    (2, 32, 32, 16, 16, "same"),   # ResNet-20's first stage: 128 tiles, two blocks of 96 at most
    (3, 16, 16, 32, 32, "same"),   # its second: 48 tiles, 8 rows of 6 (2 threads: 24 each)
    (4, 8, 8, 64, 64, "same"),     # its third: 16 tiles, micro-rows of 6, 6, 4
    (1, 9, 10, 16, 16, "same"),    # 4x4 tiles cut at both edges (9 = 2*4 + 1, 10 = 2*4 + 2)
    (2, 11, 7, 8, 24, "same"),     # 8 outputs after 16 (the last column block of one vector)
    (1, 6, 6, 37, 40, "same"),     # 37 inputs: the input transform's channels one at a time
    (2, 13, 13, 24, 32, "valid"),  # unpadded: 11x11 outputs
    (2, 8, 7, 32, 64, "same"),     # C + OC = 96 on an 8x7 output
    (1, 15, 15, 32, 64, "same"),   # 96 on 15x15: the packed driver
    (2, 8, 8, 16, 20, "same"),     # 20 outputs, not a multiple of 8: the packed driver
    (1, 20, 20, 64, 64, "same"),   # 128 channels on 20x20: the packed driver
]


def geometry(x, k, padding):
    g = conv_window(x.shape, k.shape[:2], (1, 1), padding, (1, 1), "test")
    return g, (g.SH, g.SW, g.PT, g.PL, g.OH, g.OW)


@pytest.mark.parametrize("n,h,w,c,oc,padding", CASES)
def test_unpacked_driver_matches_the_packed_one_and_the_reference(isa_threads, f4_forced, n, h, w,
                                                                  c, oc, padding):
    rng = np.random.default_rng(h * 1000 + c * 10 + oc)
    x, k, b = rand(rng, n, h, w, c), rand(rng, 3, 3, c, oc), rand(rng, oc)
    g, geo = geometry(x, k, padding)
    res = rand(rng, n, g.OH, g.OW, oc)
    want = R.conv2d_forward(x.astype(np.float64), k.astype(np.float64), b.astype(np.float64),
                            padding=padding)
    for relu in (False, True):
        act = (lambda v: np.maximum(v, 0)) if relu else (lambda v: v)
        for residual in (None, res):
            unpacked, packed = both_drivers(
                lambda: _core.conv2d_forward(x, k, b, *geo, relu=relu, residual=residual))
            assert np.array_equal(unpacked, packed), (relu, residual is None)
            close(unpacked, act(want + (0 if residual is None else res)))
    # and without a bias
    unpacked, packed = both_drivers(lambda: _core.conv2d_forward(x, k, None, *geo))
    assert np.array_equal(unpacked, packed)


@pytest.mark.parametrize("n,h,w,c,oc,padding", CASES[:4])
def test_unpacked_driver_in_every_pass(isa_threads, f4_forced, n, h, w, c, oc, padding):
    """The input gradient is the turned kernel's forward pass, so it runs here too; the weight
    gradient keeps its own driver. All three against the reference and the naive loops."""
    rng = np.random.default_rng(h + c + oc)
    x, k, b = rand(rng, n, h, w, c), rand(rng, 3, 3, c, oc), rand(rng, oc)
    check_op(ops.conv2d_forward, ops.conv2d_backward, R.conv2d_forward, R.conv2d_backward,
             x, k, b, dict(padding=padding), rng)


def test_unpacked_driver_switch_is_global_and_on_by_default():
    assert _core.winograd_fused_enabled()
    try:
        _core.set_winograd_fused(False)
        assert not _core.winograd_fused_enabled()
    finally:
        _core.set_winograd_fused(True)
    assert _core.winograd_fused_enabled()
