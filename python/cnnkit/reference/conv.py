"""cnnkit.reference: convolution in plain NumPy."""
import numpy as np

from .._args import bias_array, conv_geometry, float_array, float_array_like, working_dtype
from ._window import _offsets, _pad, _tap, _unpad

__all__ = ["conv2d_forward", "conv2d_backward"]


def conv2d_forward(x, w, b=None, strides=(1, 1), padding="valid"):
    # x (N,H,W,C), w (KH,KW,C,OC), b (OC) -> y (N,OH,OW,OC)
    fn = "conv2d_forward"
    dtype = working_dtype(x, w, b)
    x = float_array(x, "x", 4, dtype, fn)
    w = float_array(w, "w", 4, dtype, fn)
    g = conv_geometry(x.shape, w.shape, strides, padding, fn)
    b = bias_array(b, w.shape[3], dtype, fn)
    xp = _pad(x, g, 0)
    y = np.zeros((g.N * g.OH * g.OW, w.shape[3]), dtype)
    for i, j in _offsets(g):
        y += xp[_tap(g, i, j)].reshape(-1, g.C) @ w[i, j]
    if b is not None:
        y += b
    return y.reshape(g.N, g.OH, g.OW, -1)


def conv2d_backward(dy, x, w, strides=(1, 1), padding="valid"):
    # dy (N,OH,OW,OC), x (N,H,W,C), w (KH,KW,C,OC) -> dx, dw, db
    fn = "conv2d_backward"
    dtype = working_dtype(dy, x, w)
    x = float_array(x, "x", 4, dtype, fn)
    w = float_array(w, "w", 4, dtype, fn)
    g = conv_geometry(x.shape, w.shape, strides, padding, fn)
    oc = w.shape[3]
    dy = float_array_like(dy, "dy", (g.N, g.OH, g.OW, oc), "the output of this convolution",
                          dtype, fn).reshape(-1, oc)
    xp = _pad(x, g, 0)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for i, j in _offsets(g):
        tap = _tap(g, i, j)
        dw[i, j] = xp[tap].reshape(-1, g.C).T @ dy
        dxp[tap] += (dy @ w[i, j].T).reshape(g.N, g.OH, g.OW, g.C)
    return _unpad(dxp, g), dw, dy.sum(axis=0)
