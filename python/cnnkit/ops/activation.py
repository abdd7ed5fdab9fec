"""cnnkit.ops: activations, checked and converted, over the C++ kernels."""
from .. import _args, _core

__all__ = ["relu_forward", "relu_backward", "sigmoid_forward", "sigmoid_backward",
           "softmax_forward", "softmax_backward"]


def _over_last_axis(x, fn):
    if x.ndim == 0:
        raise ValueError(f"{fn}: softmax runs over the last axis, but x is a scalar")
    return x


def _activation(kernel, fn, axis=False):
    """axis: the activation runs over the last axis (softmax), so x needs one."""
    def forward(x):
        x = _args.float_array(x, "x", fn=fn)
        return kernel(_over_last_axis(x, fn) if axis else x)
    forward.__name__ = fn
    return forward


def _activation_backward(kernel, fn, axis=False):
    def backward(dy, y):
        y = _args.float_array(y, "y", fn=fn)
        dy = _args.float_array_like(dy, "dy", y.shape, "y's shape", fn=fn)
        return kernel(dy, _over_last_axis(y, fn) if axis else y)
    backward.__name__ = fn
    return backward


relu_forward = _activation(_core.relu_forward, "relu_forward")
relu_backward = _activation_backward(_core.relu_backward, "relu_backward")
sigmoid_forward = _activation(_core.sigmoid_forward, "sigmoid_forward")
sigmoid_backward = _activation_backward(_core.sigmoid_backward, "sigmoid_backward")
softmax_forward = _activation(_core.softmax_forward, "softmax_forward", axis=True)
softmax_backward = _activation_backward(_core.softmax_backward, "softmax_backward", axis=True)
relu_forward.__doc__ = "max(x, 0), elementwise."
relu_backward.__doc__ = "dy where y > 0, else 0 (y is relu's output)."
sigmoid_forward.__doc__ = "1 / (1 + exp(-x)), elementwise and stable for large |x|."
sigmoid_backward.__doc__ = "dy * y * (1 - y) (y is sigmoid's output)."
softmax_forward.__doc__ = "Softmax over the last axis."
softmax_backward.__doc__ = "y * (dy - sum(dy * y)) over the last axis (y is softmax's output)."
