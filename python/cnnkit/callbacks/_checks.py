"""Argument checks shared by the callbacks (each error names the callback and the argument),
and the learning-rate access that ReduceLROnPlateau and LearningRateScheduler share."""
import math
import numbers

import numpy as np

from .._args import _is_int


def count(value, name, who):
    """patience, cooldown, start_from_epoch: an integer >= 0."""
    if not _is_int(value):
        raise TypeError(f"{who}: {name} must be an integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{who}: {name} must be 0 or more, got {value!r}")
    return int(value)


def number(value, name, who, low=None, optional=False):
    """A finite real number (not a bool), at least `low` when given; None when optional."""
    if value is None and optional:
        return None
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{who}: {name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{who}: {name} must be finite, got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{who}: {name} must be {low} or more, got {value!r}")
    return value


def verbose(value, who):
    """0 quiet, 1 (or more) messages; a bool is taken as 0 or 1, as Keras takes it."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if not _is_int(value) or value < 0:
        raise TypeError(f"{who}: verbose must be an integer 0 or more, got {value!r}")
    return int(value)


def flag(value, name, who):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{who}: {name} must be True or False, got {value!r}")
    return bool(value)


def text(value, name, who):
    if not isinstance(value, str) or not value:
        raise TypeError(f"{who}: {name} must be a non-empty string, got {value!r}")
    return value


def no_extra(kwargs, who):
    if kwargs:
        raise TypeError(f"{who}: unexpected keyword arguments {sorted(kwargs)}")


def save_freq(value, who):
    """'epoch' or a positive integer number of batches."""
    if isinstance(value, str) and value == "epoch":
        return value
    if not _is_int(value):
        raise ValueError(f"{who}: unrecognized save_freq: {value!r}; expected 'epoch' or an "
                         "integer number of batches")
    if value < 1:
        raise ValueError(f"{who}: save_freq must be 'epoch' or a positive number of batches, "
                         f"got {value!r}")
    return int(value)


# ---------------------------------------------------------------- the optimizer's learning rate

def optimizer_of(model, who):
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not hasattr(optimizer, "learning_rate"):
        raise ValueError(f'{who}: the optimizer must have a "learning_rate" attribute; '
                         "compile the model with an optimizer first")
    return optimizer


def get_learning_rate(model, who):
    return float(optimizer_of(model, who).learning_rate)


def set_learning_rate(model, value, who):
    """Sets the optimizer's rate; one built with a LearningRateSchedule refuses (a TypeError,
    as Keras 3's optimizers), and the message then says which callback tried."""
    optimizer = optimizer_of(model, who)
    try:
        optimizer.learning_rate = value
    except TypeError as error:
        raise TypeError(f"{who} cannot set the learning rate of this optimizer: {error}") from None
