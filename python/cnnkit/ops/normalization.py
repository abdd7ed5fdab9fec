"""cnnkit.ops: normalization layers' ops, checked and converted, over the C++ kernels."""

__all__ = []
