"""Learning-rate schedules, as keras.optimizers.schedules: a schedule maps the optimizer's step
(optimizer.iterations, 0 for the first update) to a learning rate.

The values are computed in Python floats (double precision); Keras computes them in float32,
so they agree to float32 rounding. get_config() uses Keras' keys, and serialize/deserialize
Keras' {"module", "class_name", "config", "registered_name"} form."""
import math
import numbers

from .._args import _is_int, real_number

__all__ = ["LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay",
           "PolynomialDecay", "InverseTimeDecay", "CosineDecay", "CosineDecayRestarts",
           "serialize", "deserialize"]


def _step(step, fn):
    """The step as a float; a number (Python or NumPy scalar), not a bool."""
    if hasattr(step, "item") and getattr(step, "ndim", 0) == 0:
        step = step.item()
    if not isinstance(step, numbers.Real) or isinstance(step, bool):
        raise TypeError(f"{fn}: step must be a number (the optimizer's iterations), got {step!r}")
    return float(step)


def _decay_steps(value, name, fn):
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{fn}: {name} must be a number, got {value!r}")
    if not value > 0:
        raise ValueError(f"{fn}: Argument `{name}` must be > 0. Received: {name}={value}")
    return value


def _number(value, name, fn, **limits):
    """Checks a number (finite, within limits) and keeps it as given, so that get_config()
    returns what the user passed (an int stays an int, as in Keras)."""
    real_number(value, name, fn, **limits)
    return value


def _rate(value, name, fn):
    """A learning rate given as a number: a schedule or anything else here is a TypeError."""
    real_number(value, name, fn, low=0.0)
    return value


class LearningRateSchedule:
    """The base of every schedule: subclasses define __call__(step) and get_config()."""

    def __call__(self, step):
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must "
                                  "override `__call__(self, step)`.")

    def get_config(self):
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must "
                                  "override `get_config()` in order to be serializable.")

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class _RateOverSteps(LearningRateSchedule):
    """The schedules of a rate decayed by step / decay_steps (floored when staircase); a
    subclass says how, in _decayed(progress)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase, name):
        fn = type(self).__name__
        self.initial_learning_rate = _rate(initial_learning_rate, "initial_learning_rate", fn)
        self.decay_steps = _decay_steps(decay_steps, "decay_steps", fn)
        self.decay_rate = _number(decay_rate, "decay_rate", fn, low=0.0)
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step):
        p = _step(step, self.name) / self.decay_steps
        return self._decayed(math.floor(p) if self.staircase else p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class ExponentialDecay(_RateOverSteps):
    """initial_learning_rate * decay_rate ^ (step / decay_steps) (floored when staircase)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    def _decayed(self, p):
        return float(self.initial_learning_rate) * float(self.decay_rate) ** p


class PiecewiseConstantDecay(LearningRateSchedule):
    """values[0] up to boundaries[0] (inclusive), values[i] in (boundaries[i-1], boundaries[i]],
    values[-1] after the last boundary."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        fn = type(self).__name__
        if not isinstance(boundaries, (list, tuple)) or not isinstance(values, (list, tuple)):
            raise TypeError(f"{fn}: boundaries and values must be lists, got "
                            f"{boundaries!r} and {values!r}")
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                f"{fn}: The length of boundaries should be 1 less than the length of values. "
                f"Received: boundaries={boundaries} of length {len(boundaries)}, and "
                f"values={values} of length {len(values)}.")
        for b in boundaries:
            real_number(b, "boundaries", fn)
        for v in values:
            real_number(v, "values", fn)
        if any(b1 < b0 for b0, b1 in zip(boundaries, boundaries[1:])):
            raise ValueError(f"{fn}: boundaries must be increasing, got {boundaries}")
        self.boundaries = list(boundaries)
        self.values = list(values)
        self.name = name

    def __call__(self, step):
        step = _step(step, self.name)
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return float(value)
        return float(self.values[-1])

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """(initial - end) * (1 - step / decay_steps) ^ power + end, step capped at decay_steps
    (or, with cycle, decay_steps stretched to the next multiple of itself)."""

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0,
                 cycle=False, name="PolynomialDecay"):
        fn = type(self).__name__
        self.initial_learning_rate = _rate(initial_learning_rate, "initial_learning_rate", fn)
        self.decay_steps = _decay_steps(decay_steps, "decay_steps", fn)
        self.end_learning_rate = _rate(end_learning_rate, "end_learning_rate", fn)
        self.power = _number(power, "power", fn)
        self.cycle = bool(cycle)
        self.name = name

    def __call__(self, step):
        step = _step(step, self.name)
        decay_steps = float(self.decay_steps)
        if self.cycle:
            decay_steps *= 1.0 if step == 0 else math.ceil(step / self.decay_steps)
        else:
            step = min(step, decay_steps)
        p = step / decay_steps
        initial, end = float(self.initial_learning_rate), float(self.end_learning_rate)
        return (initial - end) * (1 - p) ** float(self.power) + end

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "end_learning_rate": self.end_learning_rate,
                "power": self.power, "cycle": self.cycle, "name": self.name}


class InverseTimeDecay(_RateOverSteps):
    """initial_learning_rate / (1 + decay_rate * step / decay_steps) (floored when staircase)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="InverseTimeDecay"):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    def _decayed(self, p):
        return float(self.initial_learning_rate) / (1.0 + float(self.decay_rate) * p)


