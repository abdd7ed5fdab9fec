"""cnnkit.ops: dense, checked and converted, over the C++ kernels."""
from .. import _args, _core

__all__ = ["dense_forward", "dense_backward"]


def dense_forward(x, w, b=None, *, _naive=False):
    """y (N, out) = x (N, in) @ w (in, out) + b (out,)."""
    fn = "dense_forward"
    x = _args.float_array(x, "x", 2, fn=fn)
    w = _args.float_array(w, "w", 2, fn=fn)
    _args.dense_sizes(x.shape, w.shape, fn)
    return _core.dense_forward(x, w, _args.bias_array(b, w.shape[1], fn=fn), naive=_naive)


def dense_backward(dy, x, w, *, _naive=False):
    """(dx, dw, db) of dense_forward, given dy, the gradient of its output."""
    fn = "dense_backward"
    x = _args.float_array(x, "x", 2, fn=fn)
    w = _args.float_array(w, "w", 2, fn=fn)
    n, _, units = _args.dense_sizes(x.shape, w.shape, fn)
    dy = _args.float_array_like(dy, "dy", (n, units), "the output of this layer", fn=fn)
    return _core.dense_backward(dy, x, w, naive=_naive)
