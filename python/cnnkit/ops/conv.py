"""cnnkit.ops: convolution, checked and converted, over the C++ kernels."""
from .. import _args, _core

__all__ = ["conv2d_forward", "conv2d_backward"]


def conv2d_forward(x, w, b=None, strides=(1, 1), padding="valid", *, _naive=False):
    """y (N, OH, OW, cout) = conv2d(x (N, H, W, cin), w (kh, kw, cin, cout)) + b (cout,)."""
    fn = "conv2d_forward"
    x = _args.float_array(x, "x", 4, fn=fn)
    w = _args.float_array(w, "w", 4, fn=fn)
    g = _args.conv_geometry(x.shape, w.shape, strides, padding, fn)
    b = _args.bias_array(b, w.shape[3], fn=fn)
    return _core.conv2d_forward(x, w, b, g.SH, g.SW, g.PT, g.PL, g.OH, g.OW, naive=_naive)


def conv2d_backward(dy, x, w, strides=(1, 1), padding="valid", *, _naive=False):
    """(dx, dw, db) of conv2d_forward, given dy, the gradient of its output."""
    fn = "conv2d_backward"
    x = _args.float_array(x, "x", 4, fn=fn)
    w = _args.float_array(w, "w", 4, fn=fn)
    g = _args.conv_geometry(x.shape, w.shape, strides, padding, fn)
    dy = _args.float_array_like(dy, "dy", (g.N, g.OH, g.OW, w.shape[3]),
                                "the output of this convolution", fn=fn)
    return _core.conv2d_backward(dy, x, w, g.SH, g.SW, g.PT, g.PL, naive=_naive)
