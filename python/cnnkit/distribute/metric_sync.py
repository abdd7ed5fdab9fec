"""A metric's state summed over the ranks, so that every rank's result() is the metric over
all ranks' samples (as Keras' metric variables, whose aggregation is a sum across replicas).

cnnkit's metrics (and a user's Metric subclass) keep their state in attributes that
reset_state() assigns: a Mean's total and count, a confusion metric's cell arrays. Those names
are found by running reset_state() on a copy that records what it assigns, once per class.
"""
import copy

import numpy as np

__all__ = ["sum_metric_states"]

_STATE_NAMES = {}


def _state_names(metric):
    cls = type(metric)
    names = _STATE_NAMES.get(cls)
    if names is None:
        assigned = []

        class Recorder(cls):
            def __setattr__(self, name, value):
                assigned.append(name)
                object.__setattr__(self, name, value)
        probe = copy.copy(metric)
        probe.__class__ = Recorder
        probe.reset_state()
        names = _STATE_NAMES[cls] = list(dict.fromkeys(assigned))
    return names


def _check_number(metric, name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating, np.ndarray)):
        raise TypeError(f'metric "{metric.name}": its state {name!r} is a '
                        f"{type(value).__name__}; distributed training sums metric states "
                        "over the ranks, so they must be numbers or numeric arrays")


def sum_metric_states(metrics, world, what):
    """Sums every metric's state over the ranks, in place (one collective for all of them)."""
    parts, layout = [], []
    for metric in metrics:
        for name in _state_names(metric):
            value = getattr(metric, name)
            _check_number(metric, name, value)
            flat = np.asarray(value, np.float64).ravel()
            layout.append((metric, name, value, flat.size))
            parts.append(flat)
    if not parts:
        return
    total = np.concatenate(parts)
    world.allreduce(total, what)
    offset = 0
    for metric, name, value, size in layout:
        summed = total[offset:offset + size]
        offset += size
        if isinstance(value, np.ndarray):
            setattr(metric, name, summed.reshape(value.shape).astype(value.dtype))
        elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            setattr(metric, name, type(value)(round(float(summed[0]))))
        else:
            setattr(metric, name, float(summed[0]))
