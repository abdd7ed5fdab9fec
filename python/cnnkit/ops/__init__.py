"""cnnkit.ops: the functional layer over the C++ kernels.

Images are (N, H, W, C) float32; conv weights (kh, kw, cin, cout) and dense weights (in, out), as
in Keras. Each function checks and normalises its arguments (cnnkit._args), converts each array
once to C-contiguous float32, and calls the kernel in cnnkit._core with the GIL released.
cnnkit.reference has the same functions in plain NumPy. Backward functions of activations take
the forward *output* y. Losses take (y_true, y_pred) in Keras' order; the fused ones
(softmax_cross_entropy, mean_squared_error, binary_crossentropy) return (mean loss, gradient with
respect to y_pred), and the weighted ones that cnnkit.losses runs on (elementwise_loss,
categorical_loss) return (reduced loss, gradient, the loss of each sample). Augmentations take per-image parameters: one value
for the whole batch, or one per image.

One module per op family (the same families as cpp/ and cnnkit.reference); this package
re-exports them all.
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
