"""cnnkit.reference: dense in plain NumPy."""
from .._args import bias_array, dense_sizes, float_array, float_array_like, working_dtype

__all__ = ["dense_forward", "dense_backward"]


def dense_forward(x, w, b=None):
    # x (B,IN), w (IN,OUT), b (OUT) -> y (B,OUT)
    fn = "dense_forward"
    dtype = working_dtype(x, w, b)
    x = float_array(x, "x", 2, dtype, fn)
    w = float_array(w, "w", 2, dtype, fn)
    _, _, units = dense_sizes(x.shape, w.shape, fn)
    b = bias_array(b, units, dtype, fn)
    y = x @ w
    return y if b is None else y + b


def dense_backward(dy, x, w):
    # dy (B,OUT), x (B,IN), w (IN,OUT) -> dx, dw, db
    fn = "dense_backward"
    dtype = working_dtype(dy, x, w)
    x = float_array(x, "x", 2, dtype, fn)
    w = float_array(w, "w", 2, dtype, fn)
    batch, _, units = dense_sizes(x.shape, w.shape, fn)
    dy = float_array_like(dy, "dy", (batch, units), "the output of this layer", dtype, fn)
    return dy @ w.T, x.T @ dy, dy.sum(axis=0)
