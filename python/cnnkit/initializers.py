"""Weight initializers by name or object, as keras.initializers.

Names, classes, arguments, defaults and configs are Keras 3's: every class is also reachable
by its snake_case name (`he_uniform` is HeUniform), get() takes a name, a class, an instance, a
{"class_name", "config"} dict (Keras' serialize() form, with or without "module" and
"registered_name") or None, and serialize() writes Keras' form.

Fans follow Keras: a dense kernel (in, out) has fan_in=in, fan_out=out; a conv kernel
(kh, kw, cin, cout) has fan_in = kh*kw*cin and fan_out = kh*kw*cout; input_axes/output_axes
override them. Unseeded initializers draw from cnnkit's global generator
(cnnkit.utils.set_random_seed); a seeded one gives the same values on every call, as in Keras 3,
and the very values Keras gives on its NumPy backend (the same NumPy generator and draws).
Values are drawn in float64 and returned as C-contiguous float32 (or the dtype asked for).
"""
import inspect
import math
import numbers

import numpy as np

from ._naming import snake_case
from . import utils

__all__ = ["Initializer", "Zeros", "Ones", "Constant", "Identity", "RandomNormal",
           "RandomUniform", "TruncatedNormal", "VarianceScaling", "GlorotUniform", "GlorotNormal",
           "HeNormal", "HeUniform", "LecunNormal", "LecunUniform", "Orthogonal",
           "zeros", "ones", "constant", "identity", "random_normal", "random_uniform",
           "truncated_normal", "variance_scaling", "glorot_uniform", "glorot_normal",
           "he_normal", "he_uniform", "lecun_normal", "lecun_uniform", "orthogonal",
           "compute_fans", "get", "serialize", "deserialize"]


def compute_fans(shape, input_axes=None, output_axes=None):
    """(fan_in, fan_out) of a weight shape, as Keras computes them."""
    shape = tuple(shape)
    if input_axes is not None and output_axes is not None:
        return (int(math.prod(shape[a] for a in input_axes)),
                int(math.prod(shape[a] for a in output_axes)))
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return int(shape[0]), int(shape[0])
    receptive_field = math.prod(shape[:-2])
    return int(shape[-2] * receptive_field), int(shape[-1] * receptive_field)


def _real(value, name, who, low=-math.inf, positive=False):
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{who}: {name} must be a real number, got {value!r}")
    if not math.isfinite(value) or value < low or (positive and value <= 0):
        bound = "positive" if positive else f">= {low}"
        raise ValueError(f"{who}: {name} must be a finite number {bound}, got {value!r}")
    return value


class Initializer:
    """Called as init(shape, dtype=None) -> a C-contiguous array of that shape (float32 unless
    dtype says otherwise)."""

    def __call__(self, shape, dtype=None):
        shape = tuple(int(s) for s in shape)
        if any(s < 0 for s in shape):
            raise ValueError(f"{type(self).__name__}: shape must hold non-negative sizes, got "
                             f"{shape}")
        dtype = np.float32 if dtype is None else np.dtype(dtype)
        # np.asarray keeps a 0-d array 0-d (np.ascontiguousarray would make it 1-d)
        return np.asarray(self._draw(shape), dtype=dtype, order="C")

    def _draw(self, shape):
        raise NotImplementedError(f"{type(self).__name__} does not define _draw(shape)")

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def clone(self):
        return type(self).from_config(self.get_config())

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Zeros(Initializer):
    def _draw(self, shape):
        return np.zeros(shape)


class Ones(Initializer):
    def _draw(self, shape):
        return np.ones(shape)


class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = _real(value, "value", "Constant")

    def _draw(self, shape):
        return np.full(shape, float(self.value))

    def get_config(self):
        return {"value": self.value}


class Identity(Initializer):
    """gain * the identity matrix; 2-D shapes only (rectangular ones get ones on the diagonal).

    Keras' own get_config of Identity forgets gain (it returns {}); cnnkit's keeps it, so that
    a config round-trips."""

    def __init__(self, gain=1.0):
        self.gain = _real(gain, "gain", "Identity")

    def _draw(self, shape):
        if len(shape) != 2:
            raise ValueError("Identity: the identity matrix initializer can only be used for 2D "
                             f"matrices, got shape={shape} of rank {len(shape)}")
        return float(self.gain) * np.eye(*shape)

    def get_config(self):
        return {"gain": self.gain}


class _Random(Initializer):
    def __init__(self, seed=None):
        if seed is not None and (not isinstance(seed, numbers.Integral)
                                 or isinstance(seed, (bool, np.bool_)) or seed < 0):
            raise ValueError(f"{type(self).__name__}: seed must be a non-negative integer or "
                             f"None, got {seed!r}")
        self.seed = None if seed is None else int(seed)

    def _generator(self):
        # A seeded initializer repeats itself, as Keras' do; an unseeded one moves on.
        return utils.global_generator() if self.seed is None else np.random.default_rng(self.seed)

    def get_config(self):
        return {"seed": self.seed}


