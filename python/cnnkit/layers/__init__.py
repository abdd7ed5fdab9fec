"""cnnkit.layers: Keras' layers over cnnkit's kernels (NHWC float32 images).

Each layer has Keras' constructor, builds its weights from the input shape, and runs as
layer(x, training=False) on a batch, or records a node when called on symbolic tensors (a
functional model); models train it through forward/backward with per-call states (base.py).

One module per layer family, each listing its public layers in __all__; this package
re-exports them all, with Layer.
"""
from .base import Layer
from .core import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .conv_transpose import *  # noqa: F401,F403
from .depthwise_conv import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403
from .normalization import *  # noqa: F401,F403
from .activation import *  # noqa: F401,F403
from .merging import *  # noqa: F401,F403
from .reshaping import *  # noqa: F401,F403
from .regularization import *  # noqa: F401,F403
from .scaling import *  # noqa: F401,F403
from .preprocessing import *  # noqa: F401,F403
from . import (core, conv, conv_transpose, depthwise_conv, pooling, normalization,  # noqa: E402
               activation, merging, reshaping, regularization, scaling, preprocessing)

_FAMILIES = (core, conv, conv_transpose, depthwise_conv, pooling, normalization, activation,
             merging, reshaping, regularization, scaling, preprocessing)
__all__ = ["Layer"] + [name for module in _FAMILIES for name in module.__all__]
