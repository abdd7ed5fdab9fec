"""Optimizers that scale each coordinate by its own gradient history: RMSprop (compile()'s
default) and Adagrad, as keras.optimizers."""
from .. import _args, _core
from .base import Optimizer

__all__ = ["RMSprop", "Adagrad"]


def _base_kwargs(weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
                 ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps, name):
    return dict(weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
                global_clipnorm=global_clipnorm, use_ema=use_ema, ema_momentum=ema_momentum,
                ema_overwrite_frequency=ema_overwrite_frequency,
                loss_scale_factor=loss_scale_factor,
                gradient_accumulation_steps=gradient_accumulation_steps, name=name)


class RMSprop(Optimizer):
    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-07, centered=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None,
                 loss_scale_factor=None, gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate, **_base_kwargs(
            weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
            ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps, name), **kwargs)
        fn = "RMSprop"
        self.rho = _args.real_number(rho, "rho", fn, low=0.0, high=1.0)
        self.momentum = _args.real_number(momentum, "momentum", fn, low=0.0, high=1.0)
        self.epsilon = _args.real_number(epsilon, "epsilon", fn, low=0.0)
        self.centered = _args.flag(centered, "centered", fn)

    def _slot_specs(self):
        return ([("velocity", 0.0)] + ([("momentum", 0.0)] if self.momentum > 0 else []) +
                ([("average_gradient", 0.0)] if self.centered else []))

    def _update(self, param, grad, slots, **common):
        momentum_buf = slots[1] if self.momentum > 0 else None
        average_grad = slots[1 + (self.momentum > 0)] if self.centered else None
        _core.rmsprop_update(param, grad, slots[0], momentum_buf, average_grad, rho=self.rho,
                             momentum=self.momentum, epsilon=self.epsilon, **common)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


class Adagrad(Optimizer):
    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-07,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None,
                 loss_scale_factor=None, gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate, **_base_kwargs(
            weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
            ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps, name), **kwargs)
        fn = "Adagrad"
        self.initial_accumulator_value = _args.real_number(
            initial_accumulator_value, "initial_accumulator_value", fn, low=0.0)
        self.epsilon = _args.real_number(epsilon, "epsilon", fn, low=0.0)

    def _slot_specs(self):
        return [("accumulator", self.initial_accumulator_value)]

    def _update(self, param, grad, slots, **common):
        _core.adagrad_update(param, grad, slots[0], epsilon=self.epsilon, **common)

    def get_config(self):
        return {**super().get_config(),
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}
