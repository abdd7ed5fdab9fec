"""cnnkit.reference: elementwise layers' ops in plain NumPy."""

__all__ = []
