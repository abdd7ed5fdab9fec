"""The output-size arithmetic of every windowed layer (convolutions, pooling), in one place.

Keras' rules along one spatial axis: 'valid' keeps the windows that fit, 'same' keeps
ceil(size / stride) outputs; a dilated kernel counts with its dilated extent. Transposed
convolutions invert that (Keras' backend_utils, shared with cnnkit.reference.conv). None (an
unknown size in a symbolic shape) stays None.
"""
from ..reference.conv import transpose_1d

__all__ = ["window_output", "conv_output", "conv_transpose_output"]


def window_output(size, k, s, padding):
    """Output length along one axis (None stays None), as Keras computes it."""
    if size is None:
        return None
    return (size - k) // s + 1 if padding == "valid" else -(-size // s)


def conv_output(size, k, s, padding, d=1):
    """Output length of a convolution whose k taps are d apart."""
    return window_output(size, (k - 1) * d + 1, s, padding)


def conv_transpose_output(size, k, s, padding, output_padding=None, d=1):
    """Output length of a transposed convolution (Keras' Conv2DTranspose)."""
    if size is None:
        return None
    return transpose_1d(size, k, s, padding, output_padding, d)[0]
