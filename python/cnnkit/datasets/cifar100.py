"""CIFAR-100: 60,000 32x32 colour images in 100 classes grouped into 20 superclasses, in Keras'
format.

    from cnnkit.datasets import cifar100
    (x_train, y_train), (x_test, y_test) = cifar100.load_data(label_mode="fine")

x_* are uint8 arrays (N, 32, 32, 3), channels last; y_* are int64 arrays (N, 1) of class indices,
0-99 with label_mode="fine" (FINE_CLASS_NAMES) or superclass indices 0-19 with "coarse"
(COARSE_CLASS_NAMES). int64, not uint8: keras.datasets.cifar100 returns the pickled Python lists
as NumPy makes them, whatever its docstring says. Official files: 50,000 training and 10,000 test
images.

Keras' load_data takes label_mode only; `path` is cnnkit's addition, as for cifar10. Where the
data comes from, first match wins:
  1. `path`: a folder holding cifar-100-python/ or cifar-100-python.tar.gz, the
     cifar-100-python folder itself, or the .tar.gz file itself;
  2. $CNNKIT_DATA: a folder holding cifar-100-python/ or cifar-100-python.tar.gz;
  3. ~/.cnnkit/datasets, the cache (a cifar-100-python.tar.gz found there is extracted next to it);
  4. otherwise the official archive is downloaded into the cache, checked against the sha256
     Keras' source gives for it, and extracted. If that fails too, DatasetNotFoundError (a
     FileNotFoundError) lists every place searched and how to supply the files.
Only the `train` and `test` files are read (`meta` holds the class names, which are below).
Archives under `path` or $CNNKIT_DATA are read in place, and files you point at are never
checked against the published hash. Files that are damaged or are not CIFAR-100 pickles raise
ValueError naming the file; the pickles are read with cnnkit's safe unpickler, which only
rebuilds numpy arrays and builtins.
"""
import os

import numpy as np

from . import _cifar_files, _sources
from ._errors import DatasetNotFoundError

URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
SHA256 = "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"  # Keras' file_hash
ARCHIVE = "cifar-100-python.tar.gz"
FOLDER = "cifar-100-python"
TRAIN, TEST = "train", "test"
FILES = (TRAIN, TEST)
LABEL_MODES = {"fine": 100, "coarse": 20}
IMAGE_SHAPE = _cifar_files.IMAGE_SHAPE
# In label order, as the official `meta` file lists them.
FINE_CLASS_NAMES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm")
COARSE_CLASS_NAMES = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes", "large_omnivores_and_herbivores",
    "medium_mammals", "non-insect_invertebrates", "people", "reptiles", "small_mammals", "trees",
    "vehicles_1", "vehicles_2")

__all__ = ["load_data", "FINE_CLASS_NAMES", "COARSE_CLASS_NAMES", "DatasetNotFoundError"]


def load_data(label_mode="fine", path=None):
    """Loads CIFAR-100 as ((x_train, y_train), (x_test, y_test)), labelled by class ("fine") or
    superclass ("coarse"); see the module docstring for where it looks. Raises
    DatasetNotFoundError when the data is nowhere and cannot be downloaded, ValueError when
    label_mode is unknown or a file is damaged or not a CIFAR-100 pickle."""
    if not isinstance(label_mode, str) or label_mode not in LABEL_MODES:
        raise ValueError(f'`label_mode` must be one of "fine", "coarse". Received: label_mode={label_mode!r}.')
    searched, found = _cifar_files.search("CIFAR-100", path, FOLDER, ARCHIVE, FILES)
    if found is None:
        folder = _cifar_files.download("CIFAR-100", URL, SHA256, FOLDER, ARCHIVE, searched, _supply())
        return _load_folder(folder, label_mode)
    kind, location = found
    return _load_folder(location, label_mode) if kind == "folder" else _load_archive(location, label_mode)


def _supply():
    return [f"To supply the data, get {URL} (sha256 {SHA256}), or its extracted {FOLDER}/ folder, and either",
            "  - pass the folder holding it as load_data(path=...),",
            f"  - set {_sources.ENV_VAR} to that folder, or",
            f"  - put it in {_sources.cache_dir()}."]


def _parser(label_mode):
    def parse(stream, where):
        batch = _cifar_files.load_dict(stream, where, "CIFAR-100")
        return _cifar_files.checked_batch(batch, where, "CIFAR-100", f"{label_mode}_labels", LABEL_MODES[label_mode])
    return parse


def _load_folder(folder, label_mode):
    missing = [name for name in FILES if not os.path.isfile(os.path.join(folder, name))]
    if missing:
        raise FileNotFoundError(f"{folder} lacks the CIFAR-100 file(s) {', '.join(missing)}")
    parse = _parser(label_mode)

    def split(name):
        file = os.path.join(folder, name)
        with open(file, "rb") as stream:
            return _keras_arrays(*parse(stream, file))
    return split(TRAIN), split(TEST)


def _load_archive(archive, label_mode):
    parsed = _cifar_files.read_archive(archive, FOLDER, FILES, _parser(label_mode))
    return _keras_arrays(*parsed.pop(TRAIN)), _keras_arrays(*parsed.pop(TEST))


def _keras_arrays(data, labels):
    """x (n, 32, 32, 3) uint8 channels last (each row holds the R, G and B planes in turn) and
    y (n, 1) int64, as Keras returns them."""
    x = np.ascontiguousarray(data.reshape(-1, IMAGE_SHAPE[2], *IMAGE_SHAPE[:2]).transpose(0, 2, 3, 1))
    return x, labels.astype(np.int64).reshape(-1, 1)
