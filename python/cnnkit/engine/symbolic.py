"""Symbolic tensors and nodes: how a functional model is written down.

`Input(shape)` returns a KerasTensor: a shape (batch axis None) and the Node that made it.
Calling a layer on KerasTensors builds the layer for their shapes, records the call as a Node
(one per call: a layer called twice has two nodes and shares its weights) and returns new
KerasTensors. Nothing is computed; Model(inputs, outputs) later walks the nodes back from the
outputs (engine/graph.py).

A KerasTensor is not an array: NumPy functions on it, and arithmetic with numbers, raise a
TypeError that says which layer to use; `x + y`, `x - y` and `x * y` between two of them are
the Add, Subtract and Multiply layers, as in Keras.
"""
from .._args import shape_str

__all__ = ["KerasTensor", "Node", "any_symbolic", "call_symbolic", "input_tensor", "flatten"]


def _operators(layer_name, symbol):
    """x <symbol> y and its reflected form (y <symbol> x, when y is not a KerasTensor)."""
    def forward(self, other):
        return self._merge(other, layer_name, symbol, reflected=False)

    def reflected(self, other):
        return self._merge(other, layer_name, symbol, reflected=True)

    return forward, reflected


class KerasTensor:
    """The symbolic output `index` of `node` (None for a free-standing tensor)."""
    __array_ufunc__ = None  # NumPy defers to our operators (which explain) instead of looping

    def __init__(self, shape, node=None, index=0):
        self.shape = tuple(shape)
        self.dtype = "float32"
        self.node = node
        self.index = index

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def name(self):
        return self.node.layer.name if self.node is not None else "keras_tensor"

    def __repr__(self):
        return (f"<KerasTensor shape={shape_str(self.shape)}, dtype=float32, "
                f"name={self.name}>")

    # -------------------------------------------------------------- what it is not
    def __array__(self, *args, **kwargs):
        raise TypeError(
            f"{self!r} is a symbolic tensor (a placeholder in a model definition), not an array: "
            "NumPy cannot compute with it. Inside a model use cnnkit layers (cnnkit.layers."
            "Add, Concatenate, Multiply, ...); to get numbers, build the model and call "
            "model.predict(x)")

    def __bool__(self):
        raise TypeError(f"{self!r} is symbolic: it has no truth value (a model's structure "
                        "cannot depend on the values of its tensors)")

    def __len__(self):
        raise TypeError(f"{self!r} is symbolic: use .shape")

    def __iter__(self):
        raise TypeError(f"{self!r} is symbolic and cannot be iterated")

    def _merge(self, other, layer_name, symbol, reflected):
        from ..layers import merging
        if isinstance(other, KerasTensor):
            layer = getattr(merging, layer_name)()
            return layer([other, self] if reflected else [self, other])
        raise TypeError(
            f"`{symbol}` between a symbolic tensor and a {type(other).__name__} is not supported "
            "in cnnkit: a model is made of layers, so that its gradients are right. Between two "
            f"tensors use cnnkit.layers.{layer_name}; to scale or shift by a constant, put the "
            "constant in a layer's weights (for example a Dense or Conv2D) or in the data")

    __add__, __radd__ = _operators("Add", "+")
    __sub__, __rsub__ = _operators("Subtract", "-")
    __mul__, __rmul__ = _operators("Multiply", "*")

    def _unsupported(self, *args):
        raise TypeError(f"{self!r}: arithmetic operators other than +, - and * between two "
                        "symbolic tensors are not supported in cnnkit; use layers (cnnkit."
                        "layers.Maximum, Minimum, Average, Activation, ...)")

    __truediv__ = __rtruediv__ = __pow__ = __rpow__ = __neg__ = __matmul__ = __rmatmul__ = _unsupported
    __floordiv__ = __mod__ = __abs__ = __pos__ = __getitem__ = _unsupported


