"""MNIST: 70,000 28x28 greyscale images of handwritten digits, in Keras' format.

    from cnnkit.datasets import mnist
    (x_train, y_train), (x_test, y_test) = mnist.load_data()

x_* are uint8 arrays (N, 28, 28) with pixels 0-255, y_* uint8 arrays (N,) of digits 0-9, as
keras.datasets.mnist gives them: 60,000 training and 10,000 test images.

`path` is, as in Keras, the name of the file in the cache ('mnist.npz' by default); it may also
be a folder or an absolute file of yours. Where the data comes from, first match wins:
  1. `path`, when it is an existing folder: one holding mnist.npz, the four original IDX files
     (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
     t10k-labels-idx1-ubyte, each plain or .gz), or a mnist/ folder holding either;
     or when it is an absolute path (or starts with ~): that .npz file;
  2. $CNNKIT_DATA: a folder holding the file `path` names (mnist.npz), or a mnist/ folder
     holding it or the four IDX files;
  3. ~/.cnnkit/datasets, the cache, laid out as $CNNKIT_DATA;
  4. otherwise Keras' mnist.npz is downloaded into the cache and its sha256 (the hash Keras'
     source gives) checked. If that fails too, DatasetNotFoundError (a FileNotFoundError) lists
     every place searched and how to supply the files.
Files you point at (1 and 2) are never checked against the published hash, so other copies of
MNIST work; a file that is damaged or is not MNIST raises ValueError naming it.
"""
import os
import warnings

from . import _mnist_files, _sources
from ._errors import DatasetNotFoundError

URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"  # Keras' file_hash
NPZ = "mnist.npz"
SUBFOLDER = "mnist"
NUM_CLASSES = 10
CLASS_NAMES = tuple(str(digit) for digit in range(NUM_CLASSES))

__all__ = ["load_data", "CLASS_NAMES", "DatasetNotFoundError"]


def load_data(path=NPZ):
    """Loads MNIST as ((x_train, y_train), (x_test, y_test)); see the module docstring for where
    it looks. Raises DatasetNotFoundError when the data is nowhere and cannot be downloaded,
    ValueError when a file is damaged or not MNIST."""
    given = _sources.user_path(path) if path is not None else NPZ  # None: as the default, like cifar10's
    name = NPZ
    searched = []
    if os.path.isdir(given) or os.path.isabs(given):
        searched.append((_sources.PATH_LABEL, given))
        found = _mnist_files.locate(given, NPZ, SUBFOLDER, top_level_idx=True)
        if found:
            return _mnist_files.load_found("MNIST", found)
        warnings.warn(f"no MNIST under {given!r}; looking elsewhere", stacklevel=2)
    else:
        name = given  # a file name relative to the cache, as Keras' `path`
        searched.append((_sources.PATH_LABEL, f"{name!r}, a file name looked for in the folders below"))
    for label, place in ((_sources.ENV_LABEL, _sources.environment_folder()),
                         (_sources.CACHE_LABEL, _sources.cache_dir())):
        searched.append((label, place))
        found = _mnist_files.locate(place, name, SUBFOLDER, top_level_idx=False) if place else None
        if found:
            return _mnist_files.load_found("MNIST", found)
    cache = _sources.cache_dir()
    target = os.path.join(cache, name)
    _sources.fetch([(URL, os.path.basename(target), SHA256)], os.path.dirname(target),
                   searched, "MNIST", _supply(name))
    return _mnist_files.load(("npz", target))


def _supply(name):
    idx = ", ".join(f"{file}[.gz]" for file in _mnist_files.IDX_NAMES.values())
    return [f"To supply the data, get {URL} (sha256 {SHA256}) as {name},",
            f"or the four original files {idx} into a {SUBFOLDER}/ folder, and either",
            "  - pass the folder holding them as load_data(path=...),",
            f"  - set {_sources.ENV_VAR} to that folder, or",
            f"  - put them in {_sources.cache_dir()}."]
