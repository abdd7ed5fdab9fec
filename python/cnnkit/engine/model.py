"""Model: what every model shares (Keras 3's Model), whichever way it was written.

  Model(inputs, outputs)      a functional model: returns a Functional (engine/functional.py)
  class M(cnnkit.Model)       a subclassed model: layers set as attributes in __init__, and a
                              call(inputs, training=None) made of layer calls
  Sequential([...])           a stack (engine/sequential.py)

All three run on one engine: a Graph of the nodes their layer calls recorded (engine/graph.py).
A subclassed model's call() is traced once per training mode on symbolic tensors of the input
shapes it is built for, so the graph is exactly what call() says; anything call() does that a
graph cannot hold (NumPy on a tensor, arithmetic with constants) raises there, at build,
instead of training a different model.

A model is a layer: it can be called on symbolic tensors inside another model (one node), or on
arrays. Its per-call state (ModelState) holds a GraphState per graph it ran.
"""
from ..layers.base import STRUCTURE_VERSION, Layer
from ..layers.call_state import CallState
from ..trainer import Trainer
from . import summary as summary_module
from .graph import Graph
from .symbolic import KerasTensor, flatten, input_tensor

__all__ = ["Model", "ModelState"]


class ModelState(CallState):
    """The state of one call site of a model: a GraphState for each graph it has run (a
    subclassed model may have one graph for training and one for inference)."""

    def __init__(self, layer, reuse=False):
        super().__init__(layer, reuse)
        self.by_graph = {}
        self.active = None  # the GraphState of the last forward pass

    def graph_state(self, graph):
        gs = self.by_graph.get(graph)
        if gs is None:
            gs = self.by_graph[graph] = graph.new_state(self.layer, self.reuse)
        return gs


