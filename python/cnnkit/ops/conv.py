"""cnnkit.ops: convolutions, checked and converted, over the C++ kernels (cpp/conv/).

The geometry (output sizes, paddings, dilation, groups, output_padding) is Keras', computed in
cnnkit.reference.conv so that the kernels and the reference agree by construction.
"""
from .. import _args, _core
from ..reference.conv import conv_window, groups_count, transpose_window

__all__ = ["conv2d_forward", "conv2d_backward", "conv2d_transpose_forward",
           "conv2d_transpose_backward", "depthwise_conv2d_forward", "depthwise_conv2d_backward"]


def _conv_args(x, w, strides, padding, dilation_rate, groups, fn):
    x = _args.float_array(x, "x", 4, fn=fn)
    w = _args.float_array(w, "w", 4, fn=fn)
    groups = groups_count(groups, x.shape[3], w.shape[3], fn)
    if w.shape[2] * groups != x.shape[3]:
        per = f" per group ({groups} groups)" if groups > 1 else ""
        raise ValueError(f"{fn}: x has {x.shape[3]} channels but w expects {w.shape[2]}{per} "
                         f"(x has shape {x.shape}, w has shape {w.shape})")
    return x, w, groups, conv_window(x.shape, w.shape[:2], strides, padding, dilation_rate, fn)


def conv2d_forward(x, w, b=None, strides=(1, 1), padding="valid", dilation_rate=(1, 1), groups=1,
                   *, _naive=False):
    """y (N, OH, OW, cout) = conv2d(x (N, H, W, cin), w (kh, kw, cin/groups, cout)) + b (cout,)."""
    fn = "conv2d_forward"
    x, w, groups, g = _conv_args(x, w, strides, padding, dilation_rate, groups, fn)
    b = _args.bias_array(b, w.shape[3], fn=fn)
    return _core.conv2d_forward(x, w, b, g.SH, g.SW, g.PT, g.PL, g.OH, g.OW, naive=_naive,
                                dh=g.DH, dw=g.DW, groups=groups)


def conv2d_backward(dy, x, w, strides=(1, 1), padding="valid", dilation_rate=(1, 1), groups=1,
                    *, _naive=False):
    """(dx, dw, db) of conv2d_forward, given dy, the gradient of its output."""
    fn = "conv2d_backward"
    x, w, groups, g = _conv_args(x, w, strides, padding, dilation_rate, groups, fn)
    dy = _args.float_array_like(dy, "dy", (g.N, g.OH, g.OW, w.shape[3]),
                                "the output of this convolution", fn=fn)
    return _core.conv2d_backward(dy, x, w, g.SH, g.SW, g.PT, g.PL, naive=_naive, dh=g.DH,
                                 dw=g.DW, groups=groups)


def _transpose_args(x, w, strides, padding, output_padding, dilation_rate, fn):
    x = _args.float_array(x, "x", 4, fn=fn)
    w = _args.float_array(w, "w", 4, fn=fn)
    if w.shape[3] != x.shape[3]:
        raise ValueError(f"{fn}: x has {x.shape[3]} channels but w expects {w.shape[3]} "
                         f"(w is (kh, kw, filters, in_channels) = {w.shape})")
    return x, w, transpose_window(x.shape, w.shape[:2], w.shape[2], strides, padding,
                                  output_padding, dilation_rate, fn)


def conv2d_transpose_forward(x, w, b=None, strides=(1, 1), padding="valid", output_padding=None,
                             dilation_rate=(1, 1), *, _naive=False):
    """y (N, OH, OW, filters) = the transposed convolution of x (N, H, W, cin) with
    w (kh, kw, filters, cin), + b (filters,); sizes as Keras' Conv2DTranspose."""
    fn = "conv2d_transpose_forward"
    x, w, g = _transpose_args(x, w, strides, padding, output_padding, dilation_rate, fn)
    b = _args.bias_array(b, w.shape[2], fn=fn)
    return _core.conv2d_transpose_forward(x, w, b, g.SH, g.SW, g.DH, g.DW, g.PT, g.PL, g.H, g.W,
                                          naive=_naive)


def conv2d_transpose_backward(dy, x, w, strides=(1, 1), padding="valid", output_padding=None,
                              dilation_rate=(1, 1), *, _naive=False):
    """(dx, dw, db) of conv2d_transpose_forward, given dy, the gradient of its output."""
    fn = "conv2d_transpose_backward"
    x, w, g = _transpose_args(x, w, strides, padding, output_padding, dilation_rate, fn)
    dy = _args.float_array_like(dy, "dy", (g.N, g.H, g.W, g.C),
                                "the output of this transposed convolution", fn=fn)
    return _core.conv2d_transpose_backward(dy, x, w, g.SH, g.SW, g.DH, g.DW, g.PT, g.PL,
                                           naive=_naive)


def _depthwise_args(x, w, strides, padding, dilation_rate, fn):
    x = _args.float_array(x, "x", 4, fn=fn)
    w = _args.float_array(w, "w", 4, fn=fn)
    if w.shape[2] != x.shape[3]:
        raise ValueError(f"{fn}: x has {x.shape[3]} channels but w expects {w.shape[2]} "
                         f"(w is (kh, kw, channels, depth_multiplier) = {w.shape})")
    return x, w, conv_window(x.shape, w.shape[:2], strides, padding, dilation_rate, fn)


def depthwise_conv2d_forward(x, w, b=None, strides=(1, 1), padding="valid", dilation_rate=(1, 1),
                             *, _naive=False):
    """y (N, OH, OW, C*dm): channel c*dm + m is x's channel c convolved with w[:, :, c, m]
    (w is (kh, kw, C, dm)), + b (C*dm,)."""
    fn = "depthwise_conv2d_forward"
    x, w, g = _depthwise_args(x, w, strides, padding, dilation_rate, fn)
    b = _args.bias_array(b, g.C * w.shape[3], fn=fn)
    return _core.depthwise_conv2d_forward(x, w, b, g.SH, g.SW, g.DH, g.DW, g.PT, g.PL, g.OH,
                                          g.OW, naive=_naive)


def depthwise_conv2d_backward(dy, x, w, strides=(1, 1), padding="valid", dilation_rate=(1, 1),
                              *, _naive=False):
    """(dx, dw, db) of depthwise_conv2d_forward, given dy, the gradient of its output."""
    fn = "depthwise_conv2d_backward"
    x, w, g = _depthwise_args(x, w, strides, padding, dilation_rate, fn)
    dy = _args.float_array_like(dy, "dy", (g.N, g.OH, g.OW, g.C * w.shape[3]),
                                "the output of this convolution", fn=fn)
    return _core.depthwise_conv2d_backward(dy, x, w, g.SH, g.SW, g.DH, g.DW, g.PT, g.PL,
                                           naive=_naive)
