"""cnnkit._naming.snake_case is Keras' rule (keras.src.utils.naming.to_snake_case), the one
behind automatic layer, metric and optimizer names, string lookups and Keras weight-file keys."""
import inspect
import os

import pytest

import cnnkit
from cnnkit import initializers, layers, metrics, optimizers
from cnnkit._naming import snake_case

os.environ.setdefault("KERAS_BACKEND", "numpy")
keras = pytest.importorskip("keras")
from keras.src.utils.naming import to_snake_case  # noqa: E402


def class_names():
    names = set()
    for module in (layers, metrics, optimizers, initializers, cnnkit.models):
        names |= {c.__name__ for c in vars(module).values() if inspect.isclass(c)}
    # capitals followed by digits, acronyms, and a name that is not an identifier's
    return sorted(names | {"ReLU6", "AB1", "MyConv2DLayer", "HTTPServer2", "Conv3DTranspose",
                           "My-Layer"})


@pytest.mark.parametrize("name", class_names())
def test_snake_case_is_keras_rule(name):
    assert snake_case(name) == to_snake_case(name)


def test_automatic_names_are_keras_names():
    class ReLU6Block(layers.Layer):
        pass
    assert ReLU6Block().name.startswith(to_snake_case("ReLU6Block"))
    assert optimizers.RMSprop().name == "rm_sprop"
    assert layers.BatchNormalization().name.startswith("batch_normalization")
