"""Conv2DTranspose."""

__all__ = []
