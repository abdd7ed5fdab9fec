"""Dropout."""
import numpy as np

from .._args import real_number
from .base import RandomLayer

__all__ = ["Dropout"]


class Dropout(RandomLayer):
    """Inverted dropout: in training each value is zeroed with probability `rate` and the
    survivors are scaled by 1 / (1 - rate), so that inference is the identity.

    Masks come from the layer's own generator, made at build from `seed` or, without one, from
    the global generator (cnnkit.utils.set_random_seed); its state is saved with the model, so
    a resumed fit draws the same masks as an uninterrupted one (RandomLayer)."""

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        real_number(rate, "rate", "Dropout", low=0.0, high=1.0, include_high=False)
        if noise_shape is not None:
            raise ValueError("Dropout: noise_shape is not supported")
        self.rate, self.seed = float(rate), seed

    def forward(self, call, x, training=False):
        if not training or self.rate == 0:
            call.scale = None
            return x
        buffers = call.buffers(x.shape)
        call.dx = buffers("dx", x.shape)
        draw = self._generator.random(x.shape, dtype=np.float32, out=buffers("scale", x.shape))
        keep = np.greater_equal(draw, self.rate, out=buffers("keep", x.shape, np.bool_))
        call.scale = np.multiply(keep, np.float32(1 / (1 - self.rate)), out=draw)
        return np.multiply(x, call.scale, out=buffers("y", x.shape))

    def backward(self, call, dy):
        if not call.need_dx:
            return None
        return dy if call.scale is None else np.multiply(dy, call.scale, out=call.dx)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}
