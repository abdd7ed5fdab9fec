"""cnnkit.reference: convolutions in plain NumPy (float64 in, float64 out).

conv2d (strides, padding, dilation, groups), conv2d_transpose and depthwise_conv2d, written as
sums over the kernel's taps of strided views of the zero-padded input: independent of the C++
kernels' im2col, GEMM and direct loops. Also the geometry the ops share (conv_window,
transpose_window): Keras' output sizes and paddings, dilation included.
"""
import numpy as np

from .._args import (Window2d, _window_1d, bias_array, float_array, float_array_like, pair,
                     padding_mode, positive_int, working_dtype)

__all__ = ["conv2d_forward", "conv2d_backward", "conv2d_transpose_forward",
           "conv2d_transpose_backward", "depthwise_conv2d_forward", "depthwise_conv2d_backward"]


# The geometry of a convolution over (N,H,W,C), dilation included (cnnkit.h: Window2d).
ConvWindow = Window2d


def _prefix(fn):
    return f"{fn}: " if fn else ""


def _dilated(k, d):
    return (k - 1) * d + 1


def conv_window(x_shape, kernel_hw, strides, padding, dilation_rate=(1, 1), fn=None):
    """ConvWindow of a convolution of x (N,H,W,C) with a (kh, kw) kernel, as Keras sizes it:
    'valid' keeps the windows that fit, 'same' ceil(size / stride) outputs, both on the dilated
    extent of the kernel."""
    mode = padding_mode(padding, fn)
    (sh, sw), (dh, dw) = pair(strides, "strides", fn), pair(dilation_rate, "dilation_rate", fn)
    n, h, w, c = (int(s) for s in x_shape)
    kh, kw = (int(k) for k in kernel_hw)
    ekh, ekw = _dilated(kh, dh), _dilated(kw, dw)
    if mode == "valid" and (ekh > h or ekw > w):
        dilated = f" (dilated to {ekh}x{ekw})" if (dh, dw) != (1, 1) else ""
        raise ValueError(f"{_prefix(fn)}the {kh}x{kw} kernel{dilated} is larger than the {h}x{w} "
                         "input (padding='valid')")
    oh, pt = _window_1d(h, ekh, sh, mode)
    ow, pl = _window_1d(w, ekw, sw, mode)
    return ConvWindow(n, h, w, c, kh, kw, sh, sw, pt, pl, oh, ow, dh, dw)


def transpose_1d(size, k, s, padding, output_padding=None, d=1):
    """(output length, padding before) of a transposed convolution along one axis, as Keras
    computes them (backend_utils: the TF padding rules): the output is the input of the
    convolution it transposes, whose padding before is the second number."""
    ek = _dilated(k, d)
    if padding == "valid":
        op = max(ek, s) - ek if output_padding is None else output_padding
        return (size - 1) * s + ek + op, 0
    if output_padding is None:
        out, pad = size * s, s + ek - 2
    else:
        out, pad = (size - 1) * s + ek % 2 + output_padding, ek + ek % 2 - 2 + output_padding
    before = min(pad // 2 + pad % 2, ek - 1)  # JAX's left padding of the dilated input
    return out, ek - 1 - before


def output_padding_pair(output_padding, strides, fn=None):
    """None, or output_padding as a pair of integers in [0, stride)."""
    if output_padding is None:
        return None
    values = (output_padding,) * 2 if isinstance(output_padding, (int, np.integer)) else output_padding
    try:
        values = tuple(values)
    except TypeError:
        raise TypeError(f"{_prefix(fn)}output_padding must be an integer or a tuple of 2 "
                        f"integers, got {output_padding!r}") from None
    if len(values) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                   for v in values):
        raise ValueError(f"{_prefix(fn)}output_padding must be an integer or a tuple of 2 "
                         f"integers, got {output_padding!r}")
    for v, s in zip(values, strides):
        if not 0 <= v < s:
            raise ValueError(f"{_prefix(fn)}output_padding must be in [0, strides): got "
                             f"output_padding={tuple(values)} with strides={tuple(strides)}")
    return int(values[0]), int(values[1])


def transpose_window(x_shape, kernel_hw, filters, strides, padding, output_padding=None,
                     dilation_rate=(1, 1), fn=None):
    """ConvWindow of the convolution a transposed convolution of x (N,H,W,IC) transposes: its
    input is the (N,OH',OW',filters) output, its output x's grid."""
    mode = padding_mode(padding, fn)
    strides = pair(strides, "strides", fn)
    (dh, dw) = pair(dilation_rate, "dilation_rate", fn)
    ops = output_padding_pair(output_padding, strides, fn) or (None, None)
    n, h, w, _ = (int(s) for s in x_shape)
    kh, kw = (int(k) for k in kernel_hw)
    th, pt = transpose_1d(h, kh, strides[0], mode, ops[0], dh)
    tw, pl = transpose_1d(w, kw, strides[1], mode, ops[1], dw)
    if th < 1 or tw < 1:
        raise ValueError(f"{_prefix(fn)}the output would be {th}x{tw}: too small an input for "
                         f"the {kh}x{kw} kernel with padding='{mode}' and output_padding="
                         f"{output_padding!r}")
    return ConvWindow(n, th, tw, int(filters), kh, kw, strides[0], strides[1], pt, pl, h, w, dh, dw)


