"""Activation functions by name, as keras.activations: relu, sigmoid, softmax, linear.

The public functions run on any float array (through cnnkit.ops). Layers keep only the name and
call the raw kernels of `kernels(name)` on arrays they already hold as C-contiguous float32.
Backward kernels take the forward *output*, which a fused layer keeps anyway.
"""
from . import _core, ops

__all__ = ["relu", "sigmoid", "softmax", "linear", "get", "serialize"]


def relu(x):
    return ops.relu_forward(x)


def sigmoid(x):
    return ops.sigmoid_forward(x)


def softmax(x):
    return ops.softmax_forward(x)


def linear(x):
    return x


_KERNELS = {
    "relu": (_core.relu_forward, _core.relu_backward),
    "sigmoid": (_core.sigmoid_forward, _core.sigmoid_backward),
    "softmax": (_core.softmax_forward, _core.softmax_backward),
    "linear": None,
}
_FUNCTIONS = {"relu": relu, "sigmoid": sigmoid, "softmax": softmax, "linear": linear}


def serialize(identifier):
    """None, a name or one of the functions above -> its name ('linear' for None), as stored in
    a layer's config. Anything else is a ValueError listing what is available."""
    if identifier is None:
        return "linear"
    if isinstance(identifier, str) and identifier.lower() in _KERNELS:
        return identifier.lower()
    for name, function in _FUNCTIONS.items():
        if identifier is function:
            return name
    raise ValueError(f"Unknown activation {identifier!r}; cnnkit has {sorted(_KERNELS)}")


def get(identifier):
    """The public function for a name or function (None -> linear)."""
    return _FUNCTIONS[serialize(identifier)]


def kernels(name):
    """(forward, backward) raw kernels of an activation name, or None for linear."""
    return _KERNELS[serialize(name)]
