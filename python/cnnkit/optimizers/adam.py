"""The Adam family, as keras.optimizers: Adam (and AMSGrad), AdamW, Nadam and Adamax."""
from .. import _args, _core
from .._optimizer_args import nadam_scalars, nadam_u_product
from .base import Optimizer

__all__ = ["Adam", "AdamW", "Nadam", "Adamax"]


class _AdamBase(Optimizer):
    """beta_1, beta_2 and epsilon, checked, and the base arguments passed through."""

    def __init__(self, learning_rate, beta_1, beta_2, epsilon, **kwargs):
        super().__init__(learning_rate, **kwargs)
        fn = type(self).__name__
        self.beta_1 = _args.real_number(beta_1, "beta_1", fn, low=0.0, high=1.0, include_high=False)
        self.beta_2 = _args.real_number(beta_2, "beta_2", fn, low=0.0, high=1.0, include_high=False)
        self.epsilon = _args.real_number(epsilon, "epsilon", fn, low=0.0)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class Adam(_AdamBase):
    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07,
                 amsgrad=False, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, weight_decay=weight_decay,
                         clipnorm=clipnorm, clipvalue=clipvalue, global_clipnorm=global_clipnorm,
                         use_ema=use_ema, ema_momentum=ema_momentum,
                         ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, name=name,
                         **kwargs)
        self.amsgrad = _args.flag(amsgrad, "amsgrad", type(self).__name__)

    def _slot_specs(self):
        return [("momentum", 0.0), ("velocity", 0.0)] + ([("velocity_hat", 0.0)] if self.amsgrad else [])

    def _update(self, param, grad, slots, **common):
        _core.adam_update(param, grad, slots[0], slots[1], slots[2] if self.amsgrad else None,
                          step=self.iterations + 1, beta_1=self.beta_1, beta_2=self.beta_2,
                          epsilon=self.epsilon, **common)

    def get_config(self):
        return {**super().get_config(), "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay (the base optimizer's weight_decay, here 0.004)."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-07, amsgrad=False, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        if weight_decay is None:
            raise ValueError("AdamW: Argument `weight_decay` must be a float. Received: "
                             "weight_decay=None")
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                         epsilon=epsilon, amsgrad=amsgrad, weight_decay=weight_decay,
                         clipnorm=clipnorm, clipvalue=clipvalue, global_clipnorm=global_clipnorm,
                         use_ema=use_ema, ema_momentum=ema_momentum,
                         ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, name=name,
                         **kwargs)


class Nadam(_AdamBase):
    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None,
                 loss_scale_factor=None, gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, weight_decay=weight_decay,
                         clipnorm=clipnorm, clipvalue=clipvalue, global_clipnorm=global_clipnorm,
                         use_ema=use_ema, ema_momentum=ema_momentum,
                         ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, name=name,
                         **kwargs)
        self._u_product = 1.0   # the product of the momentum schedule over the steps so far

    def _slot_specs(self):
        return [("momentum", 0.0), ("velocity", 0.0)]

    def _restore_scalars(self):
        # The product follows from iterations alone, so the saved state need not hold it.
        self._u_product = nadam_u_product(self.beta_1, self.iterations)

    def _before_step(self):
        # One set of scalars for every parameter of this step, and the product moves on.
        m_coef, g_coef, v_divisor, self._u_product = nadam_scalars(
            self.beta_1, self.beta_2, self.iterations + 1, self._u_product)
        self._scalars = dict(m_coef=m_coef, g_coef=g_coef, v_divisor=v_divisor)

    def _update(self, param, grad, slots, **common):
        _core.nadam_update(param, grad, slots[0], slots[1], beta_1=self.beta_1,
                           beta_2=self.beta_2, epsilon=self.epsilon, **self._scalars, **common)


class Adamax(_AdamBase):
    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None,
                 loss_scale_factor=None, gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, weight_decay=weight_decay,
                         clipnorm=clipnorm, clipvalue=clipvalue, global_clipnorm=global_clipnorm,
                         use_ema=use_ema, ema_momentum=ema_momentum,
                         ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, name=name,
                         **kwargs)

    def _slot_specs(self):
        return [("momentum", 0.0), ("norm", 0.0)]

    def _update(self, param, grad, slots, **common):
        _core.adamax_update(param, grad, slots[0], slots[1], step=self.iterations + 1,
                            beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon, **common)
