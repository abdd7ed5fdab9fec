"""cnnkit.reference: pooling and upsampling in plain NumPy."""
import numpy as np

from .._args import float_array, float_array_like, pair, pool_geometry, working_dtype
from ._window import _offsets, _pad, _tap, _unpad

__all__ = ["maxpool2d_forward", "maxpool2d_backward", "upsampling2d_forward",
           "upsampling2d_backward"]


def _pool_winners(xp, g):
    """The max of each window and which offset (its index in _offsets) holds it. A later
    offset takes over only when strictly greater, so ties go to the first maximum. A NaN
    takes over from a number and then stays (the first NaN wins), so that a NaN input shows
    in the output as in NumPy's max and PyTorch's pooling, instead of vanishing."""
    best = np.full((g.N, g.OH, g.OW, g.C), -np.inf, xp.dtype)
    winner = np.zeros(best.shape, np.int64)
    for k, (i, j) in enumerate(_offsets(g)):
        candidate = xp[_tap(g, i, j)]
        better = (candidate > best) | (np.isnan(candidate) & ~np.isnan(best))
        best = np.where(better, candidate, best)
        winner[better] = k
    return best, winner


def maxpool2d_forward(x, pool_size=(2, 2), strides=None, padding="valid"):
    # x (N,H,W,C) -> y (N,OH,OW,C)
    fn = "maxpool2d_forward"
    x = float_array(x, "x", 4, working_dtype(x), fn)
    g = pool_geometry(x.shape, pool_size, strides, padding, fn)
    y, _ = _pool_winners(_pad(x, g, -np.inf), g)  # padding never wins
    return y


def maxpool2d_backward(dy, x, pool_size=(2, 2), strides=None, padding="valid"):
    # dy (N,OH,OW,C), x (N,H,W,C) -> dx (N,H,W,C): each dy goes to its window's first maximum,
    # summed where windows overlap.
    fn = "maxpool2d_backward"
    dtype = working_dtype(dy, x)
    x = float_array(x, "x", 4, dtype, fn)
    g = pool_geometry(x.shape, pool_size, strides, padding, fn)
    dy = float_array_like(dy, "dy", (g.N, g.OH, g.OW, g.C), "the output of this pooling",
                          dtype, fn)
    xp = _pad(x, g, -np.inf)
    _, winner = _pool_winners(xp, g)
    dxp = np.zeros_like(xp)
    for k, (i, j) in enumerate(_offsets(g)):
        dxp[_tap(g, i, j)] += np.where(winner == k, dy, 0)
    return _unpad(dxp, g)


def upsampling2d_forward(x, size=(2, 2)):
    # x (N,H,W,C) -> y (N,H*SH,W*SW,C), each pixel repeated into an SH x SW block
    fn = "upsampling2d_forward"
    sh, sw = pair(size, "size", fn)
    x = float_array(x, "x", 4, working_dtype(x), fn)
    return x.repeat(sh, axis=1).repeat(sw, axis=2)


def upsampling2d_backward(dy, size=(2, 2)):
    # dy (N,H*SH,W*SW,C) -> dx (N,H,W,C), the sum of each block
    fn = "upsampling2d_backward"
    sh, sw = pair(size, "size", fn)
    dy = float_array(dy, "dy", 4, working_dtype(dy), fn)
    n, h, w, c = dy.shape
    if h % sh or w % sw:
        raise ValueError(f"{fn}: dy has shape {dy.shape}, whose height and width are not "
                         f"multiples of size {(sh, sw)}")
    return dy.reshape(n, h // sh, sh, w // sw, sw, c).sum(axis=(2, 4))
