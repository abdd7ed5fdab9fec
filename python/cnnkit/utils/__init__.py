"""Small user-facing helpers, as in keras.utils: one-hot labels and the global random seed.

Every random draw cnnkit makes without an explicit seed (weight initialisation, shuffling,
dropout masks) comes from one numpy Generator, so that set_random_seed(s) makes a run
repeatable (with the same number of threads; see cnnkit.set_num_threads).
"""
import random

import numpy as np

# Image helpers import Pillow lazily, on first use: `import cnnkit` needs only NumPy.
from .dataset import Dataset
from .flip_translate import FlipTranslateBatches
from .image_dataset import image_dataset_from_directory
from .image_utils import array_to_img, img_to_array, load_img, save_img
from .py_dataset import PyDataset, Sequence

__all__ = ["to_categorical", "set_random_seed", "PyDataset", "Sequence", "Dataset",
           "image_dataset_from_directory", "load_img", "img_to_array", "array_to_img",
           "save_img", "FlipTranslateBatches"]

_generator = np.random.default_rng()


def set_random_seed(seed):
    """Seeds Python's `random`, NumPy's global state and cnnkit's own generator, as
    keras.utils.set_random_seed seeds Python, NumPy and the backend."""
    global _generator
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"set_random_seed: seed must be a non-negative integer, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    _generator = np.random.default_rng(int(seed))


def global_generator():
    """The generator that unseeded initializers, shuffling and dropout draw from."""
    return _generator


def spawn_generator(seed=None):
    """A Generator of its own: from `seed` if given, else seeded from the global generator (so
    that set_random_seed still decides it, but later draws elsewhere do not disturb it)."""
    if seed is None:
        seed = int(_generator.integers(2**63))
    return np.random.default_rng(seed)


def to_categorical(y, num_classes=None, dtype="float32"):
    """Class indices (N,) or (N, 1) -> one-hot (N, num_classes), as keras.utils.to_categorical.

    num_classes defaults to max(y) + 1. Labels outside [0, num_classes) are a ValueError."""
    y = np.asarray(y)
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError("to_categorical: y must hold integer class indices")
    elif y.dtype.kind not in "iub":
        raise TypeError(f"to_categorical: y must hold integer class indices, got dtype {y.dtype}")
    shape = y.shape
    if len(shape) > 1 and shape[-1] == 1:  # Keras squeezes a trailing axis of 1
        shape = shape[:-1]
    y = y.astype(np.int64).ravel()
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"to_categorical: labels must be in [0, {num_classes}), got values "
                         f"from {y.min()} to {y.max()}")
    categorical = np.zeros((y.size, num_classes), dtype=dtype)
    categorical[np.arange(y.size), y] = 1
    return categorical.reshape(shape + (num_classes,))

