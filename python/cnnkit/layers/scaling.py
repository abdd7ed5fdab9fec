"""Rescaling and Normalization: fixed per-channel affine maps of the input."""

__all__ = []
