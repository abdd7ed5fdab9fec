"""Winograd's F(2x2, 3x3) (cpp/conv/conv2d_winograd.cpp) and F(4x4, 3x3) (conv2d_winograd_f4.cpp):
the 3x3 stride-1 convolutions of 24 or more channels in and out (any, with a tile size forced),
forward, input gradient and weight gradient, against cnnkit.reference
(float64, whose gradients test_kernels_conv.py checks against finite differences) and the naive
C++ loops, on every instruction set this CPU runs and 1 and 2 threads; with a fused bias, ReLU
and residual; that the path is taken where it should be and nowhere else; and that switching it
off gives the direct paths back."""
import numpy as np
import pytest

from cnnkit import _core, ops
from cnnkit import reference as R
from cnnkit.reference.conv import conv_window

from test_kernels_conv import check_op, close, rand


@pytest.fixture
def winograd():
    """Winograd on (its default), restored after the test."""
    before = _core.winograd_enabled()
    _core.set_winograd(True)
    yield
    _core.set_winograd(before)


CASES = [
    # (N, H, W, C, OC, padding): odd and even outputs (tiles past the edge), both paddings,
    # channel counts off the micro-kernels' tiles; 64+ outputs for the weight gradient's path
    (2, 8, 8, 24, 24, "same"),
    (1, 7, 9, 24, 64, "same"),      # odd sizes: the last tiles' second row and column are cut
    (2, 9, 6, 24, 67, "valid"),
    (1, 6, 6, 37, 40, "same"),
    (3, 4, 4, 32, 64, "valid"),     # one 2x2 output per image
    (2, 15, 15, 40, 72, "same"),
    (2, 24, 24, 128, 128, "same"),  # several blocks of tiles: the weight gradient sums them
    (1, 6, 6, 300, 72, "same"),     # 300 channels: two K blocks of the GEMM, 150 each
]


@pytest.mark.parametrize("n,h,w,c,oc,padding", CASES)
def test_winograd_matches_reference_and_naive(isa_threads, winograd, n, h, w, c, oc, padding):
    rng = np.random.default_rng(h * 100 + c + oc)
    x, k, b = rand(rng, n, h, w, c), rand(rng, 3, 3, c, oc), rand(rng, oc)
    check_op(ops.conv2d_forward, ops.conv2d_backward, R.conv2d_forward, R.conv2d_backward,
             x, k, b, dict(padding=padding), rng)


def geometry(x, k, padding):
    g = conv_window(x.shape, k.shape[:2], (1, 1), padding, (1, 1), "test")
    return g, (g.SH, g.SW, g.PT, g.PL, g.OH, g.OW)


@pytest.mark.parametrize("tile", [2, 4])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("with_bias", [False, True])
def test_winograd_fused_bias_relu_and_residual(isa_threads, winograd, relu, with_bias, tile):
    """Each tile size's output transform adds the bias and the residual, then the ReLU, on an
    image whose last tiles are cut on both sides."""
    rng = np.random.default_rng(7)
    x, k = rand(rng, 2, 9, 6, 24), rand(rng, 3, 3, 24, 32)
    b = rand(rng, 32) if with_bias else None
    g, geo = geometry(x, k, "same")
    res = rand(rng, 2, g.OH, g.OW, 32)
    conv = R.conv2d_forward(x.astype(np.float64), k.astype(np.float64),
                            None if b is None else b.astype(np.float64), padding="same")
    act = (lambda v: np.maximum(v, 0)) if relu else (lambda v: v)
    before = _core.winograd_tile()
    try:
        _core.set_winograd_tile(tile)
        close(_core.conv2d_forward(x, k, b, *geo, relu=relu, residual=res), act(conv + res))
        close(_core.conv2d_forward(x, k, b, *geo, relu=relu), act(conv))
    finally:
        _core.set_winograd_tile(before)


