"""An optimizer's state in Keras 3's order (the `optimizer/vars/N` of a .keras weights file)
and in cnnkit's (get_state(): each parameter's slots together, in slot_names order).

Keras 3 makes an optimizer's variables in this order: the step count ("iteration"), the learning
rate (unless it is a schedule), then groups of slots, each group going through every trainable
weight in turn (a group of two slots alternates them: momentum 0, velocity 0, momentum 1, ...),
then a few scalars of its own (Nadam's running product of momentum coefficients). The groups
of each optimizer, as Keras 3 builds them, are below; the moving average of use_ema comes first.
"""
import numpy as np

from .._optimizer_args import nadam_u_product
from ..optimizers import schedules

_GROUPS = {
    "SGD": [("momentum",)],
    "RMSprop": [("velocity",), ("momentum",), ("average_gradient",)],
    "Adam": [("momentum", "velocity"), ("velocity_hat",)],
    "AdamW": [("momentum", "velocity"), ("velocity_hat",)],
    "Adagrad": [("accumulator",)],
    "Nadam": [("momentum", "velocity")],
    "Adamax": [("momentum", "norm")],
}


def _has_rate_variable(optimizer):
    return not isinstance(optimizer._learning_rate, schedules.LearningRateSchedule)


def _tail(optimizer):
    """Keras' scalars after the slots: Nadam's u_product."""
    return ["u_product"] if type(optimizer).__name__ == "Nadam" else []


def _order(optimizer, count):
    """[(parameter index, slot index within the parameter)] in Keras' order."""
    name = type(optimizer).__name__
    if name not in _GROUPS:
        raise ValueError(f"{name}: cnnkit does not know Keras' layout of this optimizer's state")
    slots = list(optimizer.slot_names)
    groups = ([("average",)] if optimizer.use_ema else []) + _GROUPS[name]
    order = []
    for group in groups:
        present = [s for s in group if s in slots]
        order += [(i, slots.index(s)) for i in range(count) for s in present]
    if len(order) != len(slots) * count:
        raise ValueError(f"{name}: its slots {slots} do not all have a place in Keras' layout")
    return order


def to_keras(optimizer, params):
    """The list of arrays Keras 3 keeps for this optimizer over these trainable weights."""
    iterations, arrays = optimizer.get_state()
    per = len(optimizer.slot_names)
    if not arrays:  # never stepped: Keras' zeros
        arrays = [np.zeros(p.shape, np.float32) for p in params for _ in range(per)]
    out = [np.array(iterations, dtype=np.int64)]
    if _has_rate_variable(optimizer):
        out.append(np.array(optimizer.learning_rate, dtype=np.float32))
    out += [np.asarray(arrays[i * per + s], np.float32) for i, s in _order(optimizer, len(params))]
    for name in _tail(optimizer):
        if name == "u_product":
            out.append(np.array(nadam_u_product(optimizer.beta_1, iterations), np.float32))
    return out


def from_keras(optimizer, arrays, params, path):
    """Restores Keras 3's list of optimizer arrays into this (compiled) cnnkit optimizer."""
    head = 1 + _has_rate_variable(optimizer)
    order = _order(optimizer, len(params))
    expected = head + len(order) + len(_tail(optimizer))
    if len(arrays) != expected:
        raise ValueError(f"{path}: the {type(optimizer).__name__} state holds {len(arrays)} "
                         f"arrays; this model's optimizer keeps {expected}")
    per = len(optimizer.slot_names)
    slots = [None] * (per * len(params))
    for array, (i, s) in zip(arrays[head:head + len(order)], order):
        if tuple(array.shape) != tuple(params[i].shape):
            raise ValueError(f"{path}: optimizer state of shape {tuple(array.shape)} for a "
                             f"weight of shape {tuple(params[i].shape)}")
        slots[i * per + s] = np.asarray(array, np.float32)
    optimizer.set_state(int(np.asarray(arrays[0])), slots, params)
    if head == 2:  # Keras keeps the current rate (a callback may have changed it) in float32
        rate = np.float32(np.asarray(arrays[1]))
        if rate != np.float32(optimizer.learning_rate):
            optimizer.learning_rate = float(rate)
