"""Optimizers, as keras.optimizers: SGD, RMSprop (compile()'s default), Adam, AdamW, Adagrad,
Nadam and Adamax, by name, object or serialized dict; learning-rate schedules in
cnnkit.optimizers.schedules.

Each optimizer's update of a parameter is one fused C++ kernel (see base.py)."""
from . import schedules
from .adam import Adam, Adamax, AdamW, Nadam
from .base import Optimizer
from .rmsprop import Adagrad, RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "RMSprop", "Adam", "AdamW", "Adagrad", "Nadam", "Adamax",
           "schedules", "get", "serialize", "deserialize"]

_CLASSES = {cls.__name__: cls for cls in (SGD, RMSprop, Adam, AdamW, Adagrad, Nadam, Adamax)}
_BY_NAME = {name.lower(): cls for name, cls in _CLASSES.items()}
# Keras optimizers cnnkit does not have: named so the error says so, not "unknown".
_KERAS_ONLY = ("adadelta", "adafactor", "ftrl", "lamb", "lion", "muon", "loss_scale_optimizer",
               "lossscaleoptimizer", "schedule_free_adamw", "schedulefreeadamw")


def serialize(optimizer):
    """An optimizer -> Keras' {"module", "class_name", "config", "registered_name"} dict."""
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"serialize: expected a cnnkit optimizer, got {optimizer!r}")
    builtin = _CLASSES.get(type(optimizer).__name__) is type(optimizer)
    return {"module": "keras.optimizers" if builtin else type(optimizer).__module__,
            "class_name": type(optimizer).__name__, "config": optimizer.get_config(),
            "registered_name": None if builtin else type(optimizer).__name__}


def deserialize(config, custom_objects=None):
    """serialize()'s dict (or Keras 2's {"class_name", "config"}) -> an optimizer."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise TypeError(f"deserialize: expected a dict with 'class_name' and 'config', got {config!r}")
    classes = {**_CLASSES, **(custom_objects or {})}
    name = config["class_name"]
    cls = classes.get(name) or _BY_NAME.get(str(name).lower())
    if cls is None:
        _unknown(name)
    return cls.from_config(dict(config.get("config", {})), custom_objects=custom_objects)


def _unknown(identifier):
    if str(identifier).lower() in _KERAS_ONLY:
        raise ValueError(f"Optimizer {identifier!r} is a Keras optimizer cnnkit does not have; "
                         f"cnnkit has {sorted(_BY_NAME)}")
    raise ValueError(f"Unknown optimizer {identifier!r}; cnnkit has {sorted(_BY_NAME)}")


def get(identifier):
    """A name ('rmsprop', 'Adam', 'adamw', ...), an Optimizer or a serialized dict -> an
    Optimizer (a name gives one with Keras' defaults); None stays None, as in Keras."""
    if identifier is None or isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower())
        if cls is None:
            _unknown(identifier)
        return cls()
    raise ValueError(f"Could not interpret optimizer identifier: {identifier!r} (a name, an "
                     "Optimizer or a serialized dict)")


_KERAS_ONLY_CLASSES = ("Adadelta", "Adafactor", "Ftrl", "Lamb", "Lion", "Muon",
                       "LossScaleOptimizer", "ScheduleFreeAdamW")


def __getattr__(name):
    # keras.optimizers.Lion and the like: say that cnnkit lacks them, not just "no attribute".
    if name in _KERAS_ONLY_CLASSES:
        raise AttributeError(f"cnnkit.optimizers has no {name}: a Keras optimizer cnnkit does not "
                             f"have; cnnkit has {', '.join(_CLASSES)}")
    raise AttributeError(f"module 'cnnkit.optimizers' has no attribute {name!r}")
