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

# The Keras namespace: `import cnnkit as keras; keras.layers.Conv2D(...)`, keras.Model, ... Each
# module loads on first use (PEP 562), so `import cnnkit` stays as quick as it was before the
# model engine (see README, "Three ways to write a model"), and no optional package (matplotlib,
# Pillow, ...) loads until a function needs it.
_MODULES = ("activations", "applications", "callbacks", "datasets", "distribute",
            "initializers", "layers", "losses", "metrics", "mixed_precision", "models",
            "optimizers", "regularizers", "utils")
_NAMES = {"Input": "layers", "Model": "models", "Sequential": "models", "load_model": "models"}


def __getattr__(name):
    import importlib
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)  # also sets cnnkit.<name>
    if name in _NAMES:
        value = globals()[name] = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
        return value
    raise AttributeError(f"module 'cnnkit' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_MODULES) | set(_NAMES))


openmp_enabled = _core.openmp_enabled
get_num_threads = _core.get_num_threads


def set_num_threads(n):
    """Threads the kernels use from now on (an integer >= 1), as torch.set_num_threads."""
    from ._args import positive_int
    _core.set_num_threads(positive_int(n, "n", "set_num_threads"))


__all__ = [
    "__version__", "ops", "reference", "openmp_enabled", "get_num_threads", "set_num_threads",
    "activations", "applications", "callbacks", "datasets", "initializers", "layers", "losses",
    "distribute", "metrics", "mixed_precision", "models", "optimizers", "regularizers", "utils",
    "Input", "Model", "Sequential",
    "load_model",
]
