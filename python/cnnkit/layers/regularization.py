"""Dropout, SpatialDropout2D and GaussianNoise: random perturbations in training, the identity
at inference."""
import numpy as np

from .. import _args, _core
from .._args import real_number
from .base import RandomLayer

__all__ = ["Dropout", "SpatialDropout2D", "GaussianNoise"]


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


class SpatialDropout2D(Dropout):
    """Dropout of whole feature maps: in training each channel of each image is zeroed with
    probability `rate` (one draw per (image, channel), shared by all its pixels) and the kept
    ones are scaled by 1 / (1 - rate). Neighbouring pixels of a feature map are correlated, so
    dropping single values barely regularises a convolutional layer; dropping maps does.

    The (N, C) mask comes from the layer's own generator, as Dropout's; the C++ kernel
    multiplies each pixel's channels by its image's row of the mask, forward and backward."""
    input_ndim = 4

    def __init__(self, rate, data_format=None, seed=None, **kwargs):
        real_number(rate, "rate", "SpatialDropout2D", low=0.0, high=1.0, include_high=False)
        if data_format not in (None, "channels_last"):
            if data_format == "channels_first":
                raise ValueError("SpatialDropout2D: cnnkit works on channels_last (NHWC) images "
                                 "only, got data_format='channels_first'")
            raise ValueError("SpatialDropout2D: data_format must be 'channels_last' or "
                             f"'channels_first', got {data_format!r}")
        super().__init__(rate, seed=_args.seed(seed, "SpatialDropout2D"), **kwargs)
        self.data_format = "channels_last"

    def forward(self, call, x, training=False):
        if not training or self.rate == 0:
            call.mask = None
            return x
        buffers = call.buffers(x.shape)
        rows = (x.shape[0], x.shape[-1])
        call.dx = buffers("dx", x.shape)
        draw = self._generator.random(rows, dtype=np.float32, out=buffers("mask", rows))
        keep = np.greater_equal(draw, self.rate, out=buffers("keep", rows, np.bool_))
        call.mask = np.multiply(keep, np.float32(1 / (1 - self.rate)), out=draw)
        return _core.spatial_dropout_forward(x, call.mask, out=buffers("y", x.shape))

    def backward(self, call, dy):
        if not call.need_dx:
            return None
        if call.mask is None:
            return dy
        return _core.spatial_dropout_backward(dy, call.mask, out=call.dx)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class GaussianNoise(RandomLayer):
    """Adds zero-centred normal noise of standard deviation `stddev` in training; the identity at
    inference. Keras accepts stddev in [0, 1] only, and so does cnnkit.

    The noise is drawn by the layer's own generator straight into a reused float32 buffer
    (Generator.standard_normal(out=...), so a warm step allocates nothing) and added by the C++
    kernel; its gradient is dy itself."""

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.stddev = real_number(stddev, "stddev", "GaussianNoise", low=0.0, high=1.0)
        self.seed = _args.seed(seed, "GaussianNoise")

    def forward(self, call, x, training=False):
        if not training or self.stddev == 0:
            return x
        buffers = call.buffers(x.shape)
        noise = self._generator.standard_normal(x.shape, dtype=np.float32,
                                                out=buffers("noise", x.shape))
        return _core.gaussian_noise_forward(x, noise, self.stddev, out=buffers("y", x.shape))

    def backward(self, call, dy):
        call.grads = ()
        return dy if call.need_dx else None

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev}
