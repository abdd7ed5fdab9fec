"""The output-size arithmetic of every windowed layer (convolutions, pooling), in one place.

Keras' rules along one spatial axis: 'valid' keeps the windows that fit, 'same' keeps
ceil(size / stride) outputs. None (an unknown size in a symbolic shape) stays None.
"""

__all__ = ["window_output"]


def window_output(size, k, s, padding):
    """Output length along one axis (None stays None), as Keras computes it."""
    if size is None:
        return None
    return (size - k) // s + 1 if padding == "valid" else -(-size // s)
