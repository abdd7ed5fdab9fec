"""cnnkit.reference: normalization layers' ops in plain NumPy."""

__all__ = []