class Model(Trainer, Layer):
    def __new__(cls, *args, **kwargs):
        if cls is Model and (args or "inputs" in kwargs or "outputs" in kwargs):
            from .functional import Functional  # Model(inputs, outputs), as in Keras
            return object.__new__(Functional)
        return object.__new__(cls)

    def __init__(self, *args, inputs=None, outputs=None, name=None, trainable=True, **kwargs):
        if args:
            if len(args) > 2 or inputs is not None or (len(args) == 2 and outputs is not None):
                raise TypeError("Model(inputs, outputs, name=None): too many positional arguments")
            inputs = args[0]
            outputs = args[1] if len(args) == 2 else outputs
        Layer.__init__(self, name=name, trainable=trainable, **kwargs)
        self._init_trainer()
        self._graph = None          # a functional or sequential model's graph
        self._traced = {}           # a subclassed model's graphs, by training mode
        self._tracked = []          # layers set as attributes (a subclassed model's layers)
        self._input_structure = self._output_structure = None
        self._build_shapes = None
        if inputs is not None or outputs is not None:
            if inputs is None or outputs is None:
                raise ValueError("Model(inputs, outputs): give both the inputs and the outputs")
            self._init_graph(inputs, outputs)

    # ------------------------------------------------------------ layers set as attributes
    def __getattr__(self, name):
        # Only reached when normal lookup fails: a subclass whose __init__ never called
        # Model.__init__ has none of the engine's attributes.
        if "_tracked" not in self.__dict__ and not name.startswith("__"):
            raise RuntimeError(f"{type(self).__name__}: it looks like you are subclassing Model "
                               "and forgot to call super().__init__() in __init__")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name, value):
        if "_tracked" not in self.__dict__ and isinstance(value, Layer):
            raise RuntimeError(f"{type(self).__name__}: it looks like you are subclassing Model "
                               "and forgot to call super().__init__() before setting "
                               f"self.{name}")
        if not name.startswith("_") and "_tracked" in self.__dict__:
            for layer in flatten(value) if isinstance(value, (list, tuple, dict)) else [value]:
                if isinstance(layer, Layer) and layer is not self and all(
                        layer is not t for t in self._tracked):
                    self._tracked.append(layer)
                    STRUCTURE_VERSION[0] += 1
        object.__setattr__(self, name, value)

    def __setstate__(self, state):
        # copy.deepcopy and pickle leave the trainer's call states behind (Layer.__getstate__):
        # the copy makes its own on its first step.
        Layer.__setstate__(self, state)
        self.__dict__["_states"] = {}
        self.__dict__.pop("_locks_cache", None)

    # ------------------------------------------------------------ the graph
    def _init_graph(self, inputs, outputs):
        self._input_structure = _structure(inputs)
        self._output_structure = _structure(outputs)
        self._graph = Graph(flatten(inputs), flatten(outputs), self.name)
        self._build_shapes = [t.shape for t in self._graph.inputs]
        Layer.build(self, self._shapes_arg())

    @property
    def _subclassed(self):
        return type(self).call is not Model.call and self._graph is None

    def _graph_for(self, training=False):
        if self._graph is not None:
            return self._graph
        if not self._subclassed:
            raise ValueError(f'Model "{self.name}" has no layers to run: create it as '
                             "Model(inputs, outputs), or subclass cnnkit.Model and define "
                             "call(self, inputs, training=None)")
        if self._build_shapes is None:
            raise ValueError(f'Model "{self.name}" has not been built yet: call it on data, '
                             "fit it, or call build(input_shape) first")
        key = bool(training)
        graph = self._traced.get(key)
        if graph is None:
            graph = self._traced[key] = self._trace(key)
        return graph

    def _trace(self, training):
        """Runs call() once on symbolic tensors of the built input shapes."""
        import inspect  # here: only a subclassed model needs it, and it is slow to import
        from ..layers.core import InputLayer
        inputs = [input_tensor(InputLayer(batch_shape=s)) for s in self._build_shapes]
        arg = inputs[0] if self._input_structure == "single" else inputs
        kwargs = {}
        if "training" in inspect.signature(self.call).parameters:
            kwargs["training"] = training
        outputs = self.call(arg, **kwargs)
        for leaf in flatten(outputs):
            if not isinstance(leaf, KerasTensor):
                raise TypeError(
                    f'Model "{self.name}": call() returned a {type(leaf).__name__}, not the '
                    "output of a layer. cnnkit runs call() on symbolic tensors and trains the "
                    "graph of layer calls it makes: compute only with cnnkit layers inside "
                    "call() (NumPy and Python arithmetic on tensors cannot be differentiated)")
        structure = _structure(outputs)
        if self._output_structure is not None and structure != self._output_structure:
            raise ValueError(f'Model "{self.name}": call() returns {structure} outputs with '
                             f"training={training} but {self._output_structure} otherwise")
        self._output_structure = structure
        return Graph(inputs, flatten(outputs), self.name)

    def call(self, inputs, training=None):
        """Keras' call: here, the model on arrays (a subclass defines its own)."""
        return self(inputs, training=training)

    def build(self, input_shape=None):
        """Builds a subclassed model for this input shape (a tuple with the batch axis as
        None, or a list of them for several inputs) by tracing call()."""
        if self._graph is not None:
            return
        if input_shape is None:
            raise ValueError(f'Model "{self.name}": build() needs the input shape')
        several = isinstance(input_shape, list) and input_shape and isinstance(
            input_shape[0], (tuple, list))
        shapes = [tuple(s) for s in input_shape] if several else [tuple(input_shape)]
        self._input_structure = "list" if several else "single"
        self._build_shapes = [(None,) + s[1:] for s in shapes]
        self._traced = {}
        self._graph_for(False)
        Layer.build(self, self._shapes_arg())

    def _shapes_arg(self):
        shapes = self._build_shapes
        return shapes[0] if self._input_structure == "single" else list(shapes)

    @property
    def _takes_several_inputs(self):
        return self._input_structure not in (None, "single")

    # ------------------------------------------------------------ structure
    @property
    def layers(self):
        if self._graph is not None:
            return self._graph.layers
        return list(self._tracked)

    @property
    def inputs(self):
        graph = self._graph_for(False) if self.built else None
        return None if graph is None else list(graph.inputs)

    @property
    def outputs(self):
        graph = self._graph_for(False) if self.built else None
        return None if graph is None else list(graph.outputs)

    @property
    def input_names(self):
        return [t.name for t in self._graph_for(False).inputs]

    @property
    def output_names(self):
        graph = self._graph_for(False)
        if isinstance(self._output_structure, tuple):  # dict outputs: the keys
            return list(self._output_structure[1])
        names, seen = [], {}
        for t in graph.outputs:
            name = t.name
            seen[name] = seen.get(name, 0) + 1
            names.append(name if seen[name] == 1 else f"{name}_{seen[name] - 1}")
        return names

    def get_layer(self, name=None, index=None):
        layers = self.layers
        if index is not None:
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f'No such layer: {name}. Existing layers are: {[l.name for l in layers]}')

    def compute_output_shape(self, input_shape):
        graph = self._graph_for(False)
        shapes = [t.shape for t in graph.outputs]
        return shapes[0] if len(shapes) == 1 else shapes

    def _check_input(self, shape):
        from ..layers.base import shape_str
        built = self._build_shapes
        shapes = shape if isinstance(shape, list) else [shape]
        if len(shapes) != len(built):
            raise ValueError(f'Model "{self.name}" expects {len(built)} input(s), got {len(shapes)}')
        for i, (s, b) in enumerate(zip(shapes, built)):
            if len(s) != len(b) or any(bb is not None and ss != bb for ss, bb in zip(s[1:], b[1:])):
                raise ValueError(f'Input {i} of model "{self.name}" is incompatible with the '
                                 f"model: expected shape={shape_str(b)}, found shape={shape_str(s)}")

    def _build_checked(self, input_shape):
        self.build(input_shape)

    def _pack_outputs(self, outputs):
        structure = self._output_structure
        if structure == "single":
            return outputs[0]
        if isinstance(structure, tuple):
            return dict(zip(structure[1], outputs))
        return list(outputs)

    def _own_layers(self):
        own = [self]
        for layer in self.layers:
            own.extend(layer._own_layers())
        return own

    def _locks(self):
        """Layer._locks, worked out again only when some model's structure has changed."""
        cached = self.__dict__.get("_locks_cache")
        if cached is None or cached[0] != STRUCTURE_VERSION[0]:
            cached = self._locks_cache = (STRUCTURE_VERSION[0], Layer._locks(self))
        return cached[1]

    def _flat_layers(self):
        """Every layer that is not a model, each once, in the order of model.layers."""
        seen, flat = set(), []
        for layer in self.layers:
            for leaf in (layer._flat_layers() if isinstance(layer, Model) else [layer]):
                if id(leaf) not in seen:
                    seen.add(id(leaf))
                    flat.append(leaf)
        return flat

    # ------------------------------------------------------------ running
    def new_state(self, reuse=False):
        return ModelState(self, reuse)

    def _call_eager(self, inputs, training):
        with self._exclusive():
            xs = self._prepare_x(inputs)  # the trainer's: converts, builds or checks the shapes
            # A new state for every eager call, without buffers (reuse=False): each output is a
            # new array, the caller's, and everything else is freed when the call returns (a
            # state kept from call to call held the last call's arrays: the next call's then
            # came from fresh pages, 23 page faults per call of the CIFAR-10 CNN at batch 64).
            call = self.new_state()
            out = self.forward(call, xs if len(xs) > 1 else xs[0], training)
            return self._pack_outputs(out if isinstance(out, list) else [out])

    def _configure(self, call, input_needs, training):
        graph = self._graph_for(training)
        call.need_dx = any(input_needs)
        graph.configure(call.graph_state(graph), input_needs, training)

    def forward(self, call, x, training=False):
        graph = self._graph_for(training)
        gs = call.active = call.graph_state(graph)
        outputs = graph.forward(gs, x if isinstance(x, list) else [x], training)
        return outputs[0] if len(outputs) == 1 else outputs

    def backward(self, call, dy, logits=None):
        """dy: the gradient of each output (one array for one output); logits[i] True when
        dy[i] is with respect to output i's logits. Returns the input gradient(s)."""
        graph = call.active.graph
        dxs = graph.backward(call.active, dy if isinstance(dy, list) else [dy], logits)
        if not call.need_dx:
            return None
        return dxs if len(dxs) > 1 or self._takes_several_inputs else dxs[0]

    def backward_from_logits(self, call, dz):
        return self.backward(call, dz, [True])

    def _leaf_states(self, call, training=True):
        """(layer, CallState) of every layer with weights that runs in `call` (training)."""
        graph = self._graph_for(training)
        return graph.leaf_states(call.graph_state(graph), training)

    # Softmax fused with the loss: which outputs end in a softmax no other node reads.
    # fusable: only an activation the loss may fuse with (none under an activity regularizer).
    def _output_activation_at(self, index, training=True, fusable=False):
        graph = self._graph_for(training)
        producer = graph.output_producers[index]
        if producer is None or not graph.terminal[index]:
            return None
        step, k = graph.steps[producer[0]], producer[1]
        if step.is_model:
            return step.layer._output_activation_at(k, training, fusable)
        if fusable and step.layer.activity_regularizer is not None:
            return None
        return step.layer.output_activation

    @property
    def output_activation(self):
        if not self.built:
            return None
        return self._output_activation_at(0, False) if len(self._graph_for(False).outputs) == 1 else None

    def logits_of(self, call, index=0):
        gs = call.active
        step_index, k = gs.graph.output_producers[index]
        step, child = gs.graph.steps[step_index], gs.children[step_index]
        if step.is_model:
            return step.layer.logits_of(child, k)
        return step.layer.logits_of(child)

    @property
    def preprocessing(self):
        """A model made only of preprocessing layers is one too."""
        layers = [l for l in self._flat_layers() if type(l).__name__ != "InputLayer"]
        return bool(layers) and all(layer.preprocessing for layer in layers)

    # ------------------------------------------------------------ weights
    @Layer.trainable.setter
    def trainable(self, value):
        # As Keras 3: freezing (or unfreezing) a model does it to every layer inside it.
        Layer.trainable.fset(self, value)
        for layer in self.layers:
            layer.trainable = value

    @property
    def weights(self):
        return [w for layer in self._flat_layers() for w in layer.weights]

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        return [w for layer in self._flat_layers() for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return self.weights
        return [w for layer in self._flat_layers() for w in layer.non_trainable_weights]

    def set_weights(self, weights):
        weights = list(weights)
        expected = len(self.weights)
        if len(weights) != expected:
            raise ValueError(f'You called set_weights(weights) on layer "{self.name}" with a weight '
                             f"list of length {len(weights)}, but the layer was expecting "
                             f"{expected} weights")
        for layer in self._flat_layers():
            count = len(layer.weights)
            layer.set_weights(weights[:count])
            weights = weights[count:]

    def count_params(self):
        if not self.built:
            raise ValueError(f'You tried to call count_params on layer "{self.name}", but the '
                             "layer isn't built. Build it first by calling build() or fit().")
        return sum(layer.count_params() for layer in self._flat_layers())

    def get_state(self):
        return {"shuffle": self._shuffle_state(),
                "layers": [l.get_state() for l in self._flat_layers()]}

    def set_state(self, state):
        self._set_shuffle_state(state.get("shuffle"))
        for layer, layer_state in zip(self._flat_layers(), state.get("layers", [])):
            layer.set_state(layer_state)

    # ------------------------------------------------------------ summary, files
    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False):
        """Prints Keras' table: each layer's name and type, output shape and parameter count
        (and, for a functional model, the layers each is connected to), then the totals."""
        summary_module.print_summary(self, line_length=line_length, print_fn=print_fn)

    def save(self, filepath, overwrite=True, include_optimizer=True):
        """Architecture, weights, compile settings and optimizer state in one file; a model
        loaded from it (load_model) resumes fit exactly where this one stopped. A subclassed
        model is saved with its class name: load_model needs the class in custom_objects."""
        from .. import saving
        saving.save_model(self, filepath, overwrite=overwrite, include_optimizer=include_optimizer)

    def export(self, filepath, format="tf_saved_model", verbose=None, opset=17):
        """The inference graph as a file for serving elsewhere, as Keras' export:
        format="onnx" (cnnkit.onnx.export) is the one cnnkit writes; Keras' default,
        "tf_saved_model", needs TensorFlow and is refused with the way out."""
        if format != "onnx":
            raise ValueError(f"export: format={format!r} is not supported: cnnkit writes "
                             "format='onnx' (Keras' 'tf_saved_model' and 'openvino' need "
                             "TensorFlow or OpenVINO)")
        from .. import onnx
        path = onnx.export(self, filepath, opset=opset)
        if verbose:
            print(f"Saved artifact at '{path}'.")
        return path

    def save_weights(self, filepath, overwrite=True):
        from .. import saving
        saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath):
        """Weights from save_weights or save; a file of another architecture is a ValueError."""
        from .. import saving
        saving.load_weights(self, filepath)

    def get_config(self):
        """A subclassed model's own arguments: Keras asks the subclass to define get_config
        (and from_config, when the arguments are not plain values) to be saved whole."""
        return {"name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        try:
            return cls(**config)
        except TypeError as error:
            if set(config) <= {"name", "trainable"}:  # an __init__ without those arguments
                try:
                    model = cls()
                except TypeError:
                    pass
                else:
                    model.name = config.get("name", model.name)
                    model.trainable = config.get("trainable", True)
                    return model
            raise TypeError(f"{cls.__name__}.from_config: the model could not be created from "
                            f"its config {config} ({error}); define get_config() and "
                            "from_config() in the subclass, as in Keras") from None


def _structure(tensors):
    """'single', 'list', or ('dict', keys): how a model takes its inputs or gives outputs."""
    if isinstance(tensors, dict):
        return ("dict", tuple(tensors))
    if isinstance(tensors, (list, tuple)):
        return "list"
    return "single"
