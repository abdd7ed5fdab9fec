"""Sequential: a stack of layers with Keras' model API.

This file holds the structure (adding and building layers, weights, summary, configs); the
training loop (compile, fit, evaluate, predict) is in trainer.py and the file format in
saving.py. A Sequential is itself a Layer, so it can sit inside another Sequential.
"""

from . import saving
from .layers.base import Layer, get_layer_class, shape_str
from .layers.core import InputLayer
from .trainer import Trainer

__all__ = ["Sequential", "load_model", "conv_autoencoder"]


class Sequential(Trainer, Layer):
    def __init__(self, layers=None, name=None, trainable=True):
        super().__init__(name=name, trainable=trainable)
        self._layers = []
        self._init_trainer()
        for layer in layers or []:
            self.add(layer)

    # ------------------------------------------------------------ structure
    @property
    def layers(self):
        return list(self._layers)

    def add(self, layer):
        """Appends a layer; if the input shape is known the layer is built at once, so that a
        shape mismatch is reported here, naming the layer (and the layer is not added)."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a Layer, got {type(layer).__name__}")
        if isinstance(layer, InputLayer):
            if self._layers or self._batch_input_shape is not None:
                raise ValueError("An InputLayer can only be the first layer of a Sequential model")
            self._batch_input_shape = layer._batch_input_shape
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
                raise

    def pop(self):
        layer = self._layers.pop()
        if self.built:
            self.build(self.input_shape)
        return layer

    def build(self, input_shape=None):
        """Builds every layer in turn for this input shape (batch axis included, as None)."""
        input_shape = self._batch_input_shape if input_shape is None else tuple(input_shape)
        if input_shape is None:
            raise ValueError(f'Model "{self.name}" cannot be built without an input shape: give '
                             "the first layer input_shape=, start with Input(shape), or fit it")
        shape = tuple(input_shape)
        for layer in self._layers:
            if layer.built:
                layer._check_input(shape)
            else:
                layer._build_checked(shape)
            shape = tuple(layer.compute_output_shape(shape))
        Layer.build(self, input_shape)

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        for layer in self._layers:
            shape = tuple(layer.compute_output_shape(shape))
        return shape

    def _check_input(self, shape):
        built = self.input_shape
        if len(shape) != len(built) or any(b is not None and s != b for s, b in zip(shape[1:], built[1:])):
            raise ValueError(f'Input 0 of layer "{self.name}" is incompatible with the layer: '
                             f"expected shape={shape_str(built)}, found shape={shape_str(shape)}")

    # ------------------------------------------------------------ running
    def _own_layers(self):
        return [self] + [own for layer in self._layers for own in layer._own_layers()]

    def forward(self, x, training=False):
        for layer in self._layers:
            x = layer.forward(x, training)
        return x

    def _set_input_grad_needed(self, needed):
        """The input gradient of the whole model, and of the layers after a leading run of
        preprocessing layers (which have no weights), can go unread."""
        self.input_grad_needed = needed
        for layer in self._layers:
            if isinstance(layer, Sequential):
                layer._set_input_grad_needed(needed)
            else:
                layer.input_grad_needed = needed
            needed = needed or not layer.preprocessing

    @property
    def preprocessing(self):
        """A model made only of preprocessing layers is one too."""
        return bool(self._layers) and all(layer.preprocessing for layer in self._layers)

    def _set_workspaces(self, on):
        """Workspaces on or off in every layer (see layers/base.py): on only for the length of
        a step whose arrays the trainer does not hand out."""
        self._reuse = on
        for layer in self._layers:
            layer._set_workspaces(on)

    def backward(self, dy):
        for layer in reversed(self._layers):
            dy = layer.backward(dy)
        return dy

    # The final activation, for a fused softmax cross-entropy (see Layer.output_activation).
    @property
    def output_activation(self):
        return self._layers[-1].output_activation if self._layers else None

    @property
    def logits(self):
        return self._layers[-1].logits

    def backward_from_logits(self, dz):
        dz = self._layers[-1].backward_from_logits(dz)
        for layer in reversed(self._layers[:-1]):
            dz = layer.backward(dz)
        return dz

    # ------------------------------------------------------------ weights
    @property
    def weights(self):
        return [w for layer in self._layers for w in layer.weights]

    @property
    def trainable_weights(self):
        return [w for layer in self._layers for w in layer.trainable_weights] if self.trainable else []

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return self.weights
        return [w for layer in self._layers for w in layer.non_trainable_weights]

    def _trainable_grads(self):
        return [g for layer in self._layers for g in layer._trainable_grads()] if self.trainable else []

    def set_weights(self, weights):
        weights = list(weights)
        expected = len(self.weights)
        if len(weights) != expected:
            raise ValueError(f'You called set_weights(weights) on layer "{self.name}" with a weight '
                             f"list of length {len(weights)}, but the layer was expecting "
                             f"{expected} weights")
        for layer in self._layers:
            count = len(layer.weights)
            layer.set_weights(weights[:count])
            weights = weights[count:]

    def count_params(self):
        if not self.built:
            raise ValueError(f'You tried to call count_params on layer "{self.name}", but the '
                             "layer isn't built. Build it first by calling build() or fit().")
        return sum(layer.count_params() for layer in self._layers)

    def get_state(self):
        return {"shuffle": self._shuffle_state(), "layers": [l.get_state() for l in self._layers]}

    def set_state(self, state):
        self._set_shuffle_state(state.get("shuffle"))
        for layer, layer_state in zip(self._layers, state.get("layers", [])):
            layer.set_state(layer_state)

    # ------------------------------------------------------------ summary and configs
    def summary(self, line_length=None, positions=None, print_fn=None):
        """Prints a Keras-like table: each layer's name and type, output shape and parameter
        count, then the totals."""
        if not self.built:
            raise ValueError(f'Model "{self.name}" has not yet been built. Build the model first '
                             "by calling build() or by calling fit() with some data, or give the "
                             "first layer an input_shape argument.")
        print_fn = print_fn or print
        shape = self.input_shape
        rows = []
        for layer in self._layers:
            shape = layer.compute_output_shape(shape)
            rows.append((f"{layer.name} ({type(layer).__name__})", shape_str(shape),
                         f"{layer.count_params():,}"))
        first = max([29] + [len(r[0]) + 2 for r in rows])
        second = max([26] + [len(r[1]) + 2 for r in rows])
        width = line_length or first + second + 11

        def line(cells):
            return (f" {cells[0]:<{first - 1}}{cells[1]:<{second}}{cells[2]}").ljust(width)

        print_fn(f'Model: "{self.name}"')
        print_fn("_" * width)
        print_fn(line(("Layer (type)", "Output Shape", "Param #")))
        print_fn("=" * width)
        for i, row in enumerate(rows):
            print_fn(line(row))
            print_fn(("=" if i == len(rows) - 1 else " ") * width)
        total = self.count_params()
        trainable = sum(w.size for w in self.trainable_weights)
        print_fn(f"Total params: {total:,} ({_size(total)})")
        print_fn(f"Trainable params: {trainable:,} ({_size(trainable)})")
        print_fn(f"Non-trainable params: {total - trainable:,} ({_size(total - trainable)})")
        print_fn("_" * width)

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
            if issubclass(layer_cls, Sequential):
                model.add(layer_cls.from_config(entry["config"], custom_objects))
            else:
                model.add(layer_cls.from_config(entry["config"]))
        if config.get("build_input_shape") is not None and not model.built:
            model.build(tuple(config["build_input_shape"]))
        return model

    # ------------------------------------------------------------ files
    def save(self, filepath, overwrite=True, include_optimizer=True):
        """Architecture, weights, compile settings and optimizer state in one file; a model
        loaded from it (load_model) resumes fit exactly where this one stopped."""
        saving.save_model(self, filepath, overwrite=overwrite, include_optimizer=include_optimizer)

    def save_weights(self, filepath, overwrite=True):
        saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath):
        """Weights from save_weights or save; a file of another architecture is a ValueError."""
        saving.load_weights(self, filepath)


def _size(count):
    size = count * 4.0
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.2f} {unit}"
        size /= 1024


def load_model(filepath, custom_objects=None, compile=True):
    """A model saved with model.save(): architecture, weights, and, if it was compiled, its
    optimizer state, loss and metrics."""
    return saving.load_model(filepath, custom_objects=custom_objects, compile=compile,
                             model_classes={"Sequential": Sequential})


# Ready-made models, re-exported here as Keras users look for them; imported last because they
# are built from Sequential.
from .applications.autoencoder import conv_autoencoder  # noqa: E402