class RandomNormal(_Random):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean = _real(mean, "mean", "RandomNormal")
        self.stddev = _real(stddev, "stddev", "RandomNormal", low=0.0)
        super().__init__(seed)

    def _draw(self, shape):
        return self._generator().normal(self.mean, self.stddev, shape)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


class RandomUniform(_Random):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        self.minval = _real(minval, "minval", "RandomUniform")
        self.maxval = _real(maxval, "maxval", "RandomUniform")
        if maxval < minval:
            raise ValueError(f"RandomUniform: maxval ({maxval!r}) must not be below minval "
                             f"({minval!r})")
        super().__init__(seed)

    def _draw(self, shape):
        return self._generator().uniform(self.minval, self.maxval, shape)

    def get_config(self):
        return {**super().get_config(), "minval": self.minval, "maxval": self.maxval}


def _truncated_normal(generator, mean, stddev, shape):
    """Normal(mean, stddev) without the values beyond two standard deviations: whole batches
    are drawn and the values inside kept in order until there are enough, as Keras' NumPy
    backend does, so that a seeded initializer gives the values Keras gives there."""
    count = math.prod(shape)
    kept, have = [np.zeros(0)], 0
    while have < count:
        batch = generator.normal(loc=mean, scale=stddev, size=count)
        inside = batch[(batch >= mean - 2 * stddev) & (batch <= mean + 2 * stddev)]
        kept.append(inside)
        have += inside.size
    return np.concatenate(kept)[:count].reshape(shape)


class TruncatedNormal(_Random):
    """Normal(mean, stddev) with values beyond two standard deviations drawn again."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean = _real(mean, "mean", "TruncatedNormal")
        self.stddev = _real(stddev, "stddev", "TruncatedNormal", low=0.0)
        super().__init__(seed)

    def _draw(self, shape):
        return _truncated_normal(self._generator(), self.mean, self.stddev, shape)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


# The standard deviation of a unit normal truncated at +-2: Keras divides it out so that the
# truncated draw has the variance asked for.
_TRUNCATED_STDDEV = 0.87962566103423978


class VarianceScaling(_Random):
    """Values of variance scale / fan (fan_in, fan_out or their mean): the family behind
    Glorot, He and LeCun, with Keras' arguments and constants."""

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None,
                 input_axes=None, output_axes=None):
        _real(scale, "scale", "VarianceScaling", positive=True)
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"VarianceScaling: mode must be 'fan_in', 'fan_out' or 'fan_avg', "
                             f"got {mode!r}")
        if not isinstance(distribution, str):
            raise ValueError(f"VarianceScaling: unknown distribution {distribution!r}")
        distribution = distribution.lower()
        if distribution == "normal":  # Keras' alias
            distribution = "truncated_normal"
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise ValueError(f"VarianceScaling: distribution must be 'truncated_normal', "
                             f"'untruncated_normal' or 'uniform', got {distribution!r}")
        self.scale, self.mode, self.distribution = scale, mode, distribution
        self.input_axes = None if input_axes is None else list(input_axes)
        self.output_axes = None if output_axes is None else list(output_axes)
        super().__init__(seed)

    def _draw(self, shape):
        fan_in, fan_out = compute_fans(shape, self.input_axes, self.output_axes)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, fan)
        generator = self._generator()
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return generator.uniform(-limit, limit, shape)
        if self.distribution == "untruncated_normal":
            return generator.normal(0.0, math.sqrt(variance), shape)
        stddev = math.sqrt(variance) / _TRUNCATED_STDDEV
        return _truncated_normal(generator, 0.0, stddev, shape)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "mode": self.mode,
                "distribution": self.distribution, "input_axes": self.input_axes,
                "output_axes": self.output_axes}


def _preset(name, scale, mode, distribution, doc):
    class Preset(VarianceScaling):
        def __init__(self, seed=None, input_axes=None, output_axes=None):
            super().__init__(scale, mode, distribution, seed, input_axes, output_axes)

        def get_config(self):
            return {"seed": self.seed, "input_axes": self.input_axes,
                    "output_axes": self.output_axes}
    Preset.__name__ = Preset.__qualname__ = name
    Preset.__doc__ = doc
    return Preset


GlorotUniform = _preset("GlorotUniform", 1.0, "fan_avg", "uniform",
                        "Uniform in +-sqrt(6 / (fan_in + fan_out)).")
GlorotNormal = _preset("GlorotNormal", 1.0, "fan_avg", "truncated_normal",
                       "Truncated normal of stddev sqrt(2 / (fan_in + fan_out)).")
HeNormal = _preset("HeNormal", 2.0, "fan_in", "truncated_normal",
                   "Truncated normal of stddev sqrt(2 / fan_in).")
