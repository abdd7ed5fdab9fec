"""cnnkit: convolutional networks on the CPU, with Keras' interface, on OpenMP-parallel C++ kernels.

`cnnkit.ops` is the functional layer over the kernels (NHWC float32 images, Keras' weight shapes);
`cnnkit.reference` offers the same functions in plain NumPy, the yardstick for tests and benchmarks.
"""

__version__ = "0.1.0"

from . import _core, ops, reference
from . import activations, callbacks, datasets, initializers, layers, losses, metrics, models, optimizers, utils

openmp_enabled = _core.openmp_enabled
get_num_threads = _core.get_num_threads


def set_num_threads(n):
    """Threads the kernels use from now on (an integer >= 1), as torch.set_num_threads."""
    from ._args import positive_int
    _core.set_num_threads(positive_int(n, "n", "set_num_threads"))

__all__ = [
    "__version__", "ops", "reference", "openmp_enabled", "get_num_threads", "set_num_threads",
    "activations", "callbacks", "datasets", "initializers", "layers", "losses", "metrics", "models",
    "optimizers", "utils",
]