def groups_count(groups, channels, filters, fn=None):
    """groups as an integer that divides both the input channels and the filters."""
    groups = positive_int(groups, "groups", fn)
    if channels % groups or filters % groups:
        raise ValueError(f"{_prefix(fn)}groups={groups} must divide both the input channels "
                         f"({channels}) and the filters ({filters})")
    return groups


# ---------------------------------------------------------------- taps of a padded input

def _pad(x, g):
    """x (N,H,W,C) with PT/PL zeros before and as many after as the last window needs."""
    bottom = max((g.OH - 1) * g.SH + _dilated(g.KH, g.DH) - g.H - g.PT, 0)
    right = max((g.OW - 1) * g.SW + _dilated(g.KW, g.DW) - g.W - g.PL, 0)
    return np.pad(x, ((0, 0), (g.PT, bottom), (g.PL, right), (0, 0)))


def _unpad(xp, g):
    return np.ascontiguousarray(xp[:, g.PT:g.PT + g.H, g.PL:g.PL + g.W, :])


def _taps(g):
    """(i, j, index): tap (i, j) of the kernel and the (N,OH,OW,C) strided view of the padded
    input it reads, one element per output pixel."""
    for i in range(g.KH):
        for j in range(g.KW):
            r0, c0 = i * g.DH, j * g.DW
            yield i, j, np.s_[:, r0:r0 + (g.OH - 1) * g.SH + 1:g.SH,
                              c0:c0 + (g.OW - 1) * g.SW + 1:g.SW, :]


# ---------------------------------------------------------------- conv2d

def _conv_args(x, w, strides, padding, dilation_rate, groups, dtype, fn):
    x = float_array(x, "x", 4, dtype, fn)
    w = float_array(w, "w", 4, dtype, fn)
    groups = groups_count(groups, x.shape[3], w.shape[3], fn)
    if w.shape[2] * groups != x.shape[3]:
        per = f" per group ({groups} groups)" if groups > 1 else ""
        raise ValueError(f"{_prefix(fn)}x has {x.shape[3]} channels but w expects "
                         f"{w.shape[2]}{per} (x has shape {x.shape}, w has shape {w.shape})")
    g = conv_window(x.shape, w.shape[:2], strides, padding, dilation_rate, fn)
    return x, w, groups, g


def conv2d_forward(x, w, b=None, strides=(1, 1), padding="valid", dilation_rate=(1, 1), groups=1):
    # x (N,H,W,C), w (KH,KW,C/groups,OC), b (OC) -> y (N,OH,OW,OC)
    fn = "conv2d_forward"
    dtype = working_dtype(x, w, b)
    x, w, groups, g = _conv_args(x, w, strides, padding, dilation_rate, groups, dtype, fn)
    b = bias_array(b, w.shape[3], dtype, fn)
    cg, og = g.C // groups, w.shape[3] // groups
    xp = _pad(x, g)
    y = np.zeros((g.N * g.OH * g.OW, w.shape[3]), dtype)
    for i, j, tap in _taps(g):
        patch = xp[tap].reshape(-1, g.C)
        for k in range(groups):
            y[:, k * og:(k + 1) * og] += patch[:, k * cg:(k + 1) * cg] @ w[i, j][:, k * og:(k + 1) * og]
    if b is not None:
        y += b
    return y.reshape(g.N, g.OH, g.OW, -1)


def conv2d_backward(dy, x, w, strides=(1, 1), padding="valid", dilation_rate=(1, 1), groups=1):
    # dy (N,OH,OW,OC), x (N,H,W,C), w (KH,KW,C/groups,OC) -> dx, dw, db
    fn = "conv2d_backward"
    dtype = working_dtype(dy, x, w)
    x, w, groups, g = _conv_args(x, w, strides, padding, dilation_rate, groups, dtype, fn)
    oc = w.shape[3]
    dy = float_array_like(dy, "dy", (g.N, g.OH, g.OW, oc), "the output of this convolution",
                          dtype, fn).reshape(-1, oc)
    cg, og = g.C // groups, oc // groups
    xp = _pad(x, g)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for i, j, tap in _taps(g):
        patch = xp[tap].reshape(-1, g.C)
        dpatch = np.zeros_like(patch)
        for k in range(groups):
            cs, os_ = slice(k * cg, (k + 1) * cg), slice(k * og, (k + 1) * og)
            dw[i, j][:, os_] = patch[:, cs].T @ dy[:, os_]
            dpatch[:, cs] = dy[:, os_] @ w[i, j][:, os_].T
        dxp[tap] += dpatch.reshape(g.N, g.OH, g.OW, g.C)
    return _unpad(dxp, g), dw, dy.sum(axis=0)


# ---------------------------------------------------------------- conv2d_transpose

