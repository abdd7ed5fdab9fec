"""The functional API of cnnkit in plain NumPy: the yardstick the C++ kernels are tested and
benchmarked against.

Written for clarity, not speed: window operations loop over the kernel offsets (kh, kw) and do
the rest with whole-array NumPy. Same signatures, geometry and argument checks as cnnkit.ops
(both use cnnkit._args). Computes in float64 when given float64 (so that finite differences
work) and in float32 otherwise.

One module per op family, as in cnnkit.ops; this package re-exports them all.
"""
from .conv import *  # noqa: F401,F403
from .pool import *  # noqa: F401,F403
from .dense import *  # noqa: F401,F403
from .activation import *  # noqa: F401,F403
from .normalization import *  # noqa: F401,F403
from .elementwise import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403
from .optimizer import *  # noqa: F401,F403
from .augment import *  # noqa: F401,F403
from . import (conv, pool, dense, activation, normalization, elementwise,  # noqa: E402
               loss, optimizer, augment)

_FAMILIES = (conv, pool, dense, activation, normalization, elementwise, loss, optimizer, augment)
__all__ = [name for module in _FAMILIES for name in module.__all__]
