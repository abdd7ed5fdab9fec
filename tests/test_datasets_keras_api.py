"""The data set modules as Keras 3 has them: `import cnnkit as keras` reaches
keras.datasets.<name>.load_data, with Keras' arguments, in Keras' order, with Keras' defaults
(cnnkit may add arguments after them, such as `path` for a folder of your own)."""
import inspect
import os

import pytest

import cnnkit

os.environ.setdefault("KERAS_BACKEND", "numpy")

NAMES = ["mnist", "fashion_mnist", "cifar10", "cifar100"]


@pytest.mark.parametrize("name", NAMES)
def test_reachable_as_keras_datasets(name):
    assert name in cnnkit.datasets.__all__
    assert callable(getattr(cnnkit.datasets, name).load_data)


@pytest.mark.parametrize("name", NAMES)
def test_load_data_takes_keras_arguments_with_keras_defaults(name):
    keras = pytest.importorskip("keras")
    theirs = list(inspect.signature(getattr(keras.datasets, name).load_data).parameters.values())
    ours = list(inspect.signature(getattr(cnnkit.datasets, name).load_data).parameters.values())
    assert [(p.name, p.default) for p in ours[:len(theirs)]] == [(p.name, p.default) for p in theirs]
    assert all(p.default is not inspect.Parameter.empty for p in ours[len(theirs):])
