"""Activation functions by name, as keras.activations (Keras 3).

The public functions take Keras' arguments and run on any real array (through cnnkit.ops, in
float32); on a symbolic tensor of a functional model they add a layer (Activation, or ReLU,
LeakyReLU, ELU, Softmax for their arguments), as Keras' do. Layers keep only an activation's name and call the raw kernels of `kernels(name)` on
arrays they already hold as C-contiguous float32. `get`, `serialize` and `deserialize` accept
what Keras' do: a name, one of these functions, Keras' own function of the same name
(keras.activations.gelu), None (linear) or a serialized config.
"""
import functools
from typing import Callable, NamedTuple

import numpy as np

from . import _core, ops

__all__ = ["relu", "leaky_relu", "relu6", "sigmoid", "tanh", "softmax", "log_softmax", "linear",
           "exponential", "gelu", "silu", "swish", "elu", "selu", "softplus", "softsign",
           "hard_sigmoid", "hard_silu", "hard_swish", "mish", "get", "serialize", "deserialize"]


def _floats(x):
    """x as an array ops accepts: integer and bool inputs are cast to float32, as Keras casts
    them to its float dtype."""
    array = np.asarray(x)
    return array.astype(np.float32) if array.dtype.kind in "biu" else array


def _symbolic(x):
    """Whether x is a symbolic tensor (cnnkit.Input or a layer's output in a functional model):
    as in Keras, an activation function called on one becomes a layer of the model."""
    from .engine.symbolic import KerasTensor
    return isinstance(x, KerasTensor)


def _as_layer(x, name):
    from .layers import Activation
    return Activation(name)(x)


def _no_layer(function, argument):
    raise NotImplementedError(f"cnnkit.activations.{function} on a symbolic tensor runs as a "
                              f"layer, which has no {argument} argument; use its default or a "
                              "layer of its own")


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """max(x, 0); with arguments Keras' general form: values below `threshold` become
    negative_slope * (x - threshold), values above are clipped at max_value."""
    plain = negative_slope == 0 and max_value is None and threshold == 0
    if _symbolic(x):
        from .layers import ReLU
        return _as_layer(x, "relu") if plain else ReLU(max_value, negative_slope, threshold)(x)
    if plain:
        return ops.relu_forward(_floats(x))
    return ops.relu_general_forward(_floats(x), negative_slope, max_value, threshold)


def leaky_relu(x, negative_slope=0.2):
    if _symbolic(x):
        from .layers import LeakyReLU
        return LeakyReLU(negative_slope)(x)
    return ops.leaky_relu_forward(_floats(x), negative_slope)


def relu6(x):
    return _as_layer(x, "relu6") if _symbolic(x) else ops.relu6_forward(_floats(x))


def sigmoid(x):
    return _as_layer(x, "sigmoid") if _symbolic(x) else ops.sigmoid_forward(_floats(x))


def tanh(x):
    return _as_layer(x, "tanh") if _symbolic(x) else ops.tanh_forward(_floats(x))


def softmax(x, axis=-1):
    if _symbolic(x):
        from .layers import Softmax
        return Softmax(axis)(x)
    return ops.softmax_forward(_floats(x), axis)


def log_softmax(x, axis=-1):
    if _symbolic(x):
        if axis != -1:
            _no_layer("log_softmax", "axis")
        return _as_layer(x, "log_softmax")
    return ops.log_softmax_forward(_floats(x), axis)


def linear(x):
    return x


def exponential(x):
    return _as_layer(x, "exponential") if _symbolic(x) else ops.exponential_forward(_floats(x))


def gelu(x, approximate=False):
    if _symbolic(x):
        if approximate is not False:
            _no_layer("gelu", "approximate")
        return _as_layer(x, "gelu")
    return ops.gelu_forward(_floats(x), approximate)


def silu(x):
    return _as_layer(x, "silu") if _symbolic(x) else ops.silu_forward(_floats(x))


def elu(x, alpha=1.0):
    if _symbolic(x):
        from .layers import ELU
        return ELU(alpha)(x)
    return ops.elu_forward(_floats(x), alpha)


def selu(x):
    return _as_layer(x, "selu") if _symbolic(x) else ops.selu_forward(_floats(x))


def softplus(x):
    return _as_layer(x, "softplus") if _symbolic(x) else ops.softplus_forward(_floats(x))


def softsign(x):
    return _as_layer(x, "softsign") if _symbolic(x) else ops.softsign_forward(_floats(x))


