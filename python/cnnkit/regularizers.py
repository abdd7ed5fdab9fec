"""cnnkit.regularizers, as keras.regularizers: weight and activity penalties added to the loss.

A regularizer is given to a layer (kernel_regularizer=, bias_regularizer=,
activity_regularizer=, ...) by name ('l1', 'l2', 'l1l2' and the class names), as an object, or
as Keras' serialized dict. In training, the penalty of each regularized weight joins the loss
and its gradient joins the weight's gradient; an activity regularizer's penalty on a layer's
output, divided by the batch size as Keras does, joins the loss and its gradient joins the
gradient flowing back into that output. evaluate() reports the same total as Keras.

Penalties are sums over the whole array computed in float64 without a temporary array: a warm
training step allocates nothing (gradients go through the caller's scratch buffer).
"""
import numpy as np

__all__ = ["Regularizer", "L1", "L2", "L1L2", "OrthogonalRegularizer", "l1", "l2", "l1_l2",
           "get", "serialize", "deserialize"]


def _factor(value, name, cls):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{cls}: {name} must be a number, got {value!r}") from None
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{cls}: {name} must be a finite number >= 0, got {value!r}")
    return value


class Regularizer:
    """penalty(x, scratch) -> float; add_gradient(x, grad, scale, scratch) adds
    scale * d penalty / dx to grad in place. scratch: None, or a float32 array shaped like x
    that may be overwritten (then nothing is allocated)."""

    def __call__(self, x):
        return self.penalty(np.asarray(x, dtype=np.float32))

    def penalty(self, x, scratch=None):
        raise NotImplementedError

    def add_gradient(self, x, grad, scale, scratch):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class L1L2(Regularizer):
    """l1 * sum(|x|) + l2 * sum(x ** 2)."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _factor(l1, "l1", type(self).__name__)
        self.l2 = _factor(l2, "l2", type(self).__name__)

    def penalty(self, x, scratch=None):
        flat, total = x.reshape(-1), 0.0
        if self.l1:
            if scratch is None:
                total += self.l1 * float(np.abs(flat).sum(dtype=np.float64))
            else:  # sum(|x|) = x . sign(x), with sign(x) in the scratch buffer
                sign = np.sign(x, out=scratch).reshape(-1)
                total += self.l1 * float(np.dot(flat, sign))
        if self.l2:
            total += self.l2 * float(np.dot(flat, flat))
        return total

    def add_gradient(self, x, grad, scale, scratch):
        if self.l1:
            np.sign(x, out=scratch)
            scratch *= np.float32(scale * self.l1)
            grad += scratch
        if self.l2:
            np.multiply(x, np.float32(2.0 * scale * self.l2), out=scratch)
            grad += scratch

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


class OrthogonalRegularizer(Regularizer):
    def __init__(self, factor=0.01, mode="rows"):
        raise NotImplementedError("cnnkit.regularizers.OrthogonalRegularizer is not supported "
                                  "yet; use L1, L2 or L1L2")


l1, l2, l1_l2 = L1, L2, L1L2

_BY_NAME = {"L1": L1, "L2": L2, "L1L2": L1L2, "OrthogonalRegularizer": OrthogonalRegularizer,
            "l1": L1, "l2": L2, "l1l2": L1L2, "l1_l2": L1L2,
            "orthogonal_regularizer": OrthogonalRegularizer}


def serialize(regularizer):
    """Keras 3's config entry of a regularizer (None for none)."""
    if regularizer is None:
        return None
    return {"module": "keras.regularizers", "class_name": type(regularizer).__name__,
            "config": regularizer.get_config(), "registered_name": None}


def deserialize(config, custom_objects=None):
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"cnnkit.regularizers.deserialize: expected a dict with 'class_name' "
                         f"and 'config', got {config!r}")
    name = config["class_name"]
    cls = (custom_objects or {}).get(name) or _BY_NAME.get(name)
    if cls is None:
        raise ValueError(f"Unknown regularizer {name!r}; cnnkit has {sorted(_BY_NAME)}")
    return cls.from_config(config.get("config") or {})


def get(identifier):
    """A regularizer object from None, a name, a config dict, a class or an instance."""
    if identifier is None:
        return None
    if isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier)
        if cls is None:
            raise ValueError(f"Could not interpret regularizer identifier: {identifier!r}; "
                             f"cnnkit has {sorted(_BY_NAME)}")
        return cls()
    if isinstance(identifier, type) and issubclass(identifier, Regularizer):
        return identifier()
    raise TypeError(f"Could not interpret regularizer identifier: {identifier!r}. cnnkit takes "
                    "cnnkit.regularizers objects (L1, L2, L1L2), their names or configs; a "
                    "plain function cannot be differentiated here")
