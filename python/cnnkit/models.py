"""cnnkit.models, as keras.models: the three ways to write a model, on one engine
(cnnkit/engine), and loading a saved one.

  Sequential([...])           a stack of layers
  Model(inputs, outputs)      a functional model (a Functional)
  class M(Model): call(...)   a subclassed model
"""
from . import saving
from .engine.functional import Functional
from .engine.model import Model
from .engine.sequential import Sequential

__all__ = ["Model", "Functional", "Sequential", "load_model", "conv_autoencoder", "classic_cnn"]


def load_model(filepath, custom_objects=None, compile=True):
    """A model saved with model.save(): architecture, weights, and, if it was compiled, its
    optimizer state, loss and metrics. A subclassed model needs its class in custom_objects
    ({"MyModel": MyModel}), as in Keras."""
    return saving.load_model(filepath, custom_objects=custom_objects, compile=compile,
                             model_classes={"Sequential": Sequential, "Functional": Functional})


# Ready-made models, re-exported here as Keras users look for them; imported last because they
# are built from the public API above.
from .applications import classic_cnn, conv_autoencoder  # noqa: E402