def hard_sigmoid(x):
    """Keras 3's hard_sigmoid: relu6(x + 3) / 6."""
    return _as_layer(x, "hard_sigmoid") if _symbolic(x) else ops.hard_sigmoid_forward(_floats(x))


def hard_silu(x):
    return _as_layer(x, "hard_silu") if _symbolic(x) else ops.hard_silu_forward(_floats(x))


def mish(x):
    return _as_layer(x, "mish") if _symbolic(x) else ops.mish_forward(_floats(x))


swish = silu  # Keras' aliases: the same function, serialized under the first name
hard_swish = hard_silu


class Kernels(NamedTuple):
    """The raw kernels of an activation, as layers call them on C-contiguous float32 arrays.

    forward(x, out=None) -> y and backward(dy, saved, out=None) -> dx, where saved is x when
    saves_input, else y (what the derivative needs)."""
    forward: Callable
    backward: Callable
    saves_input: bool


def _kernels(name, saves_input, **params):
    forward = getattr(_core, f"{name}_forward")
    backward = getattr(_core, f"{name}_backward")
    if params:
        forward, backward = (functools.partial(forward, **params),
                             functools.partial(backward, **params))
    return Kernels(forward, backward, saves_input)


# name -> (public function, kernels with Keras' default arguments; None for linear)
_ACTIVATIONS = {
    "relu": (relu, _kernels("relu", False)),
    "leaky_relu": (leaky_relu, _kernels("relu_general", True, negative_slope=0.2)),
    "relu6": (relu6, _kernels("relu_general", True, max_value=6.0)),
    "sigmoid": (sigmoid, _kernels("sigmoid", False)),
    "tanh": (tanh, _kernels("tanh", False)),
    "softmax": (softmax, _kernels("softmax", False)),
    "log_softmax": (log_softmax, _kernels("log_softmax", False)),
    "linear": (linear, None),
    "exponential": (exponential, _kernels("exponential", False)),
    "gelu": (gelu, _kernels("gelu", True)),
    "silu": (silu, _kernels("silu", True)),
    "elu": (elu, _kernels("elu", True)),
    "selu": (selu, _kernels("selu", True)),
    "softplus": (softplus, _kernels("softplus", True)),
    "softsign": (softsign, _kernels("softsign", True)),
    "hard_sigmoid": (hard_sigmoid, _kernels("hard_sigmoid", True)),
    "hard_silu": (hard_silu, _kernels("hard_silu", True)),
    "mish": (mish, _kernels("mish", True)),
}
_ALIASES = {"swish": "silu", "hard_swish": "hard_silu"}


def _available():
    return sorted(set(_ACTIVATIONS) | set(_ALIASES))


def _unknown(identifier):
    return ValueError(f"Unknown activation {identifier!r}; cnnkit has {_available()} (or None "
                      "for linear)")


def _name_of(identifier):
    """The canonical name of an identifier, or None if it names no activation of ours."""
    if isinstance(identifier, str):
        key = identifier.lower()
        key = _ALIASES.get(key, key)
        return key if key in _ACTIVATIONS else None
    if isinstance(identifier, dict):
        # Keras' serialized form: {"module": "keras.activations", "class_name": "function",
        # "config": "relu", ...}
        config = identifier.get("config")
        return _name_of(config) if isinstance(config, str) else None
    for name, (function, _) in _ACTIVATIONS.items():
        if identifier is function:
            return name
    if callable(identifier) and not isinstance(identifier, functools.partial):
        # Keras' own functions (keras.activations.gelu, keras.ops.relu ...), by module and name.
        module = getattr(identifier, "__module__", None) or ""
        if module.split(".")[0] in ("keras", "tf_keras"):
            return _name_of(getattr(identifier, "__name__", None) or "")
    return None


def serialize(identifier):
    """None, a name or a function -> its canonical name ('linear' for None, 'silu' for swish),
    as Keras stores it in a layer's config. Anything else is a ValueError listing the names."""
    if identifier is None:
        return "linear"
    name = _name_of(identifier)
    if name is None:
        raise _unknown(identifier)
    return name


def deserialize(config, custom_objects=None):
    """A name or a serialized config -> the function; custom_objects may map a name to one of
    our functions."""
    if isinstance(config, str) and custom_objects and config in custom_objects:
        return get(custom_objects[config])
    return get(config)


def get(identifier):
    """The public function for a name, a function, a config or None (linear)."""
    return _ACTIVATIONS[serialize(identifier)][0]


def kernels(identifier):
    """Kernels (forward, backward, saves_input) of an activation, or None for linear."""
    return _ACTIVATIONS[serialize(identifier)][1]
