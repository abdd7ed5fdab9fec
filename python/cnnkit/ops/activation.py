"""cnnkit.ops: activations, checked and converted, over the C++ kernels.

Each activation has <name>_forward(x, ...) and <name>_backward(dy, saved, ...): `saved` is the
forward output y for relu, sigmoid, tanh, exponential, softmax and log_softmax (their derivative
follows from it), the forward input x for the others. cnnkit.reference has the same functions.
"""
from .. import _args, _core

__all__ = ["relu_forward", "relu_backward", "relu_general_forward", "relu_general_backward",
           "leaky_relu_forward", "leaky_relu_backward", "relu6_forward", "relu6_backward",
           "sigmoid_forward", "sigmoid_backward", "tanh_forward", "tanh_backward",
           "exponential_forward", "exponential_backward", "gelu_forward", "gelu_backward",
           "silu_forward", "silu_backward", "elu_forward", "elu_backward", "selu_forward",
           "selu_backward", "softplus_forward", "softplus_backward", "softsign_forward",
           "softsign_backward", "hard_sigmoid_forward", "hard_sigmoid_backward",
           "hard_silu_forward", "hard_silu_backward", "mish_forward", "mish_backward",
           "softmax_forward", "softmax_backward", "log_softmax_forward", "log_softmax_backward",
           "prelu_forward", "prelu_backward"]

# The second argument of each backward pass: "y" (the forward output) or "x" (the input).
SAVED = {"relu": "y", "sigmoid": "y", "tanh": "y", "exponential": "y", "softmax": "y",
         "log_softmax": "y", "relu_general": "x", "leaky_relu": "x", "relu6": "x", "gelu": "x",
         "silu": "x", "elu": "x", "selu": "x", "softplus": "x", "softsign": "x",
         "hard_sigmoid": "x", "hard_silu": "x", "mish": "x", "prelu": "x"}


def _saved_and_grad(dy, saved, name, fn):
    saved = _args.float_array(saved, name, fn=fn)
    what = "y's shape" if name == "y" else "x's shape"
    dy = _args.float_array_like(dy, "dy", saved.shape, what, fn=fn)
    return dy, saved


def _plain(name, doc_forward, doc_backward):
    """forward(x) and backward(dy, saved) of an activation without parameters."""
    forward_kernel = getattr(_core, name + "_forward")
    backward_kernel = getattr(_core, name + "_backward")
    saved_name = SAVED[name]

    def forward(x):
        return forward_kernel(_args.float_array(x, "x", fn=name + "_forward"))

    # The second parameter is named after what it is, as in cnnkit.reference.
    if saved_name == "y":
        def backward(dy, y):
            return backward_kernel(*_saved_and_grad(dy, y, "y", name + "_backward"))
    else:
        def backward(dy, x):
            return backward_kernel(*_saved_and_grad(dy, x, "x", name + "_backward"))

    forward.__name__, backward.__name__ = name + "_forward", name + "_backward"
    forward.__doc__, backward.__doc__ = doc_forward, doc_backward
    return forward, backward


relu_forward, relu_backward = _plain(
    "relu", "max(x, 0), elementwise.", "dy where y > 0, else 0 (y is relu's output).")
sigmoid_forward, sigmoid_backward = _plain(
    "sigmoid", "1 / (1 + exp(-x)), elementwise and stable for large |x|.",
    "dy * y * (1 - y) (y is sigmoid's output).")
tanh_forward, tanh_backward = _plain("tanh", "tanh(x).", "dy * (1 - y^2) (y is tanh's output).")
exponential_forward, exponential_backward = _plain(
    "exponential", "exp(x).", "dy * y (y is exp's output).")
silu_forward, silu_backward = _plain(
    "silu", "x * sigmoid(x) (swish).", "dy * silu'(x) (x is the forward input).")
selu_forward, selu_backward = _plain(
    "selu", "scale * elu(x, alpha) with SELU's constants.", "dy * selu'(x).")
softplus_forward, softplus_backward = _plain(
    "softplus", "log(1 + exp(x)), without overflow.", "dy * sigmoid(x).")
softsign_forward, softsign_backward = _plain(
    "softsign", "x / (1 + |x|).", "dy / (1 + |x|)^2.")
hard_sigmoid_forward, hard_sigmoid_backward = _plain(
    "hard_sigmoid", "Keras 3's clip(x / 6 + 1/2, 0, 1) == relu6(x + 3) / 6.",
    "dy / 6 where -3 < x < 3, else 0.")
hard_silu_forward, hard_silu_backward = _plain(
    "hard_silu", "x * hard_sigmoid(x) (hard_swish).", "dy * hard_silu'(x).")
mish_forward, mish_backward = _plain(
    "mish", "x * tanh(softplus(x)).", "dy * mish'(x).")


# ---------------------------------------------------------------- relu with arguments

def _relu_args(negative_slope, max_value, threshold, fn):
    negative_slope = _args.real_number(negative_slope, "negative_slope", fn)
    threshold = _args.real_number(threshold, "threshold", fn)
    if max_value is not None:
        max_value = _args.real_number(max_value, "max_value", fn)
    return negative_slope, max_value, threshold


