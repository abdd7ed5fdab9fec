"""DepthwiseConv2D and SeparableConv2D."""

__all__ = []