def _transpose_args(x, w, strides, padding, output_padding, dilation_rate, dtype, fn):
    x = float_array(x, "x", 4, dtype, fn)
    w = float_array(w, "w", 4, dtype, fn)
    if w.shape[3] != x.shape[3]:
        raise ValueError(f"{_prefix(fn)}x has {x.shape[3]} channels but w expects {w.shape[3]} "
                         f"(w is (kh, kw, filters, in_channels) = {w.shape})")
    g = transpose_window(x.shape, w.shape[:2], w.shape[2], strides, padding, output_padding,
                         dilation_rate, fn)
    return x, w, g


def conv2d_transpose_forward(x, w, b=None, strides=(1, 1), padding="valid", output_padding=None,
                             dilation_rate=(1, 1)):
    # x (N,H,W,IC), w (KH,KW,F,IC), b (F) -> y (N,OH',OW',F): each input pixel scatters
    # x @ w[i, j].T to the output pixel its tap (i, j) reaches.
    fn = "conv2d_transpose_forward"
    dtype = working_dtype(x, w, b)
    x, w, g = _transpose_args(x, w, strides, padding, output_padding, dilation_rate, dtype, fn)
    b = bias_array(b, w.shape[2], dtype, fn)
    yp = _pad(np.zeros((g.N, g.H, g.W, g.C), dtype), g)
    for i, j, tap in _taps(g):
        yp[tap] += x @ w[i, j].T
    y = _unpad(yp, g)
    return y if b is None else y + b


def conv2d_transpose_backward(dy, x, w, strides=(1, 1), padding="valid", output_padding=None,
                              dilation_rate=(1, 1)):
    # dy (N,OH',OW',F), x (N,H,W,IC), w (KH,KW,F,IC) -> dx, dw, db
    fn = "conv2d_transpose_backward"
    dtype = working_dtype(dy, x, w)
    x, w, g = _transpose_args(x, w, strides, padding, output_padding, dilation_rate, dtype, fn)
    dy = float_array_like(dy, "dy", (g.N, g.H, g.W, g.C),
                          "the output of this transposed convolution", dtype, fn)
    dyp = _pad(dy, g)
    dx = np.zeros_like(x)
    dw = np.zeros_like(w)
    xf = x.reshape(-1, x.shape[3])
    for i, j, tap in _taps(g):
        d = dyp[tap]
        dx += d @ w[i, j]
        dw[i, j] = d.reshape(-1, g.C).T @ xf
    return dx, dw, dy.reshape(-1, g.C).sum(axis=0)


# ---------------------------------------------------------------- depthwise_conv2d

def _depthwise_args(x, w, strides, padding, dilation_rate, dtype, fn):
    x = float_array(x, "x", 4, dtype, fn)
    w = float_array(w, "w", 4, dtype, fn)
    if w.shape[2] != x.shape[3]:
        raise ValueError(f"{_prefix(fn)}x has {x.shape[3]} channels but w expects {w.shape[2]} "
                         f"(w is (kh, kw, channels, depth_multiplier) = {w.shape})")
    return x, w, conv_window(x.shape, w.shape[:2], strides, padding, dilation_rate, fn)


def depthwise_conv2d_forward(x, w, b=None, strides=(1, 1), padding="valid", dilation_rate=(1, 1)):
    # x (N,H,W,C), w (KH,KW,C,DM), b (C*DM) -> y (N,OH,OW,C*DM), channel c*DM + m from c
    fn = "depthwise_conv2d_forward"
    dtype = working_dtype(x, w, b)
    x, w, g = _depthwise_args(x, w, strides, padding, dilation_rate, dtype, fn)
    dm = w.shape[3]
    b = bias_array(b, g.C * dm, dtype, fn)
    xp = _pad(x, g)
    y = np.zeros((g.N, g.OH, g.OW, g.C, dm), dtype)
    for i, j, tap in _taps(g):
        y += xp[tap][..., None] * w[i, j]
    y = y.reshape(g.N, g.OH, g.OW, g.C * dm)
    return y if b is None else y + b


def depthwise_conv2d_backward(dy, x, w, strides=(1, 1), padding="valid", dilation_rate=(1, 1)):
    # dy (N,OH,OW,C*DM), x (N,H,W,C), w (KH,KW,C,DM) -> dx, dw, db
    fn = "depthwise_conv2d_backward"
    dtype = working_dtype(dy, x, w)
    x, w, g = _depthwise_args(x, w, strides, padding, dilation_rate, dtype, fn)
    dm = w.shape[3]
    dy = float_array_like(dy, "dy", (g.N, g.OH, g.OW, g.C * dm),
                          "the output of this convolution", dtype, fn)
    d = dy.reshape(g.N, g.OH, g.OW, g.C, dm)
    xp = _pad(x, g)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for i, j, tap in _taps(g):
        dw[i, j] = np.einsum("nhwc,nhwcm->cm", xp[tap], d)
        dxp[tap] += (d * w[i, j]).sum(axis=-1)
    return _unpad(dxp, g), dw, dy.reshape(-1, g.C * dm).sum(axis=0)