def test_winograd_relu_keeps_nan(winograd):
    """F(2x2)'s transforms skip their zero coefficients, so a NaN reaches exactly the outputs
    whose window holds it, as in the direct sum (F(4x4)'s spread over a tile: below)."""
    x = np.ones((1, 4, 4, 24), np.float32)
    x[0, 1, 1, 3] = np.nan
    k = -np.ones((3, 3, 24, 24), np.float32)
    tile = _core.winograd_tile()
    try:
        _core.set_winograd_tile(2)
        y = _core.conv2d_forward(x, k, None, 1, 1, 1, 1, 4, 4, relu=True)
    finally:
        _core.set_winograd_tile(tile)
    assert np.isnan(y[0, :3, :3]).all()  # every output whose window holds the NaN
    assert (y[0, 3, 3] == 0).all()       # the others are negative sums, zeroed


def run_both(fn):
    """fn() with Winograd on, then off."""
    before = _core.winograd_enabled()
    try:
        _core.set_winograd(True)
        on = fn()
        _core.set_winograd(False)
        off = fn()
    finally:
        _core.set_winograd(before)
    return on, off


def run_each_path(fn):
    """fn() on the measured rule (0), F(2x2) and F(4x4) forced (2, 4) and the direct paths
    ("direct"), the settings restored after."""
    before, tile = _core.winograd_enabled(), _core.winograd_tile()
    try:
        _core.set_winograd(True)
        out = {}
        for m in (0, 2, 4):
            _core.set_winograd_tile(m)
            assert _core.winograd_tile() == m
            out[m] = fn()
        _core.set_winograd(False)
        out["direct"] = fn()
    finally:
        _core.set_winograd_tile(tile)
        _core.set_winograd(before)
    return out


# (C, OC, H, kernel, extra arguments) -> whether the forward pass, the input gradient and the
# weight gradient take Winograd's path. The input gradient is the forward pass of the turned
# kernel (OC in, C out).
PATHS = [
    ((32, 64, 10, (3, 3), {}), (True, True, True)),
    ((32, 32, 10, (3, 3), {}), (True, True, False)),     # the weight gradient needs 64 outputs
    ((24, 64, 7, (3, 3), {}), (True, True, True)),       # 7x7: the grid overhangs by 31%
    ((23, 64, 10, (3, 3), {}), (False, False, False)),   # 23 input channels
    ((64, 23, 10, (3, 3), {}), (False, False, False)),   # 23 outputs
    ((32, 64, 3, (3, 3), {}), (False, False, False)),    # 3x3 images: 78% overhang
    ((32, 64, 5, (3, 3), {}), (False, False, False)),    # 5x5: 44%
    ((32, 64, 9, (5, 5), {}), (False, False, False)),
    ((32, 64, 9, (3, 1), {}), (False, False, False)),
    ((32, 64, 9, (3, 3), {"strides": 2}), (False, False, False)),
    ((32, 64, 9, (3, 3), {"dilation_rate": 2}), (False, False, False)),
]


@pytest.mark.parametrize("shape,taken", PATHS)
def test_winograd_is_taken_where_it_applies_and_off_gives_the_direct_paths(shape, taken):
    c, oc, h, kernel, kwargs = shape
    rng = np.random.default_rng(c + oc + h)
    x, k, b = rand(rng, 2, h, h, c), rand(rng, *kernel, c, oc), rand(rng, oc)

    def passes():
        y = ops.conv2d_forward(x, k, b, padding="same", **kwargs)
        dy = np.cos(np.arange(y.size, dtype=np.float32)).reshape(y.shape)
        return (y,) + tuple(ops.conv2d_backward(dy, x, k, padding="same", **kwargs))[:2]
    on, off = run_both(passes)
    for name, a, d, t in zip(("forward", "input gradient", "weight gradient"), on, off, taken):
        close(a, d)
        # Winograd's sums round differently from the direct ones: bitwise equality tells
        # which path ran.
        assert np.array_equal(a, d) != t, f"{name}: Winograd {'not ' if t else ''}taken"


def test_winograd_switch_is_global_and_reported():
    before = _core.winograd_enabled()
    try:
        _core.set_winograd(False)
        assert _core.winograd_enabled() is False
        _core.set_winograd(True)
        assert _core.winograd_enabled() is True
    finally:
        _core.set_winograd(before)


