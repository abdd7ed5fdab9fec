"""cnnkit.ops: elementwise layers' ops, checked and converted, over the C++ kernels."""

__all__ = []
