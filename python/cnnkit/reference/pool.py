"""cnnkit.reference: pooling, upsampling, zero padding and cropping in plain NumPy."""
import numpy as np

from .._args import float_array, float_array_like, pair, pool_geometry, working_dtype
from .._pool_args import border_2d, upsampling_interpolation
from ._window import _offsets, _pad, _tap, _unpad

__all__ = ["maxpool2d_forward", "maxpool2d_backward", "avgpool2d_forward", "avgpool2d_backward",
           "global_avgpool2d_forward", "global_avgpool2d_backward", "global_maxpool2d_forward",
           "global_maxpool2d_backward", "upsampling2d_forward", "upsampling2d_backward",
           "zero_padding2d_forward", "zero_padding2d_backward", "cropping2d_forward",
           "cropping2d_backward"]


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


def _window_counts(g, dtype):
    """(1, OH, OW, 1): how many real (not padded) inputs each window holds."""
    ones = _pad(np.ones((1, g.H, g.W, 1), dtype), g._replace(N=1, C=1), 0)
    return sum(ones[_tap(g, i, j)] for i, j in _offsets(g))


def avgpool2d_forward(x, pool_size=(2, 2), strides=None, padding="valid"):
    # x (N,H,W,C) -> y (N,OH,OW,C): each window's sum over its real inputs, divided by their
    # number (padding='same' leaves the padded positions out of the count, as Keras does)
    fn = "avgpool2d_forward"
    x = float_array(x, "x", 4, working_dtype(x), fn)
    g = pool_geometry(x.shape, pool_size, strides, padding, fn)
    xp = _pad(x, g, 0)
    return sum(xp[_tap(g, i, j)] for i, j in _offsets(g)) / _window_counts(g, x.dtype)


def avgpool2d_backward(dy, x, pool_size=(2, 2), strides=None, padding="valid"):
    # dy (N,OH,OW,C), x (N,H,W,C) (only its shape matters) -> dx (N,H,W,C): each dy shared
    # equally among its window's real inputs, summed where windows overlap.
    fn = "avgpool2d_backward"
    dtype = working_dtype(dy, x)
    x = float_array(x, "x", 4, dtype, fn)
    g = pool_geometry(x.shape, pool_size, strides, padding, fn)
    dy = float_array_like(dy, "dy", (g.N, g.OH, g.OW, g.C), "the output of this pooling",
                          dtype, fn)
    share = dy / _window_counts(g, dtype)
    dxp = np.zeros_like(_pad(x, g, 0))
    for i, j in _offsets(g):
        dxp[_tap(g, i, j)] += share
    return _unpad(dxp, g)


def global_avgpool2d_forward(x):
    # x (N,H,W,C) -> y (N,C), the mean over every position
    x = float_array(x, "x", 4, working_dtype(x), "global_avgpool2d_forward")
    return x.mean(axis=(1, 2))


def global_avgpool2d_backward(dy, x):
    # dy (N,C), x (N,H,W,C) (only its shape matters) -> dx (N,H,W,C) = dy / (H*W) everywhere
    fn = "global_avgpool2d_backward"
    dtype = working_dtype(dy, x)
    x = float_array(x, "x", 4, dtype, fn)
    n, h, w, c = x.shape
    dy = float_array_like(dy, "dy", (n, c), "the output of this pooling", dtype, fn)
    return np.broadcast_to(dy[:, None, None, :] / (h * w), x.shape).copy()


def global_maxpool2d_forward(x):
    # x (N,H,W,C) -> y (N,C): max pooling with one window as large as the image
    x = float_array(x, "x", 4, working_dtype(x), "global_maxpool2d_forward")
    return maxpool2d_forward(x, x.shape[1:3]).reshape(x.shape[0], x.shape[3])


def global_maxpool2d_backward(dy, x):
    # dy (N,C), x (N,H,W,C) -> dx: each dy goes to the first maximum of its image and channel
    fn = "global_maxpool2d_backward"
    dtype = working_dtype(dy, x)
    x = float_array(x, "x", 4, dtype, fn)
    n, h, w, c = x.shape
    dy = float_array_like(dy, "dy", (n, c), "the output of this pooling", dtype, fn)
    return maxpool2d_backward(dy.reshape(n, 1, 1, c), x, (h, w))


