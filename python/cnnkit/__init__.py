"""cnnkit: convolutional networks on the CPU, with Keras' interface, on OpenMP-parallel C++ kernels.

`cnnkit.ops` is the functional layer over the kernels (NHWC float32 images, Keras' weight shapes);
`cnnkit.reference` offers the same functions in plain NumPy, the yardstick for tests and benchmarks.
"""

__version__ = "0.1.0"

import os as _os

# libgomp's idle threads spin for a while after every parallel region (its default wait policy).
# On a machine whose cores another busy process shares, a spinning thread holds a core that the
# thread doing the work needs, and every one of a step's many parallel regions then waits for the
# scheduler: a training step of a small CNN took 20-60x longer on 2 threads than alone (measured
# here, README "Threads"). Passive waiting costs little on an idle machine and removes that.
# libgomp reads it once, when the extension loads it, so it is set only for that moment (child
# processes, and other libraries, keep their own default); a user's own setting wins.
_passive = "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ
if _passive:
    _os.environ["OMP_WAIT_POLICY"] = "passive"
try:
    from . import _core  # noqa: E402
finally:
    if _passive:
        del _os.environ["OMP_WAIT_POLICY"]

from . import ops, reference  # noqa: E402
# The Keras namespace: `import cnnkit as keras; keras.layers.Conv2D(...)`. Only cnnkit's own
# modules (and NumPy) load here; optional packages (matplotlib, Pillow, ...) load when used.
from . import (activations, applications, callbacks, datasets, initializers, layers,  # noqa: E402
               losses, metrics, models, optimizers, regularizers, utils)
from .layers import Input  # noqa: E402
from .models import Model, Sequential, load_model  # noqa: E402

openmp_enabled = _core.openmp_enabled
get_num_threads = _core.get_num_threads


def set_num_threads(n):
    """Threads the kernels use from now on (an integer >= 1), as torch.set_num_threads."""
    from ._args import positive_int
    _core.set_num_threads(positive_int(n, "n", "set_num_threads"))


__all__ = [
    "__version__", "ops", "reference", "openmp_enabled", "get_num_threads", "set_num_threads",
    "activations", "applications", "callbacks", "datasets", "initializers", "layers", "losses",
    "metrics", "models", "optimizers", "regularizers", "utils", "Input", "Model", "Sequential",
    "load_model",
]