class CosineDecay(LearningRateSchedule):
    """A cosine from the rate down to alpha times it over decay_steps; with warmup_target, first
    a linear warmup from initial_learning_rate to warmup_target over warmup_steps."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        fn = type(self).__name__
        self.initial_learning_rate = _rate(initial_learning_rate, "initial_learning_rate", fn)
        self.decay_steps = _decay_steps(decay_steps, "decay_steps", fn)
        self.alpha = _number(alpha, "alpha", fn)
        self.name = name
        if warmup_target is not None:
            _rate(warmup_target, "warmup_target", fn)
        if not _is_int(warmup_steps) or warmup_steps < 0:
            raise ValueError(f"{fn}: warmup_steps must be an integer >= 0, got {warmup_steps!r}")
        self.warmup_target = warmup_target
        self.warmup_steps = warmup_steps

    def _decay(self, step, decay_from):
        cosine = 0.5 * (1.0 + math.cos(math.pi * step / self.decay_steps))
        return decay_from * ((1 - self.alpha) * cosine + self.alpha)

    def __call__(self, step):
        step = _step(step, self.name)
        initial = float(self.initial_learning_rate)
        if self.warmup_target is None:
            return self._decay(min(step, float(self.decay_steps)), initial)
        warmup_steps, target = float(self.warmup_steps), float(self.warmup_target)
        step = min(step, self.decay_steps + warmup_steps)
        if step < warmup_steps:
            return (target - initial) * (step / warmup_steps) + initial
        return self._decay(step - warmup_steps, target)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


class CosineDecayRestarts(LearningRateSchedule):
    """SGDR: cosine decays over first_decay_steps, then restarts, each period t_mul times longer
    and each restart m_mul times lower."""

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0,
                 name="SGDRDecay"):
        fn = type(self).__name__
        self.initial_learning_rate = _rate(initial_learning_rate, "initial_learning_rate", fn)
        self.first_decay_steps = _decay_steps(first_decay_steps, "first_decay_steps", fn)
        self._t_mul = _number(t_mul, "t_mul", fn, low=0.0)
        self._m_mul = _number(m_mul, "m_mul", fn, low=0.0)
        self.alpha = _number(alpha, "alpha", fn)
        self.name = name

    def __call__(self, step):
        fraction = _step(step, self.name) / self.first_decay_steps
        t_mul = float(self._t_mul)
        if t_mul == 1.0:
            restart = math.floor(fraction)
            fraction -= restart
        else:
            restart = math.floor(math.log(1.0 - fraction * (1.0 - t_mul)) / math.log(t_mul))
            done = (1.0 - t_mul ** restart) / (1.0 - t_mul)
            fraction = (fraction - done) / t_mul ** restart
        cosine = 0.5 * float(self._m_mul) ** restart * (1.0 + math.cos(math.pi * fraction))
        return float(self.initial_learning_rate) * ((1 - self.alpha) * cosine + self.alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "first_decay_steps": self.first_decay_steps, "t_mul": self._t_mul,
                "m_mul": self._m_mul, "alpha": self.alpha, "name": self.name}


_CLASSES = {cls.__name__: cls for cls in (ExponentialDecay, PiecewiseConstantDecay,
                                           PolynomialDecay, InverseTimeDecay, CosineDecay,
                                           CosineDecayRestarts)}


def serialize(learning_rate_schedule):
    """A schedule -> Keras' {"module", "class_name", "config", "registered_name"} dict."""
    if not isinstance(learning_rate_schedule, LearningRateSchedule):
        raise TypeError(f"serialize: expected a LearningRateSchedule, got {learning_rate_schedule!r}")
    cls = type(learning_rate_schedule)
    builtin = _CLASSES.get(cls.__name__) is cls
    return {"module": "keras.optimizers.schedules" if builtin else cls.__module__,
            "class_name": cls.__name__, "config": learning_rate_schedule.get_config(),
            "registered_name": None if builtin else cls.__name__}


def deserialize(config, custom_objects=None):
    """serialize()'s dict (or Keras 2's {"class_name", "config"}) -> a schedule."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise TypeError(f"deserialize: expected a dict with 'class_name' and 'config', got {config!r}")
    classes = {**_CLASSES, **(custom_objects or {})}
    name = config["class_name"]
    if name not in classes:
        raise ValueError(f"Unknown learning rate schedule {name!r}; cnnkit has "
                         f"{sorted(_CLASSES)} (pass others in custom_objects)")
    return classes[name].from_config(dict(config.get("config", {})))
