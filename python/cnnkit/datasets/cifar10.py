"""CIFAR-10: 60,000 32x32 colour images in 10 classes, in Keras' format.

    from cnnkit.datasets import cifar10
    (x_train, y_train), (x_test, y_test) = cifar10.load_data()

x_* are uint8 arrays (N, 32, 32, 3), channels last; y_* are uint8 arrays (N, 1) of class indices
0-9 (CLASS_NAMES: airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck). Official
files: 50,000 training and 10,000 test images.

Where the data comes from, first match wins:
  1. `path`: a folder holding cifar-10-batches-py/ or cifar-10-python.tar.gz, the
     cifar-10-batches-py folder itself, or the .tar.gz file itself;
  2. $CNNKIT_DATA: a folder holding cifar-10-batches-py/ or cifar-10-python.tar.gz;
  3. ~/.cnnkit/datasets, the cache (a cifar-10-python.tar.gz found there is extracted next to it);
  4. otherwise the official archive is downloaded into the cache, its published md5 checked, and
     extracted. If that fails too, DatasetNotFoundError (a FileNotFoundError) lists every place
     searched and how to supply the files.
Archives under `path` or $CNNKIT_DATA are read in place (nothing is written next to them), and
files you point at are never checked against the official md5 sums, so re-encoded or re-pickled
copies work. Files that are damaged or are not CIFAR batches raise ValueError naming the file.

The batches are pickles, which can run code when loaded; they are read with an unpickler that
only rebuilds numpy arrays and builtins (cnnkit.datasets._safe_pickle).
"""
import os

import numpy as np

from . import _cifar_files, _sources
from ._errors import DatasetNotFoundError

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"  # published with the archive, on the CIFAR-10 page
ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
BATCHES = TRAIN_BATCHES + (TEST_BATCH,)
NUM_CLASSES = 10
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGE_SHAPE = (32, 32, 3)
ENV_VAR = _sources.ENV_VAR

__all__ = ["load_data", "CLASS_NAMES", "DatasetNotFoundError"]

cache_dir = _sources.cache_dir  # ~/.cnnkit/datasets, shared by every data set


def load_data(path=None):
    """Loads CIFAR-10 as ((x_train, y_train), (x_test, y_test)); see the module docstring for
    where it looks. Raises DatasetNotFoundError when the data is nowhere and cannot be
    downloaded, ValueError when a file is damaged or not a CIFAR-10 batch."""
    searched, found = _cifar_files.search("CIFAR-10", path, FOLDER, ARCHIVE, BATCHES)
    if found is None:
        return _load_folder(_cifar_files.download("CIFAR-10", URL, MD5, FOLDER, ARCHIVE, searched, _supply()))
    kind, location = found
    return _load_folder(location) if kind == "folder" else _load_archive(location)


def _supply():
    return [f"To supply the data, get {URL} (md5 {MD5}), or its extracted {FOLDER}/ folder, and either",
            "  - pass the folder holding it as load_data(path=...) (or `--data DIR` on the command line),",
            f"  - set {ENV_VAR} to that folder, or",
            f"  - put it in {cache_dir()}."]


def _load_folder(folder):
    missing = [name for name in BATCHES if not os.path.isfile(os.path.join(folder, name))]
    if missing:
        raise FileNotFoundError(f"{folder} lacks the CIFAR-10 batch file(s) {', '.join(missing)}")

    def read(names):  # lazily, so each raw batch is dropped as soon as it is copied
        for name in names:
            file = os.path.join(folder, name)
            with open(file, "rb") as stream:
                yield _parse_batch(stream, file)
    return _stack(read(TRAIN_BATCHES), len(TRAIN_BATCHES)), _stack(read([TEST_BATCH]), 1)


def _load_archive(archive):
    # Read in place, so every raw batch is held until all are read.
    batches = _cifar_files.read_archive(archive, FOLDER, BATCHES, _parse_batch)
    return (_stack((batches.pop(name) for name in TRAIN_BATCHES), len(TRAIN_BATCHES)),
            _stack((batches.pop(name) for name in [TEST_BATCH]), 1))


def _parse_batch(stream, where):
    """(data (n, 3072) uint8, labels (n,) integers) from one batch pickle, checked; `where` names
    the file in errors."""
    return _cifar_files.checked_batch(_cifar_files.load_dict(stream, where, "CIFAR-10"), where,
                                      "CIFAR-10", "labels", NUM_CLASSES)


def _stack(batches, count):
    """Stacks `count` batches (an iterator of (data, labels)) into (x (N, 32, 32, 3) uint8,
    y (N, 1) uint8). The output is sized from the first batch, as if all were that size (true of
    the official files, so they cost one allocation and no copy), and grown if they are not."""
    x = y = None
    filled = 0
    for index, (data, labels) in enumerate(batches):
        stop = filled + len(data)
        if x is None or stop > len(x):
            capacity = filled + len(data) * (count - index)
            x, y = _grown(x, filled, capacity), _grown(y, filled, capacity, (1,))
        # Each row holds the R, G and B planes in turn: (n, 3, 32, 32) -> channels last.
        x[filled:stop] = data.reshape(-1, IMAGE_SHAPE[2], *IMAGE_SHAPE[:2]).transpose(0, 2, 3, 1)
        y[filled:stop, 0] = labels
        filled = stop
        del data, labels
    if filled < len(x):  # later batches were smaller than the first
        x, y = x[:filled].copy(), y[:filled].copy()
    return x, y


def _grown(old, filled, capacity, row_shape=IMAGE_SHAPE):
    new = np.empty((capacity,) + row_shape, np.uint8)
    if old is not None:
        new[:filled] = old[:filled]
    return new
