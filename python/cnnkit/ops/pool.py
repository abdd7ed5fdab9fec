"""cnnkit.ops: pooling, upsampling, zero padding and cropping, checked and converted, over the
C++ kernels."""
from .. import _args, _core
from .._pool_args import border_2d, upsampling_interpolation

__all__ = ["maxpool2d_forward", "maxpool2d_backward", "avgpool2d_forward", "avgpool2d_backward",
           "global_avgpool2d_forward", "global_avgpool2d_backward", "global_maxpool2d_forward",
           "global_maxpool2d_backward", "upsampling2d_forward", "upsampling2d_backward",
           "zero_padding2d_forward", "zero_padding2d_backward", "cropping2d_forward",
           "cropping2d_backward"]


def maxpool2d_forward(x, pool_size=(2, 2), strides=None, padding="valid"):
    """y (N, OH, OW, C): the maximum of each window; strides default to pool_size."""
    fn = "maxpool2d_forward"
    x = _args.float_array(x, "x", 4, fn=fn)
    g = _args.pool_geometry(x.shape, pool_size, strides, padding, fn)
    return _core.maxpool2d_forward(x, g.KH, g.KW, g.SH, g.SW, g.PT, g.PL, g.OH, g.OW)


def maxpool2d_backward(dy, x, pool_size=(2, 2), strides=None, padding="valid"):
    """dx: each output's gradient goes to the first maximum of its window; overlaps add up."""
    fn = "maxpool2d_backward"
    x = _args.float_array(x, "x", 4, fn=fn)
    g = _args.pool_geometry(x.shape, pool_size, strides, padding, fn)
    dy = _args.float_array_like(dy, "dy", (g.N, g.OH, g.OW, g.C), "the output of this pooling", fn=fn)
    return _core.maxpool2d_backward(dy, x, g.KH, g.KW, g.SH, g.SW, g.PT, g.PL)


def avgpool2d_forward(x, pool_size=(2, 2), strides=None, padding="valid"):
    """y (N, OH, OW, C): the mean of each window's real inputs (with padding='same' the padded
    positions are left out of the count, as in Keras); strides default to pool_size."""
    fn = "avgpool2d_forward"
    x = _args.float_array(x, "x", 4, fn=fn)
    g = _args.pool_geometry(x.shape, pool_size, strides, padding, fn)
    return _core.avgpool2d_forward(x, g.KH, g.KW, g.SH, g.SW, g.PT, g.PL, g.OH, g.OW)


def avgpool2d_backward(dy, x, pool_size=(2, 2), strides=None, padding="valid"):
    """dx (N, H, W, C): each output's gradient shared equally among its window's real inputs,
    summed where windows overlap. Only x's shape is read."""
    fn = "avgpool2d_backward"
    x_shape = _args.float_array(x, "x", 4, fn=fn).shape
    g = _args.pool_geometry(x_shape, pool_size, strides, padding, fn)
    dy = _args.float_array_like(dy, "dy", (g.N, g.OH, g.OW, g.C), "the output of this pooling", fn=fn)
    return _core.avgpool2d_backward(dy, g.H, g.W, g.KH, g.KW, g.SH, g.SW, g.PT, g.PL)


def global_avgpool2d_forward(x):
    """y (N, C): the mean of each image's channels over all its positions."""
    return _core.global_avgpool2d_forward(_args.float_array(x, "x", 4, fn="global_avgpool2d_forward"))


def global_avgpool2d_backward(dy, x):
    """dx (N, H, W, C) = dy / (H*W) at every position. Only x's shape is read."""
    fn = "global_avgpool2d_backward"
    n, h, w, c = _args.float_array(x, "x", 4, fn=fn).shape
    dy = _args.float_array_like(dy, "dy", (n, c), "the output of this pooling", fn=fn)
    return _core.global_avgpool2d_backward(dy, h, w)


def global_maxpool2d_forward(x):
    """y (N, C): the maximum of each image's channels (max pooling with a window as large as
    the image)."""
    x = _args.float_array(x, "x", 4, fn="global_maxpool2d_forward")
    n, h, w, c = x.shape
    return _core.maxpool2d_forward(x, h, w, h, w, 0, 0, 1, 1).reshape(n, c)


