"""cnnkit.ops: pooling and upsampling, checked and converted, over the C++ kernels."""
from .. import _args, _core

__all__ = ["maxpool2d_forward", "maxpool2d_backward", "upsampling2d_forward",
           "upsampling2d_backward"]


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


def upsampling2d_forward(x, size=(2, 2)):
    """Nearest-neighbour upsampling: y (N, H*sh, W*sw, C)."""
    fn = "upsampling2d_forward"
    sh, sw = _args.pair(size, "size", fn)
    return _core.upsampling2d_forward(_args.float_array(x, "x", 4, fn=fn), sh, sw)


def upsampling2d_backward(dy, size=(2, 2)):
    """dx (N, H, W, C): the sum of each (sh, sw) block of dy."""
    fn = "upsampling2d_backward"
    sh, sw = _args.pair(size, "size", fn)
    dy = _args.float_array(dy, "dy", 4, fn=fn)
    if dy.shape[1] % sh or dy.shape[2] % sw:
        raise ValueError(f"{fn}: dy has shape {dy.shape}, whose height and width are not "
                         f"multiples of size {(sh, sw)}")
    return _core.upsampling2d_backward(dy, sh, sw)
