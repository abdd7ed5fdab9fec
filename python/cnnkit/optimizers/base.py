"""Optimizer: what every cnnkit optimizer shares, as Keras 3's BaseOptimizer.

optimizer.apply(grads, params) updates the float32 params in place. Per-parameter slots (Adam's
m and v, SGD's momentum, the EMA of each parameter) are made on the first call, in the order of
params, and the same list must be given every step. Each parameter's update is one fused C++
kernel (cnnkit.ops.optimizer): gradient clipping, decoupled weight decay, the optimizer's step
and the moving average in one pass; clipnorm and global_clipnorm first take a sum of squares.
A warm step allocates no array.

get_state()/set_state() carry iterations and every slot, so a saved model resumes exactly.
"""
import math
import warnings

import numpy as np

from .._naming import snake_case
from .. import _args, _core
from .._optimizer_args import clipnorm_scale, global_clipnorm_scale
from . import schedules

__all__ = ["Optimizer"]


def _optional_number(value, name, fn, **limits):
    """None, or a finite number within limits, kept as given (for get_config)."""
    if value is not None:
        _args.real_number(value, name, fn, **limits)
    return value


class Optimizer:
    """The base of every optimizer; subclasses define _slot_specs() and _update()."""

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        fn = type(self).__name__
        # Keras 3 warns about `decay` and ignores it; every other unknown argument (Keras 2's
        # `lr` included) is an error there too.
        if kwargs.pop("decay", None) is not None:
            warnings.warn("Argument `decay` is no longer supported and will be ignored.",
                          UserWarning, stacklevel=3)
        if kwargs:
            hint = " (Keras 3 calls `lr` `learning_rate`)" if "lr" in kwargs else ""
            raise ValueError(f"{fn}: Argument(s) not recognized: {kwargs}{hint}")
        if loss_scale_factor is not None:
            raise NotImplementedError(f"{fn}: loss_scale_factor={loss_scale_factor!r}: cnnkit "
                                      "trains in float32 and has no loss scaling")
        if gradient_accumulation_steps is not None:
            raise NotImplementedError(f"{fn}: gradient_accumulation_steps="
                                      f"{gradient_accumulation_steps!r}: cnnkit does not "
                                      "accumulate gradients (use a larger batch_size)")
        self.name = name if name is not None else snake_case(fn)
        if not isinstance(self.name, str):
            raise TypeError(f"{fn}: name must be a string, got {name!r}")
        self._learning_rate = self._checked_learning_rate(learning_rate)
        self.weight_decay = _optional_number(weight_decay, "weight_decay", fn, low=0.0)
        self.clipnorm = _optional_number(clipnorm, "clipnorm", fn, low=0.0)
        self.clipvalue = _optional_number(clipvalue, "clipvalue", fn, low=0.0)
        self.global_clipnorm = _optional_number(global_clipnorm, "global_clipnorm", fn, low=0.0)
        if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(f"{fn}: Only one of `clipnorm`, `clipvalue` and `global_clipnorm` "
                             f"can be set. Received: clipnorm={clipnorm}, clipvalue={clipvalue}, "
                             f"global_clipnorm={global_clipnorm}")
        self.use_ema = _args.flag(use_ema, "use_ema", fn)
        self.ema_momentum = _optional_number(ema_momentum, "ema_momentum", fn, low=0.0, high=1.0)
        if ema_overwrite_frequency is not None and (
                not _args._is_int(ema_overwrite_frequency) or ema_overwrite_frequency < 1):
            raise ValueError(f"{fn}: `ema_overwrite_frequency` must be an integer >= 1 or None. "
                             f"Received: ema_overwrite_frequency={ema_overwrite_frequency!r}")
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self.loss_scale_factor = None
        self.gradient_accumulation_steps = None
        self.iterations = 0      # updates applied so far, as Keras' optimizer.iterations
        self._slots = None       # per parameter: one array per slot (then the EMA, if used)
        self._params = None      # the list built on, to check later calls against
        self._no_decay = set()   # ids of parameters excluded from weight decay
        self._rate_factors = {}  # id of a parameter -> (its learning-rate, weight-decay factor)

    # ------------------------------------------------------------ learning rate

    def _checked_learning_rate(self, value):
        fn = type(self).__name__
        if isinstance(value, schedules.LearningRateSchedule) or (
                callable(value) and not isinstance(value, (int, float))):
            return value
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.floating, np.integer)):
            raise ValueError(f"{fn}: Argument `learning_rate` should be float, or an instance of "
                             "LearningRateSchedule, or a callable (that takes in the current "
                             "iteration value and returns the corresponding learning rate value)"
                             f". Received instead: learning_rate={value!r}")
        return _args.real_number(value, "learning_rate", fn, low=0.0)

    @property
    def learning_rate(self):
        """The current learning rate, a float (a schedule's value at self.iterations)."""
        lr = self._learning_rate
        if isinstance(lr, schedules.LearningRateSchedule):
            return float(lr(self.iterations))
        if callable(lr):
            return float(lr())
        return lr

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(self._learning_rate, schedules.LearningRateSchedule) and not (
                isinstance(value, schedules.LearningRateSchedule) or callable(value)):
            raise TypeError("This optimizer was created with a `LearningRateSchedule` object as "
                            "its `learning_rate` constructor argument, hence its learning rate "
                            "is not settable. If you need the learning rate to be settable, you "
                            "should instantiate the optimizer with a float `learning_rate` "
                            "argument.")
        self._learning_rate = self._checked_learning_rate(value)

    # ------------------------------------------------------------ slots

    def _slot_specs(self):
        """[(slot name, initial value)] of each parameter; none by default."""
        return []

    @property
    def slot_names(self):
        return tuple(name for name, _ in self._slot_specs()) + (("average",) if self.use_ema else ())

    def build(self, var_list):
        """Makes the slots of these parameters (zeros, or the optimizer's initial value)."""
        specs = self._slot_specs()
        self._slots = [[np.full_like(p, value) for _, value in specs] +
                       ([p.copy()] if self.use_ema else []) for p in var_list]
        self._params = list(var_list)
        self._restore_scalars()

    def _restore_scalars(self):
        """Recomputes per-optimizer scalars that follow from self.iterations (Nadam)."""

    @property
    def built(self):
        return self._slots is not None

    @property
    def variables(self):
        """Every slot array, in parameter order (Keras' optimizer.variables, less iterations)."""
        return [a for slots in (self._slots or []) for a in slots]

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Parameters (by identity) that weight decay leaves alone; before the first update."""
        if self.built:
            raise ValueError("`exclude_from_weight_decay()` can only be configured before the "
                             "optimizer is built.")
        if var_names:
            raise NotImplementedError("exclude_from_weight_decay(var_names=...): cnnkit's "
                                      "parameters are arrays without names; pass var_list")
        self._no_decay = {id(v) for v in (var_list or [])}

    def set_learning_rate_multiplier(self, var_list, multiplier, keep_weight_decay=False):
        """These parameters (by identity) learn with `multiplier` times the learning rate (as
        a PyTorch parameter group's own lr); a cnnkit addition, Keras has none. The decoupled
        weight decay step (learning rate x weight_decay) grows with it, unless
        keep_weight_decay=True, which divides their weight decay by the multiplier (airbench's
        64x rate on batch-norm biases keeps their decay step). Before or after the first
        update; a later call for the same parameter replaces its multiplier."""
        fn = f"{type(self).__name__}.set_learning_rate_multiplier"
        multiplier = _args.real_number(multiplier, "multiplier", fn, low=0.0)
        keep = _args.flag(keep_weight_decay, "keep_weight_decay", fn)
        if multiplier == 0 and keep:
            raise ValueError(f"{fn}: keep_weight_decay=True needs a multiplier > 0")
        for variable in var_list:
            if not isinstance(variable, np.ndarray):
                raise TypeError(f"{fn}: var_list must hold the model's weight arrays, got a "
                                f"{type(variable).__name__}")
            self._rate_factors[id(variable)] = (
                float(multiplier), 1.0 / multiplier if keep else 1.0)

    def reset_slots(self, var_list):
        """Puts the per-parameter state (momentum, velocity, ...) of these parameters (by
        identity) back to its initial value, as clearing a PyTorch optimizer's state for them;
        a cnnkit addition. With set_learning_rate_multiplier(var_list, 0) it freezes them
        midway through training with nothing left over (airbench's whitening bias). A parameter
        the optimizer has no state for yet is left as it is."""
        fn = f"{type(self).__name__}.reset_slots"
        wanted = set()
        for variable in var_list:
            if not isinstance(variable, np.ndarray):
                raise TypeError(f"{fn}: var_list must hold the model's weight arrays, got a "
                                f"{type(variable).__name__}")
            wanted.add(id(variable))
        initial = [value for _, value in self._slot_specs()]
        for param, slots in zip(self._params or [], self._slots or []):
            if id(param) in wanted:
                for slot, value in zip(slots, initial):
                    slot.fill(value)
                if self.use_ema and len(slots) > len(initial):
                    np.copyto(slots[-1], param)  # the average starts again from the weight

    # ------------------------------------------------------------ update

    def apply(self, grads, trainable_variables=None):
        """One update of every parameter (Keras 3: optimizer.apply(grads, trainable_variables))."""
        if len(grads) == 0:
            return
        params = self._params if trainable_variables is None else trainable_variables
        if params is None:
            raise ValueError("When passing `grads` without `variables`, the optimizer must "
                             "already be built on a list of variables.")
        if self._slots is None:
            self.build(params)
        if len(params) != len(self._slots) or len(grads) != len(params):
            raise ValueError(f"{type(self).__name__}: built for {len(self._slots)} parameters, "
                             f"given {len(params)} parameters and {len(grads)} gradients")
        lr = self.learning_rate
        scale = 1.0
        if self.global_clipnorm:
            scale = global_clipnorm_scale(_core.sum_squares(grads), self.global_clipnorm)
        ema_momentum = (self.ema_momentum if self.iterations else 0.0) if self.use_ema else 0.0
        clipvalue = self.clipvalue or 0.0
        decay = self.weight_decay or 0.0
        self._before_step()
        factors = self._rate_factors
        for param, grad, slots in zip(params, grads, self._slots):
            if self.clipnorm:
                scale = clipnorm_scale(_core.sum_squares([grad]), self.clipnorm)
            ema = slots[-1] if self.use_ema else None
            rate_factor, decay_factor = factors.get(id(param), (1.0, 1.0)) if factors else \
                (1.0, 1.0)
            self._update(param, grad, slots, learning_rate=lr * rate_factor,
                         clipvalue=clipvalue, grad_scale=scale, ema=ema,
                         ema_momentum=ema_momentum,
                         weight_decay=0.0 if id(param) in self._no_decay else
                         decay * decay_factor)
        if self.use_ema and self.ema_overwrite_frequency and (
                (self.iterations + 1) % self.ema_overwrite_frequency == 0):
            self._overwrite_with_average(params)
        self.iterations += 1

    def _before_step(self):
        """Per-step scalars shared by every parameter (Nadam's momentum product)."""

    def _update(self, param, grad, slots, **common):
        raise NotImplementedError

    def apply_gradients(self, grads_and_vars):
        grads, params = zip(*grads_and_vars)
        self.apply(list(grads), list(params))
        return self.iterations

    def _overwrite_with_average(self, params):
        if len(params) != len(self._slots or []):
            raise ValueError(f"The length of model variables ({len(params)}) to override does "
                             "not match the length of model variables stored in the optimizer "
                             f"({len(self._slots or [])}). Please check if the optimizer was "
                             "called on your model.")
        for param, slots in zip(params, self._slots):
            np.copyto(param, slots[-1])

    def finalize_variable_values(self, var_list):
        """At the end of fit, as Keras: with use_ema the parameters take their moving averages."""
        if self.use_ema and self._slots is not None:
            self._overwrite_with_average(var_list)

    # ------------------------------------------------------------ state

    def get_state(self):
        """(iterations, [slot arrays, flattened in parameter order, the EMA last of each])."""
        return self.iterations, self.variables

    def set_state(self, iterations, arrays, params):
        """Restores get_state() for this list of params; shapes must agree."""
        per = len(self.slot_names)
        if len(arrays) != per * len(params) and arrays:
            raise ValueError(f"{type(self).__name__}: the saved state holds {len(arrays)} arrays, "
                             f"this model needs {per * len(params)}")
        self.iterations = int(iterations)
        if not arrays:
            self._slots = None
            self._params = None
            self._restore_scalars()
            return
        slots = []
        for i, param in enumerate(params):
            group = [np.ascontiguousarray(a, dtype=np.float32) for a in arrays[i * per:(i + 1) * per]]
            if any(a.shape != param.shape for a in group):
                raise ValueError(f"{type(self).__name__}: saved state of shape {group[0].shape} "
                                 f"for a parameter of shape {param.shape}")
            slots.append([a.copy() for a in group])
        self._slots = slots
        self._params = list(params)
        self._restore_scalars()

    # ------------------------------------------------------------ config

    def get_config(self):
        lr = self._learning_rate
        if isinstance(lr, schedules.LearningRateSchedule):
            lr = schedules.serialize(lr)
        elif callable(lr):
            raise TypeError(f"{type(self).__name__}: a learning_rate given as a plain callable "
                            "cannot be saved; use a LearningRateSchedule subclass")
        return {"name": self.name, "learning_rate": lr, "weight_decay": self.weight_decay,
                "clipnorm": self.clipnorm, "global_clipnorm": self.global_clipnorm,
                "clipvalue": self.clipvalue, "use_ema": self.use_ema,
                "ema_momentum": self.ema_momentum,
                "ema_overwrite_frequency": self.ema_overwrite_frequency,
                "loss_scale_factor": self.loss_scale_factor,
                "gradient_accumulation_steps": self.gradient_accumulation_steps}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"], custom_objects)
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} learning_rate={self.learning_rate!r}>"
