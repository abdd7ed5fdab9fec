"""Optimizers, as keras.optimizers: Adam, SGD and RMSprop, by name or object.

optimizer.apply(grads, params) updates the float32 params in place. Per-parameter state
(Adam's m and v, SGD's velocity) is made on the first call, in the order of params, and must be
given the same list every step. get_state()/set_state() carry iterations and that state, so a
saved model resumes training exactly.
"""
import numpy as np

from . import _args, _core

__all__ = ["Optimizer", "Adam", "SGD", "RMSprop", "get", "serialize"]


class Optimizer:
    slot_names = ()

    def __init__(self, learning_rate, name=None):
        self.learning_rate = _args.real_number(learning_rate, "learning_rate", type(self).__name__, low=0.0)
        self.name = name or type(self).__name__.lower()
        self.iterations = 0   # updates applied so far, as Keras' optimizer.iterations
        self._slots = None    # per parameter: one array per slot name

    def build(self, params):
        self._slots = [[np.zeros_like(p) for _ in self.slot_names] for p in params]

    def apply(self, grads, params):
        """One update of every param (Keras 3: optimizer.apply(grads, trainable_variables))."""
        if self._slots is None:
            self.build(params)
        if len(params) != len(self._slots) or len(grads) != len(params):
            raise ValueError(f"{type(self).__name__}: built for {len(self._slots)} parameters, "
                             f"given {len(params)} parameters and {len(grads)} gradients")
        self.iterations += 1
        for param, grad, slots in zip(params, grads, self._slots):
            self._update(param, grad, *slots)

    def apply_gradients(self, grads_and_vars):
        grads, params = zip(*grads_and_vars)
        self.apply(list(grads), list(params))

    def get_state(self):
        """(iterations, [slot arrays, flattened in parameter order])."""
        arrays = [a for slots in (self._slots or []) for a in slots]
        return self.iterations, arrays

    def set_state(self, iterations, arrays, params):
        """Restores get_state() for this list of params; shapes must agree."""
        per = len(self.slot_names)
        if len(arrays) != per * len(params) and arrays:
            raise ValueError(f"{type(self).__name__}: the saved state holds {len(arrays)} arrays, "
                             f"this model needs {per * len(params)}")
        self.iterations = int(iterations)
        if not arrays:
            self._slots = None
            return
        slots = []
        for i, param in enumerate(params):
            group = [np.ascontiguousarray(a, dtype=np.float32) for a in arrays[i * per:(i + 1) * per]]
            if any(a.shape != param.shape for a in group):
                raise ValueError(f"{type(self).__name__}: saved state of shape {group[0].shape} "
                                 f"for a parameter of shape {param.shape}")
            slots.append([a.copy() for a in group])
        self._slots = slots

    def get_config(self):
        return {"name": self.name, "learning_rate": self.learning_rate}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class Adam(Optimizer):
    slot_names = ("m", "v")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, name=None):
        super().__init__(learning_rate, name)
        if amsgrad:
            raise ValueError("Adam: amsgrad=True is not supported")
        fn = "Adam"
        self.beta_1 = _args.real_number(beta_1, "beta_1", fn, low=0.0, high=1.0, include_high=False)
        self.beta_2 = _args.real_number(beta_2, "beta_2", fn, low=0.0, high=1.0, include_high=False)
        self.epsilon = _args.real_number(epsilon, "epsilon", fn, low=0.0)

    def _update(self, param, grad, m, v):
        _core.adam_update(param, grad, m, v, self.iterations, self.learning_rate, self.beta_1,
                          self.beta_2, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class SGD(Optimizer):
    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name=None):
        super().__init__(learning_rate, name)
        self.momentum = _args.real_number(momentum, "momentum", "SGD", low=0.0, high=1.0)
        self.nesterov = _args.flag(nesterov, "nesterov", "SGD")
        # Plain SGD keeps no state; with momentum, a velocity per parameter.
        self.slot_names = ("velocity",) if self.momentum > 0 else ()

    def _update(self, param, grad, velocity=None):
        _core.sgd_update(param, grad, velocity, self.learning_rate, self.momentum, self.nesterov)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class RMSprop(Optimizer):
    """Keras' RMSprop (no momentum, not centered), in NumPy: not on cnnkit's fast path."""
    slot_names = ("velocity",)

    def __init__(self, learning_rate=0.001, rho=0.9, epsilon=1e-7, name=None):
        super().__init__(learning_rate, name)
        self.rho = _args.real_number(rho, "rho", "RMSprop", low=0.0, high=1.0)
        self.epsilon = _args.real_number(epsilon, "epsilon", "RMSprop", low=0.0)

    def _update(self, param, grad, velocity):
        velocity *= self.rho
        velocity += (1 - self.rho) * grad * grad
        param -= self.learning_rate * grad / (np.sqrt(velocity) + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


_BY_NAME = {"adam": Adam, "sgd": SGD, "rmsprop": RMSprop}
_CLASSES = {cls.__name__: cls for cls in _BY_NAME.values()}


def get(identifier):
    """'adam', 'sgd', 'rmsprop', an Optimizer or a {'class_name', 'config'} dict -> an Optimizer."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return _CLASSES[identifier["class_name"]].from_config(identifier.get("config", {}))
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"Unknown optimizer {identifier!r}; cnnkit has {sorted(_BY_NAME)}")


def serialize(optimizer):
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}