def relu_general_forward(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Keras' relu(x, negative_slope, max_value, threshold)."""
    fn = "relu_general_forward"
    s, m, t = _relu_args(negative_slope, max_value, threshold, fn)
    return _core.relu_general_forward(_args.float_array(x, "x", fn=fn), s, m, t)


def relu_general_backward(dy, x, negative_slope=0.0, max_value=None, threshold=0.0):
    fn = "relu_general_backward"
    s, m, t = _relu_args(negative_slope, max_value, threshold, fn)
    return _core.relu_general_backward(*_saved_and_grad(dy, x, "x", fn), s, m, t)


def leaky_relu_forward(x, negative_slope=0.2):
    """x >= 0 ? x : negative_slope * x (Keras 3's default slope for the function: 0.2)."""
    fn = "leaky_relu_forward"
    s = _args.real_number(negative_slope, "negative_slope", fn)
    return _core.relu_general_forward(_args.float_array(x, "x", fn=fn), s)


def leaky_relu_backward(dy, x, negative_slope=0.2):
    fn = "leaky_relu_backward"
    s = _args.real_number(negative_slope, "negative_slope", fn)
    return _core.relu_general_backward(*_saved_and_grad(dy, x, "x", fn), s)


def relu6_forward(x):
    """min(max(x, 0), 6)."""
    return _core.relu_general_forward(_args.float_array(x, "x", fn="relu6_forward"), 0.0, 6.0)


def relu6_backward(dy, x):
    return _core.relu_general_backward(*_saved_and_grad(dy, x, "x", "relu6_backward"), 0.0, 6.0)


# ---------------------------------------------------------------- gelu, elu

def gelu_forward(x, approximate=False):
    """x * Phi(x) (the Gaussian CDF), or with approximate=True its tanh approximation."""
    fn = "gelu_forward"
    approximate = _args.flag(approximate, "approximate", fn)
    return _core.gelu_forward(_args.float_array(x, "x", fn=fn), approximate)


def gelu_backward(dy, x, approximate=False):
    fn = "gelu_backward"
    approximate = _args.flag(approximate, "approximate", fn)
    return _core.gelu_backward(*_saved_and_grad(dy, x, "x", fn), approximate)


def elu_forward(x, alpha=1.0):
    """x >= 0 ? x : alpha * (exp(x) - 1)."""
    fn = "elu_forward"
    alpha = _args.real_number(alpha, "alpha", fn)
    return _core.elu_forward(_args.float_array(x, "x", fn=fn), alpha)


def elu_backward(dy, x, alpha=1.0):
    fn = "elu_backward"
    alpha = _args.real_number(alpha, "alpha", fn)
    return _core.elu_backward(*_saved_and_grad(dy, x, "x", fn), alpha)


# ---------------------------------------------------------------- softmax, log_softmax

def check_axis(axis, ndim, fn):
    """An integer axis in [-ndim, ndim) -> the same integer; ValueError naming `axis`."""
    if not _args._is_int(axis):
        raise TypeError(f"{fn}: axis must be an integer, got {axis!r}")
    if ndim == 0:
        raise ValueError(f"{fn}: softmax runs over an axis, but x is a scalar")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{fn}: axis {axis} is out of range for an array of rank {ndim}")
    return int(axis)


def softmax_forward(x, axis=-1):
    """Softmax over `axis` (the last by default), with the max subtracted."""
    fn = "softmax_forward"
    x = _args.float_array(x, "x", fn=fn)
    return _core.softmax_forward(x, check_axis(axis, x.ndim, fn))


def softmax_backward(dy, y, axis=-1):
    """y * (dy - sum(dy * y)) over `axis` (y is softmax's output)."""
    fn = "softmax_backward"
    dy, y = _saved_and_grad(dy, y, "y", fn)
    return _core.softmax_backward(dy, y, check_axis(axis, y.ndim, fn))


def log_softmax_forward(x, axis=-1):
    """x - logsumexp(x) over `axis`."""
    fn = "log_softmax_forward"
    x = _args.float_array(x, "x", fn=fn)
    return _core.log_softmax_forward(x, check_axis(axis, x.ndim, fn))


def log_softmax_backward(dy, y, axis=-1):
    """dy - exp(y) * sum(dy) over `axis` (y is log_softmax's output)."""
    fn = "log_softmax_backward"
    dy, y = _saved_and_grad(dy, y, "y", fn)
    return _core.log_softmax_backward(dy, y, check_axis(axis, y.ndim, fn))


# ---------------------------------------------------------------- PReLU

def _prelu_alpha(x, alpha, fn):
    alpha = _args.float_array(alpha, "alpha", fn=fn)
    if x.ndim < 2 or alpha.ndim != x.ndim - 1 or any(
            a not in (1, s) for a, s in zip(alpha.shape, x.shape[1:])):
        raise ValueError(f"{fn}: alpha must have x's shape without the batch axis (size 1 along "
                         f"shared axes), got alpha {alpha.shape} for x {x.shape}")
    return alpha


def prelu_forward(x, alpha):
    """x < 0 ? alpha * x : x, alpha broadcast over the batch and its size-1 axes."""
    fn = "prelu_forward"
    x = _args.float_array(x, "x", fn=fn)
    return _core.prelu_forward(x, _prelu_alpha(x, alpha, fn))


def prelu_backward(dy, x, alpha):
    """(dx, dalpha); dalpha sums dy * min(x, 0) over the batch and the shared axes."""
    fn = "prelu_backward"
    dy, x = _saved_and_grad(dy, x, "x", fn)
    return _core.prelu_backward(dy, x, _prelu_alpha(x, alpha, fn))
