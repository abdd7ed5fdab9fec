"""Sequential: a stack of layers, kept as a list for the user and run as the graph of
Input -> layer 1 -> ... -> layer n (Keras 3 builds a Functional underneath the same way), so
there is one engine. The graph is made again whenever the stack or its input shape changes.
"""
from ..layers.base import Layer, get_layer_class
from ..layers.core import InputLayer
from .model import Model
from .symbolic import KerasTensor, input_tensor

__all__ = ["Sequential"]


class Sequential(Model):
    def __init__(self, layers=None, name=None, trainable=True):
        super().__init__(name=name, trainable=trainable)
        self._layers = []
        self._input_name = None
        for layer in layers or []:
            self.add(layer)

    @property
    def layers(self):
        if self._subclassed:  # its call() decides what runs: the layers it holds as attributes too
            return list(self._layers) + [l for l in self._tracked
                                         if all(l is not own for own in self._layers)]
        return list(self._layers)

    def add(self, layer):
        """Appends a layer; if the input shape is known the model is built at once, so that a
        shape mismatch is reported here, naming the layer (and the layer is not added)."""
        if isinstance(layer, KerasTensor):  # Sequential([Input(shape), ...]) as in Keras 3
            if layer.node is None or not isinstance(layer.node.layer, InputLayer):
                raise TypeError("Sequential.add takes layers and cnnkit.Input(...) tensors, got "
                                f"the output of layer \"{layer.name}\"; use Model(inputs, "
                                "outputs) for a graph of layers")
            layer = layer.node.layer
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a Layer, got {type(layer).__name__}")
        if isinstance(layer, InputLayer):
            if self._layers or self._batch_input_shape is not None:
                raise ValueError("An InputLayer can only be the first layer of a Sequential model")
            self._batch_input_shape = layer._batch_input_shape
            self._input_name = layer.name
            return
        if any(own.name == layer.name for own in self._layers):
            raise ValueError(f'All layers added to a Sequential model should have unique names; '
                             f'"{layer.name}" is already in "{self.name}"')
        if not self._layers and self._batch_input_shape is None:
            self._batch_input_shape = layer._batch_input_shape
        self._layers.append(layer)
        if self._batch_input_shape is not None:
            try:
                self.build(self._batch_input_shape)
            except Exception:
                self._layers.pop()
                if self._layers:
                    self.build(self._batch_input_shape)
                raise

    def pop(self):
        if not self._layers:
            raise IndexError(f'Sequential model "{self.name}" has no layers to remove')
        layer = self._layers.pop()
        if self.built and self._layers:
            self.build(self.input_shape)
        return layer

    def build(self, input_shape=None):
        """Builds every layer in turn for this input shape (batch axis included, as None)."""
        if self._subclassed:  # a subclass with its own call(): that call is the model
            return Model.build(self, input_shape)
        input_shape = self._batch_input_shape if input_shape is None else input_shape
        if input_shape is None:
            raise ValueError(f'Model "{self.name}" cannot be built without an input shape: give '
                             "the first layer input_shape=, start with Input(shape), or fit it")
        if not self._layers:
            raise ValueError(f'Sequential model "{self.name}" has no layers to build')
        input_shape = (None,) + tuple(input_shape)[1:]
        x = inputs = input_tensor(InputLayer(batch_shape=input_shape, name=self._input_name))
        for layer in self._layers:
            x = layer(x)
        self._init_graph(inputs, x)

    def _check_input(self, shape):
        if isinstance(shape, list):
            raise ValueError(f'Sequential model "{self.name}" takes one input, got {len(shape)}')
        Model._check_input(self, shape)

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable,
                  "layers": [{"class_name": type(l).__name__, "config": l.get_config()}
                             for l in self._layers]}
        shape = self.input_shape if self.built else self._batch_input_shape
        config["build_input_shape"] = None if shape is None else list(shape)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        for entry in config["layers"]:
            layer_cls = get_layer_class(entry["class_name"], custom_objects)
            if issubclass(layer_cls, Model):
                model.add(layer_cls.from_config(entry["config"], custom_objects))
            else:
                model.add(layer_cls.from_config(entry["config"]))
        if config.get("build_input_shape") is not None and not model.built:
            model.build(tuple(config["build_input_shape"]))
        return model