class Node:
    """One call of `layer` on symbolic tensors: its inputs (KerasTensors, in the order of the
    call), outputs and the `training` it was called with (None: the model's). `packed` says
    whether the layer took its inputs as a list (a merge layer, a model with several inputs)."""

    def __init__(self, layer, inputs, packed, training=None):
        self.layer = layer
        self.inputs = list(inputs)
        self.packed = packed
        self.training = training
        self.outputs = []
        layer._inbound_nodes.append(self)

    @property
    def index(self):
        """This node's position among its layer's calls (Keras' node index)."""
        return self.layer._inbound_nodes.index(self)

    @property
    def parents(self):
        return [t.node for t in self.inputs if t.node is not None]

    def __repr__(self):
        return f"<Node {self.layer.name}#{self.index}>"


def flatten(structure):
    """The leaves of a tensor or a (nested) list, tuple or dict of them, in order (dict: by
    insertion order)."""
    if isinstance(structure, dict):
        return [leaf for value in structure.values() for leaf in flatten(value)]
    if isinstance(structure, (list, tuple)):
        return [leaf for value in structure for leaf in flatten(value)]
    return [structure]


def any_symbolic(structure):
    return any(isinstance(leaf, KerasTensor) for leaf in flatten(structure))


def input_tensor(input_layer):
    """The KerasTensor of an InputLayer (what Input(shape) returns)."""
    node = Node(input_layer, [], packed=False)
    tensor = KerasTensor(input_layer._batch_input_shape, node, 0)
    node.outputs = [tensor]
    input_layer.built = True
    input_layer.input_shape = input_layer.output_shape = tensor.shape
    return tensor


def call_symbolic(layer, inputs, training):
    """layer(inputs) on KerasTensors: build the layer, record a Node, return its outputs."""
    leaves = flatten(inputs)
    for leaf in leaves:
        if not isinstance(leaf, KerasTensor):
            raise TypeError(
                f'Layer "{layer.name}" ({type(layer).__name__}) was called on a mix of symbolic '
                f"tensors and a {type(leaf).__name__}: in a functional model every input must "
                "come from cnnkit.Input or another layer's output (a NumPy array is data: give "
                "it to fit or predict)")
    packed = isinstance(inputs, (list, tuple, dict))
    if isinstance(inputs, dict):
        raise TypeError(f'Layer "{layer.name}": dict inputs are not supported in cnnkit; pass '
                        "a list")
    is_model = hasattr(layer, "_graph_for")
    several = getattr(layer, "_takes_several_inputs", False)
    takes_list = layer.takes_list or (is_model and (several or not layer.built))
    if packed and is_model and not several and len(leaves) == 1:
        packed = False  # a one-input model called on [x]
    if packed and not takes_list:
        if len(leaves) != 1:
            raise ValueError(
                f'Layer "{layer.name}" ({type(layer).__name__}) takes one input, but it was '
                f"called on a list of {len(leaves)} tensors; to combine tensors use a merge "
                "layer (cnnkit.layers.Add, Concatenate, ...)")
        packed = False
    if not packed and (layer.takes_list or several):
        raise TypeError(f'Layer "{layer.name}" ({type(layer).__name__}) expects a list of '
                        f"tensors, got a single {leaves[0]!r}")
    shapes = [t.shape for t in leaves]
    shape = shapes if packed else shapes[0]
    try:
        with layer._exclusive():
            layer._ensure_built(shape)
            out_shape = layer.compute_output_shape(shape)
    except ValueError as error:
        if len(leaves) > 1:  # name where each input comes from
            sources = ", ".join(f'{shape_str(t.shape)} from "{t.name}"' for t in leaves)
            raise ValueError(f"{error} (inputs: {sources})") from None
        raise
    node = Node(layer, leaves, packed, None if training is None else bool(training))
    if isinstance(out_shape, list):  # a model with several outputs
        node.outputs = [KerasTensor(s, node, i) for i, s in enumerate(out_shape)]
        return layer._pack_outputs(node.outputs)
    node.outputs = [KerasTensor(out_shape, node, 0)]
    return node.outputs[0]