def test_winograd_is_the_default():
    assert _core.winograd_enabled() is True


def test_winograd_error_is_of_the_direct_sums_order():
    """Against float64, F(2x2, 3x3)'s error at 256 channels stays within 4x the GEMM's."""
    rng = np.random.default_rng(11)
    x, k = rand(rng, 2, 8, 8, 256), rand(rng, 3, 3, 256, 64)
    want = R.conv2d_forward(x.astype(np.float64), k.astype(np.float64), None, padding="same")
    tile = _core.winograd_tile()
    try:
        _core.set_winograd_tile(2)
        on, off = run_both(lambda: ops.conv2d_forward(x, k, None, padding="same"))
    finally:
        _core.set_winograd_tile(tile)
    err_on, err_off = np.abs(on - want).max(), np.abs(off - want).max()
    assert err_on <= 4 * err_off + 1e-6, (err_on, err_off)


# ------------------------------------------------------------------ F(4x4, 3x3)
@pytest.fixture
def winograd_f4():
    """Winograd on, its forward passes forced onto F(4x4, 3x3), both restored after the test."""
    before, tile = _core.winograd_enabled(), _core.winograd_tile()
    _core.set_winograd(True)
    _core.set_winograd_tile(4)
    yield
    _core.set_winograd_tile(tile)
    _core.set_winograd(before)


F4_CASES = CASES + [
    # 4x4 tiles cut at every remainder of 4; forced, F(4x4) takes any channel count
    (2, 9, 10, 16, 16, "same"),
    (1, 11, 5, 8, 24, "same"),
    (2, 6, 7, 3, 13, "valid"),
]


@pytest.mark.parametrize("n,h,w,c,oc,padding", F4_CASES)
def test_winograd_f4_matches_reference_and_naive(isa_threads, winograd_f4, n, h, w, c, oc, padding):
    rng = np.random.default_rng(h * 100 + c + oc + 1)
    x, k, b = rand(rng, n, h, w, c), rand(rng, 3, 3, c, oc), rand(rng, oc)
    check_op(ops.conv2d_forward, ops.conv2d_backward, R.conv2d_forward, R.conv2d_backward,
             x, k, b, dict(padding=padding), rng)


def test_winograd_f4_relu_keeps_nan(winograd_f4):
    x = np.ones((1, 6, 6, 16), np.float32)
    x[0, 1, 1, 3] = np.nan
    k = -np.ones((3, 3, 16, 16), np.float32)
    y = _core.conv2d_forward(x, k, None, 1, 1, 1, 1, 6, 6, relu=True)
    # F(4x4)'s transforms mix the 6x6 block's inputs, so a NaN spreads over the 4x4 outputs of
    # its tile: those whose window holds it are NaN, as the direct sum's are, and so are the
    # rest of the tile's (as in other Winograd implementations); the next tile's are untouched
    assert np.isnan(y[0, :3, :3]).all()
    assert (y[0, 4:, 4:] == 0).all()


def test_winograd_f4_is_taken_where_forced_and_differs_from_f2():
    """Forced, each tile size runs every pass (the input gradient as the turned forward pass),
    and each rounds its own way; at 16 channels the measured rule leaves all three to the
    direct paths."""
    rng = np.random.default_rng(3)
    x, k = rand(rng, 2, 12, 12, 16), rand(rng, 3, 3, 16, 16)
    dy = rand(rng, 2, 12, 12, 16)

    def passes():
        return (ops.conv2d_forward(x, k, None, padding="same"),) + tuple(
            ops.conv2d_backward(dy, x, k, padding="same"))[:2]
    outs = run_each_path(passes)
    direct = outs["direct"]
    for i, name in enumerate(("forward", "input gradient", "weight gradient")):
        assert np.array_equal(outs[0][i], direct[i]), name
        for m in (2, 4):
            close(outs[m][i], direct[i])
            assert not np.array_equal(outs[m][i], direct[i]), (name, m)
        assert not np.array_equal(outs[4][i], outs[2][i]), name