HeUniform = _preset("HeUniform", 2.0, "fan_in", "uniform", "Uniform in +-sqrt(6 / fan_in).")
LecunNormal = _preset("LecunNormal", 1.0, "fan_in", "truncated_normal",
                      "Truncated normal of stddev sqrt(1 / fan_in).")
LecunUniform = _preset("LecunUniform", 1.0, "fan_in", "uniform", "Uniform in +-sqrt(3 / fan_in).")


class Orthogonal(_Random):
    """gain * an orthogonal matrix (rows or columns orthonormal, whichever are fewer) from the
    QR decomposition of a normal matrix, with Keras' sign fix; shapes of rank >= 2 are flattened
    to (prod(shape[:-1]), shape[-1])."""

    def __init__(self, gain=1.0, seed=None):
        self.gain = _real(gain, "gain", "Orthogonal")
        super().__init__(seed)

    def _draw(self, shape):
        if len(shape) < 2:
            raise ValueError("Orthogonal: the tensor to initialize must be at least "
                             f"two-dimensional, got shape={shape} of rank {len(shape)}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = self._generator().standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))  # makes the distribution uniform over orthogonal matrices
        if rows < cols:
            q = q.T
        return float(self.gain) * q.reshape(shape)

    def get_config(self):
        return {**super().get_config(), "gain": self.gain}


_CLASSES = [Zeros, Ones, Constant, Identity, RandomNormal, RandomUniform, TruncatedNormal,
            VarianceScaling, GlorotUniform, GlorotNormal, HeNormal, HeUniform, LecunNormal,
            LecunUniform, Orthogonal]


# Keras' lookup table: class names, their snake_case names, and Keras' aliases (case-sensitive).
_BY_NAME = {cls.__name__: cls for cls in _CLASSES}
_BY_NAME.update({snake_case(cls.__name__): cls for cls in _CLASSES})
_BY_NAME.update({"normal": RandomNormal, "uniform": RandomUniform, "one": Ones, "zero": Zeros,
                 "IdentityInitializer": Identity, "OrthogonalInitializer": Orthogonal})

(zeros, ones, constant, identity, random_normal, random_uniform, truncated_normal,
 variance_scaling, glorot_uniform, glorot_normal, he_normal, he_uniform, lecun_normal,
 lecun_uniform, orthogonal) = _CLASSES


def _unknown(identifier):
    names = sorted(n for n in _BY_NAME if n == n.lower())
    return ValueError(f"Unknown initializer {identifier!r}; cnnkit has {names} (or their class "
                      "names)")


def deserialize(config, custom_objects=None):
    """A {"class_name", "config"} dict (Keras' serialize() form) or a name -> an Initializer."""
    custom = custom_objects or {}
    if isinstance(config, str):
        cls = custom.get(config) or _BY_NAME.get(config)
        if cls is None:
            raise _unknown(config)
        return cls()
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"deserialize: expected a name or a dict with 'class_name' and 'config', "
                         f"got {config!r}")
    name = config["class_name"]
    cls = custom.get(name) or _BY_NAME.get(name)
    if cls is None:
        raise _unknown(name)
    inner = config.get("config") or {}
    if not isinstance(inner, dict):
        raise ValueError(f"deserialize: the config of {name!r} must be a dict, got {inner!r}")
    try:
        return cls.from_config(inner)
    except TypeError as error:
        raise ValueError(f"deserialize: bad config for {name}: {error}") from None


def get(identifier):
    """None, a name ('he_uniform' or 'HeUniform'), a {'class_name', 'config'} dict, an
    Initializer class or instance, a callable (shape, dtype=None) or an array (returned for its
    own shape) -> an initializer, as keras.initializers.get."""
    if identifier is None:
        return None
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, (dict, str)):
        return deserialize(identifier)
    if inspect.isclass(identifier) and issubclass(identifier, Initializer):
        return identifier()
    if isinstance(identifier, (np.ndarray, np.generic)):
        value = np.asarray(identifier)

        def initialize_fn(shape, dtype=None):
            if tuple(shape) != value.shape:
                raise ValueError(f"Expected shape to be {value.shape} for an array as "
                                 f"initializer, got shape={tuple(shape)}")
            return np.array(value, dtype=np.float32 if dtype is None else dtype, order="C")
        return initialize_fn
    if callable(identifier) and not inspect.isclass(identifier):
        return identifier
    raise _unknown(identifier)


def serialize(initializer):
    """Keras' form: {"module", "class_name", "config", "registered_name"}."""
    if initializer is None:
        return None
    if not isinstance(initializer, Initializer):
        raise ValueError(f"serialize: {initializer!r} is not a cnnkit initializer")
    builtin = _BY_NAME.get(type(initializer).__name__) is type(initializer)
    return {"module": "keras.initializers" if builtin else type(initializer).__module__,
            "class_name": type(initializer).__name__, "config": initializer.get_config(),
            "registered_name": None if builtin else type(initializer).__name__}
