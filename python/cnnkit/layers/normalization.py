"""BatchNormalization and LayerNormalization."""

__all__ = []
