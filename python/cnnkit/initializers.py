"""Weight initializers by name or object, as keras.initializers.

Fans follow Keras: a dense kernel (in, out) has fan_in=in, fan_out=out; a conv kernel
(kh, kw, cin, cout) has fan_in = kh*kw*cin and fan_out = kh*kw*cout. Unseeded initializers draw
from cnnkit's global generator (cnnkit.utils.set_random_seed); a seeded one gives the same
values on every call, as in Keras.
"""
import math

import numpy as np

from . import utils

__all__ = ["Initializer", "Zeros", "Ones", "Constant", "GlorotUniform", "GlorotNormal",
           "HeNormal", "HeUniform", "RandomNormal", "RandomUniform", "get", "serialize"]


def compute_fans(shape):
    """(fan_in, fan_out) of a weight shape, as Keras computes them."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


class Initializer:
    """Called as init(shape) -> a C-contiguous float32 array of that shape."""

    def __call__(self, shape, dtype="float32"):
        return np.ascontiguousarray(self._draw(tuple(int(s) for s in shape)), dtype=dtype)

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class Zeros(Initializer):
    def _draw(self, shape):
        return np.zeros(shape)


class Ones(Initializer):
    def _draw(self, shape):
        return np.ones(shape)


class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = float(value)

    def _draw(self, shape):
        return np.full(shape, self.value)

    def get_config(self):
        return {"value": self.value}


class _Random(Initializer):
    def __init__(self, seed=None):
        self.seed = seed

    def _generator(self):
        # A seeded initializer repeats itself, as Keras' do; an unseeded one moves on.
        return utils.global_generator() if self.seed is None else np.random.default_rng(self.seed)

    def get_config(self):
        return {"seed": self.seed}


class RandomUniform(_Random):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval, self.maxval = float(minval), float(maxval)

    def _draw(self, shape):
        return self._generator().uniform(self.minval, self.maxval, shape)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class RandomNormal(_Random):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def _draw(self, shape):
        return self._generator().normal(self.mean, self.stddev, shape)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


def _truncated_normal(generator, stddev, shape):
    """Normal(0, stddev) redrawn outside two standard deviations, as tf.random.truncated_normal."""
    values = generator.standard_normal(shape)
    outside = np.abs(values) > 2
    while outside.any():
        values[outside] = generator.standard_normal(int(outside.sum()))
        outside = np.abs(values) > 2
    return values * stddev


class VarianceScaling(_Random):
    """The family behind Glorot and He, with Keras' arguments and constants."""

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        super().__init__(seed)
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"VarianceScaling: mode must be fan_in, fan_out or fan_avg, got {mode!r}")
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise ValueError(f"VarianceScaling: unknown distribution {distribution!r}")
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def _draw(self, shape):
        fan_in, fan_out = compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, fan)
        generator = self._generator()
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return generator.uniform(-limit, limit, shape)
        if self.distribution == "untruncated_normal":
            return generator.normal(0.0, math.sqrt(variance), shape)
        # 0.8796... is the stddev of a unit normal truncated at +-2: Keras divides it out.
        return _truncated_normal(generator, math.sqrt(variance) / 0.87962566103423978, shape)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                "seed": self.seed}


def _preset(name, scale, mode, distribution):
    class Preset(VarianceScaling):
        def __init__(self, seed=None):
            super().__init__(scale, mode, distribution, seed)

        def get_config(self):
            return {"seed": self.seed}
    Preset.__name__ = Preset.__qualname__ = name
    return Preset


GlorotUniform = _preset("GlorotUniform", 1.0, "fan_avg", "uniform")
GlorotNormal = _preset("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
HeNormal = _preset("HeNormal", 2.0, "fan_in", "truncated_normal")
HeUniform = _preset("HeUniform", 2.0, "fan_in", "uniform")

_BY_NAME = {"zeros": Zeros, "ones": Ones, "constant": Constant, "glorot_uniform": GlorotUniform,
            "glorot_normal": GlorotNormal, "he_normal": HeNormal, "he_uniform": HeUniform,
            "random_normal": RandomNormal, "random_uniform": RandomUniform,
            "variance_scaling": VarianceScaling}
_CLASSES = {cls.__name__: cls for cls in _BY_NAME.values()}


def get(identifier):
    """A name ('glorot_uniform'), a class name, a {'class_name', 'config'} dict or an
    Initializer -> an Initializer."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, dict):
        return _CLASSES[identifier["class_name"]].from_config(identifier.get("config", {}))
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower()) or _CLASSES.get(identifier)
        if cls is not None:
            return cls()
    raise ValueError(f"Unknown initializer {identifier!r}; cnnkit has {sorted(_BY_NAME)}")


def serialize(initializer):
    return {"class_name": type(initializer).__name__, "config": initializer.get_config()}
