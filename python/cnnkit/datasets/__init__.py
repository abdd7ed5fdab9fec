"""Built-in data sets, loaded in Keras' format (`cnnkit.datasets.cifar10.load_data()`): cifar10,
cifar100, mnist and fashion_mnist.

Each loader looks for its files in the folder you pass, then in $CNNKIT_DATA, then in the cache
~/.cnnkit/datasets, and only then downloads them (with a checksum) into the cache.
"""
from . import cifar10, cifar100, fashion_mnist, mnist
from ._errors import DatasetNotFoundError

__all__ = ["cifar10", "cifar100", "fashion_mnist", "mnist", "DatasetNotFoundError"]