def global_maxpool2d_backward(dy, x):
    """dx (N, H, W, C): each gradient goes to the first maximum of its image and channel."""
    fn = "global_maxpool2d_backward"
    x = _args.float_array(x, "x", 4, fn=fn)
    n, h, w, c = x.shape
    dy = _args.float_array_like(dy, "dy", (n, c), "the output of this pooling", fn=fn)
    return _core.maxpool2d_backward(dy.reshape(n, 1, 1, c), x, h, w, h, w, 0, 0)


def upsampling2d_forward(x, size=(2, 2), interpolation="nearest"):
    """y (N, H*sh, W*sw, C): 'nearest' repeats each pixel, 'bilinear' interpolates as Keras 3
    does (half-pixel centres, edges clamped)."""
    fn = "upsampling2d_forward"
    sh, sw = _args.pair(size, "size", fn)
    kernel = {"nearest": _core.upsampling2d_forward,
              "bilinear": _core.upsampling2d_bilinear_forward}[upsampling_interpolation(interpolation, fn)]
    return kernel(_args.float_array(x, "x", 4, fn=fn), sh, sw)


def upsampling2d_backward(dy, size=(2, 2), interpolation="nearest"):
    """dx (N, H, W, C): the transpose of the forward resampling ('nearest': each block's sum)."""
    fn = "upsampling2d_backward"
    sh, sw = _args.pair(size, "size", fn)
    kernel = {"nearest": _core.upsampling2d_backward,
              "bilinear": _core.upsampling2d_bilinear_backward}[upsampling_interpolation(interpolation, fn)]
    dy = _args.float_array(dy, "dy", 4, fn=fn)
    if dy.shape[1] % sh or dy.shape[2] % sw:
        raise ValueError(f"{fn}: dy has shape {dy.shape}, whose height and width are not "
                         f"multiples of size {(sh, sw)}")
    return kernel(dy, sh, sw)


def _sides(value, name, fn):
    (top, bottom), (left, right) = border_2d(value, name, fn)
    return top, bottom, left, right


def _croppable(a, name, top, bottom, left, right, fn):
    """The friendly form of the binding's check: the crop must leave something."""
    if top + bottom >= a.shape[1] or left + right >= a.shape[2]:
        raise ValueError(f"{fn}: {name} has shape {a.shape}, too small to remove {top}+{bottom} "
                         f"rows and {left}+{right} columns")
    return a


def zero_padding2d_forward(x, padding=(1, 1)):
    """y (N, H+top+bottom, W+left+right, C): x with zero rows and columns around it. padding:
    an int, (rows, columns) or ((top, bottom), (left, right)), as Keras' ZeroPadding2D."""
    fn = "zero_padding2d_forward"
    sides = _sides(padding, "padding", fn)
    return _core.zero_padding2d_forward(_args.float_array(x, "x", 4, fn=fn), *sides)


def zero_padding2d_backward(dy, padding=(1, 1)):
    """dx: the middle of dy, without the padded rows and columns."""
    fn = "zero_padding2d_backward"
    sides = _sides(padding, "padding", fn)
    dy = _croppable(_args.float_array(dy, "dy", 4, fn=fn), "dy", *sides, fn)
    return _core.zero_padding2d_backward(dy, *sides)


def cropping2d_forward(x, cropping=((0, 0), (0, 0))):
    """y (N, H-top-bottom, W-left-right, C): x without its outer rows and columns. cropping:
    an int, (rows, columns) or ((top, bottom), (left, right)), as Keras' Cropping2D."""
    fn = "cropping2d_forward"
    sides = _sides(cropping, "cropping", fn)
    x = _croppable(_args.float_array(x, "x", 4, fn=fn), "x", *sides, fn)
    return _core.cropping2d_forward(x, *sides)


def cropping2d_backward(dy, cropping=((0, 0), (0, 0))):
    """dx: dy with zero rows and columns where the crop removed the input."""
    fn = "cropping2d_backward"
    sides = _sides(cropping, "cropping", fn)
    return _core.cropping2d_backward(_args.float_array(dy, "dy", 4, fn=fn), *sides)
