"""SGD, as keras.optimizers.SGD: plain, with momentum, or Nesterov momentum."""
from .. import _args, _core
from .base import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False,
                 ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay,
                         clipnorm=clipnorm, clipvalue=clipvalue, global_clipnorm=global_clipnorm,
                         use_ema=use_ema, ema_momentum=ema_momentum,
                         ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, name=name,
                         **kwargs)
        self.momentum = _args.real_number(momentum, "momentum", "SGD", low=0.0, high=1.0)
        self.nesterov = _args.flag(nesterov, "nesterov", "SGD")

    def _slot_specs(self):
        # Plain SGD keeps no state; with momentum, one buffer per parameter.
        return [("momentum", 0.0)] if self.momentum != 0 else []

    def _update(self, param, grad, slots, **common):
        _core.sgd_update(param, grad, slots[0] if self.momentum != 0 else None,
                         momentum=self.momentum, nesterov=self.nesterov, **common)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}
