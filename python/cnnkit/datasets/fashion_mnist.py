"""Fashion-MNIST: 70,000 28x28 greyscale images of clothing in 10 classes, in Keras' format.

    from cnnkit.datasets import fashion_mnist
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()

x_* are uint8 arrays (N, 28, 28) with pixels 0-255, y_* uint8 arrays (N,) of class indices 0-9
(CLASS_NAMES: T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle
boot), as keras.datasets.fashion_mnist gives them: 60,000 training and 10,000 test images.

Keras' load_data() takes no argument; `path` is cnnkit's addition, as for cifar10. Where the data
comes from, first match wins:
  1. `path`: a folder holding the four original IDX files (train-images-idx3-ubyte,
     train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each plain or
     .gz), or a fashion-mnist.npz with Keras' MNIST arrays, or a fashion-mnist/ folder holding
     either; or that .npz file itself;
  2. $CNNKIT_DATA: a folder holding fashion-mnist.npz or a fashion-mnist/ folder as above (not
     the bare IDX files, which have the same names as MNIST's);
  3. ~/.cnnkit/datasets/fashion-mnist, the cache (Keras' cache folder name);
  4. otherwise the four .gz files are downloaded from Keras' URLs into the cache, each checked
     against the md5 Zalando publishes with the data set (Keras' source gives no hash for these).
     If that fails too, DatasetNotFoundError (a FileNotFoundError) lists every place searched and
     how to supply the files.
Files you point at (1 and 2) are never checked against the published hashes; a file that is
damaged or is not Fashion-MNIST-shaped raises ValueError naming it.
"""
import os
import warnings

from . import _mnist_files, _sources
from ._errors import DatasetNotFoundError

BASE_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
# md5 of each official file, from the Fashion-MNIST README (github.com/zalandoresearch/fashion-mnist).
MD5 = {"train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
       "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
       "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
       "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79"}
SUBFOLDER = "fashion-mnist"
NPZ = "fashion-mnist.npz"
NUM_CLASSES = 10
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

__all__ = ["load_data", "CLASS_NAMES", "DatasetNotFoundError"]


def load_data(path=None):
    """Loads Fashion-MNIST as ((x_train, y_train), (x_test, y_test)); see the module docstring for
    where it looks. Raises DatasetNotFoundError when the data is nowhere and cannot be
    downloaded, ValueError when a file is damaged or not Fashion-MNIST-shaped."""
    given = _sources.user_path(path)
    searched = [(_sources.PATH_LABEL, given)]
    if given:
        found = _mnist_files.locate(given, NPZ, SUBFOLDER, top_level_idx=True)
        if found:
            return _mnist_files.load_found("Fashion-MNIST", found)
        warnings.warn(f"no Fashion-MNIST under {given!r}; looking elsewhere", stacklevel=2)
    environment = _sources.environment_folder()
    searched.append((_sources.ENV_LABEL, environment))
    found = _mnist_files.locate(environment, NPZ, SUBFOLDER, top_level_idx=False) if environment else None
    if found:
        return _mnist_files.load_found("Fashion-MNIST", found)
    cache = _sources.cache_dir()
    searched.append((_sources.CACHE_LABEL, cache))
    found = _mnist_files.locate(cache, NPZ, SUBFOLDER, top_level_idx=False)
    if _mnist_files.is_complete(found):
        return _mnist_files.load(found)
    # Missing or incomplete (an earlier download was interrupted): fetch what is missing.
    folder = _sources.fetch([(BASE_URL + name, name, md5) for name, md5 in MD5.items()],
                            os.path.join(cache, SUBFOLDER), searched, "Fashion-MNIST", _supply())
    return _mnist_files.load(("idx", folder, _mnist_files.idx_files(folder)))


def _supply():
    urls = ", ".join(BASE_URL + name for name in MD5)
    return [f"To supply the data, get {urls} (md5 sums in cnnkit.datasets.fashion_mnist.MD5)",
            f"into a {SUBFOLDER}/ folder, and either",
            "  - pass that folder as load_data(path=...),",
            f"  - set {_sources.ENV_VAR} to the folder holding it, or",
            f"  - put it in {_sources.cache_dir()}."]