# (C, OC, image side) -> the tile size the measured rule gives the forward pass and the weight
# gradient (0: the direct path); the input gradient is the forward pass with C and OC swapped.
RULE = [
    ((32, 64, 15), (4, 4)),      # fewer products in 4x4 tiles: F(4x4)
    ((24, 64, 31), (4, 4)),
    ((64, 256, 15), (4, 4)),
    ((256, 256, 7), (4, 4)),     # 4 tiles of 4x4 (36 products) against 16 of 2x2 (16)
    ((32, 64, 11), (4, 4)),
    ((32, 32, 12), (4, 0)),      # the weight gradient needs 64 outputs
    ((32, 64, 6), (2, 2)),       # 4 x 36 = 9 x 16 products: F(2x2)
    ((288, 256, 15), (2, 2)),    # over 512 channels: F(2x2)
    ((32, 64, 5), (0, 0)),       # F(2x2)'s grid overhangs by 44%: the direct paths
    ((16, 16, 32), (0, 0)),      # under 24 channels: the direct paths
]


@pytest.mark.parametrize("shape,tiles", RULE)
def test_winograd_rule_picks_the_tile_size(shape, tiles):
    c, oc, h = shape
    rng = np.random.default_rng(c + oc + h)
    x, k = rand(rng, 2, h, h, c), rand(rng, 3, 3, c, oc)
    dy = rand(rng, 2, h, h, oc)

    def passes():
        return (ops.conv2d_forward(x, k, None, padding="same"),
                ops.conv2d_backward(dy, x, k, padding="same")[1])
    by_tile = run_each_path(passes)
    for i, (name, want) in enumerate(zip(("forward", "weight gradient"), tiles)):
        got = by_tile[0][i]
        # each path rounds its own way: bitwise equality tells which one ran
        assert np.array_equal(got, by_tile[want or "direct"][i]), (name, want)
        for other in {2, 4, "direct"} - {want or "direct"}:
            assert not np.array_equal(got, by_tile[other][i]), (name, other)


@pytest.mark.parametrize("m", [-1, 1, 3, 6])
def test_winograd_tile_rejects_other_sizes(m):
    with pytest.raises(ValueError, match="0, 2 or 4"):
        _core.set_winograd_tile(m)


def test_winograd_f4_error_is_bounded():
    """Against float64 at 256 channels: F(4x4, 3x3)'s constants (up to 8 in each direction, and
    1/6 and 1/24, which float32 rounds) cost digits F(2x2) keeps. Measured (this seed, AVX2): the
    largest error of the forward pass 1.0e-5 of the largest output (the GEMM's 3.7e-7, F(2x2)'s
    7.1e-7), its mean 9x the GEMM's; of the weight gradient 3.1e-6 (the GEMM's 4.3e-7). Bounded
    at 3e-5 and 20x: still far below float32 training's other noise."""
    rng = np.random.default_rng(11)
    x, k = rand(rng, 2, 8, 8, 256), rand(rng, 3, 3, 256, 64)
    dy = rand(rng, 2, 8, 8, 64)
    x64, k64 = x.astype(np.float64), k.astype(np.float64)
    want = (R.conv2d_forward(x64, k64, None, padding="same"),
            R.conv2d_backward(dy.astype(np.float64), x64, k64, padding="same")[1])
    tile = _core.winograd_tile()
    try:
        _core.set_winograd_tile(4)
        on, off = run_both(lambda: (ops.conv2d_forward(x, k, None, padding="same"),
                                    ops.conv2d_backward(dy, x, k, padding="same")[1]))
    finally:
        _core.set_winograd_tile(tile)
    for name, a, d, w in zip(("forward", "weight gradient"), on, off, want):
        err_on, err_off = np.abs(a - w), np.abs(d - w)
        assert err_on.max() <= 3e-5 * np.abs(w).max(), (name, err_on.max(), np.abs(w).max())
        assert err_on.mean() <= 20 * err_off.mean(), (name, err_on.mean(), err_off.mean())