def upsampling2d_forward(x, size=(2, 2), interpolation="nearest"):
    # x (N,H,W,C) -> y (N,H*SH,W*SW,C): 'nearest' repeats each pixel into an SH x SW block,
    # 'bilinear' interpolates (Keras 3: half-pixel centres, edges clamped)
    fn = "upsampling2d_forward"
    sh, sw = pair(size, "size", fn)
    interpolation = upsampling_interpolation(interpolation, fn)
    x = float_array(x, "x", 4, working_dtype(x), fn)
    if interpolation == "nearest":
        return x.repeat(sh, axis=1).repeat(sw, axis=2)
    rows = _bilinear_matrix(x.shape[1], sh, x.dtype)
    cols = _bilinear_matrix(x.shape[2], sw, x.dtype)
    return np.einsum("ah,nhwc,bw->nabc", rows, x, cols)


def upsampling2d_backward(dy, size=(2, 2), interpolation="nearest"):
    # dy (N,H*SH,W*SW,C) -> dx (N,H,W,C): the transpose of the forward resampling (for
    # 'nearest', the sum of each block)
    fn = "upsampling2d_backward"
    sh, sw = pair(size, "size", fn)
    interpolation = upsampling_interpolation(interpolation, fn)
    dy = float_array(dy, "dy", 4, working_dtype(dy), fn)
    n, h, w, c = dy.shape
    if h % sh or w % sw:
        raise ValueError(f"{fn}: dy has shape {dy.shape}, whose height and width are not "
                         f"multiples of size {(sh, sw)}")
    if interpolation == "nearest":
        return dy.reshape(n, h // sh, sh, w // sw, sw, c).sum(axis=(2, 4))
    rows = _bilinear_matrix(h // sh, sh, dy.dtype)
    cols = _bilinear_matrix(w // sw, sw, dy.dtype)
    return np.einsum("ah,nabc,bw->nhwc", rows, dy, cols)


def _bilinear_matrix(size, factor, dtype):
    """(size*factor, size): row o holds the weights with which output o mixes the inputs.
    Output o sits at (o + 0.5) / factor - 0.5 in input pixel coordinates; it takes 1 - t of the
    pixel below that position and t of the pixel above, with positions outside [0, size - 1]
    clamped to the edge (a triangle filter renormalised at the border: the same)."""
    position = np.clip((np.arange(size * factor) + 0.5) / factor - 0.5, 0, size - 1)
    below = np.floor(position).astype(int)
    above = np.minimum(below + 1, size - 1)
    t = position - below
    matrix = np.zeros((size * factor, size), dtype)
    rows = np.arange(size * factor)
    np.add.at(matrix, (rows, below), 1 - t)
    np.add.at(matrix, (rows, above), t)
    return matrix


def _border(value, name, fn):
    (top, bottom), (left, right) = border_2d(value, name, fn)
    return top, bottom, left, right


def _pad_zeros(x, top, bottom, left, right):
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))


def _crop(x, top, bottom, left, right, name, fn):
    n, h, w, c = x.shape
    if top + bottom >= h or left + right >= w:
        raise ValueError(f"{fn}: {name} has shape {x.shape}, too small to remove {top}+{bottom} "
                         f"rows and {left}+{right} columns")
    return np.ascontiguousarray(x[:, top:h - bottom, left:w - right, :])


def zero_padding2d_forward(x, padding=(1, 1)):
    # x (N,H,W,C) -> y (N,H+top+bottom,W+left+right,C), zeros around
    fn = "zero_padding2d_forward"
    sides = _border(padding, "padding", fn)
    return _pad_zeros(float_array(x, "x", 4, working_dtype(x), fn), *sides)


def zero_padding2d_backward(dy, padding=(1, 1)):
    # dy of the padded output -> dx, its middle
    fn = "zero_padding2d_backward"
    sides = _border(padding, "padding", fn)
    return _crop(float_array(dy, "dy", 4, working_dtype(dy), fn), *sides, "dy", fn)


def cropping2d_forward(x, cropping=((0, 0), (0, 0))):
    # x (N,H,W,C) -> y (N,H-top-bottom,W-left-right,C); something must remain
    fn = "cropping2d_forward"
    sides = _border(cropping, "cropping", fn)
    return _crop(float_array(x, "x", 4, working_dtype(x), fn), *sides, "x", fn)


def cropping2d_backward(dy, cropping=((0, 0), (0, 0))):
    # dy of the cropped output -> dx, with zeros where the crop removed the input
    fn = "cropping2d_backward"
    sides = _border(cropping, "cropping", fn)
    return _pad_zeros(float_array(dy, "dy", 4, working_dtype(dy), fn), *sides)
