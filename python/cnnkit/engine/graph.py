"""Graph: the nodes between a model's input and output tensors, sorted once, and how to run
them forward and backward with per-call states.

Built once per model (Keras 3's Function): the nodes that lead from the inputs to the outputs,
in an order where every node comes after the nodes that feed it (decreasing depth, as Keras
orders them, so that model.layers and the weights come in Keras' order), each tensor numbered.

Running it needs a GraphState (one per call site of the model, made by new_state): a CallState
for each node, the values of the tensors, and the gradients reaching them. The backward pass
walks the nodes in reverse. A tensor read by several nodes (a residual connection, a shared
input) gets the sum of their gradients: the first one is kept as it is (often a view of
another buffer, or the layer's own), and the sum goes into a buffer of this graph's, so that
nothing is ever added into an array the graph does not own (micrograd's `+=`, made safe).

An inference pass folds each BatchNormalization that follows a linear convolution or Dense into it
(engine/folding.py): one kernel call instead of two. Every pass, training or not, runs a plain
ReLU that is the only reader of a BatchNormalization's or an Add's output inside that layer
(engine/fusion.py): the ReLU step is skipped forward and backward.
"""
import numpy as np

from .. import _core
from .._args import kernel_ready, shape_str
from ..layers.base import STRUCTURE_VERSION
from ..layers.call_state import CallState, Workspaces
from . import folding, fusion
from .symbolic import KerasTensor

__all__ = ["Graph", "GraphState"]


class Step:
    """One node, ready to run: its layer, the numbers of its input and output tensors."""
    __slots__ = ("node", "layer", "inputs", "outputs", "packed", "training", "is_model",
                 "single_output")

    def __init__(self, node, numbers):
        self.node = node
        self.layer = node.layer
        self.inputs = [numbers[id(t)] for t in node.inputs]
        self.outputs = [numbers[id(t)] for t in node.outputs]
        self.packed = node.packed
        self.training = node.training
        self.is_model = hasattr(node.layer, "_graph_for")
        self.single_output = len(self.outputs) == 1


class GraphState(CallState):
    """The state of one run of a graph: a CallState per step, tensor values and gradients."""

    def __init__(self, graph, layer, reuse):
        super().__init__(layer, reuse)
        self.graph = graph
        self.children = [step.layer.new_state(reuse) for step in graph.steps]
        self.values = [None] * graph.tensor_count
        self.gradients = [None] * graph.tensor_count
        self.owned = [False] * graph.tensor_count  # gradients[i] is a buffer of ours
        self.sums = Workspaces(keep=2 * graph.tensor_count) if reuse else None
        # The ReLU steps the last forward pass ran inside their producer (engine/fusion.py);
        # the backward pass hands their gradient straight to the producer.
        self.fused_relus = set()
        self.after_step = None  # a hook called after each backward step (see Graph.backward)

    def sum_buffer(self, number, shape):
        if self.sums is None:
            return None
        return self.sums(shape)(f"sum{number}", shape)


class Graph:
    def __init__(self, inputs, outputs, model_name):
        from ..layers.core import InputLayer
        STRUCTURE_VERSION[0] += 1
        self.inputs, self.outputs = list(inputs), list(outputs)
        for kind, tensors in (("inputs", self.inputs), ("outputs", self.outputs)):
            for t in tensors:
                if not isinstance(t, KerasTensor):
                    what = ("a NumPy array: a layer was called on data, not on symbolic tensors"
                            if isinstance(t, np.ndarray) else type(t).__name__)
                    raise TypeError(f'Model "{model_name}": every one of {kind} must be a '
                                    f"symbolic tensor (from cnnkit.Input or a layer call), got "
                                    f"{what}")
        seen = set()
        for t in self.inputs:
            if not isinstance(t.node.layer, InputLayer):
                raise ValueError(f'Model "{model_name}": inputs must be tensors made by '
                                 f"cnnkit.Input, got the output of layer \"{t.name}\"")
            if id(t) in seen:
                raise ValueError(f'Model "{model_name}": input "{t.name}" is given twice in inputs')
            seen.add(id(t))
        self.nodes = self._sorted_nodes(model_name, InputLayer)
        numbers = {}
        for t in self.inputs:
            numbers[id(t)] = len(numbers)
        for node in self.nodes:
            for t in node.outputs:
                numbers.setdefault(id(t), len(numbers))
        self.tensor_count = len(numbers)
        self.input_numbers = [numbers[id(t)] for t in self.inputs]
        self.output_numbers = [numbers[id(t)] for t in self.outputs]
        self.steps = [Step(node, numbers) for node in self.nodes]
        readers = {}
        for step in self.steps:
            for number in step.inputs:
                readers[number] = readers.get(number, 0) + 1
        # An output no node reads, given once: its producer may take the loss gradient with
        # respect to its logits (softmax fused with cross-entropy).
        self.terminal = [readers.get(n, 0) == 0 and self.output_numbers.count(n) == 1
                         for n in self.output_numbers]
        producers = {n: (i, k) for i, step in enumerate(self.steps)
                     for k, n in enumerate(step.outputs)}
        self.output_producers = [producers.get(n) for n in self.output_numbers]
        # Conv2D / Dense steps whose BatchNormalization folds into them at inference.
        self.folds = folding.find_folds(self.steps, self.output_numbers)
        # BatchNormalization / Add steps that run the plain ReLU reading them as a fused ReLU.
        self.fusions = fusion.find_fusions(self.steps, self.output_numbers)
        # The order of a folded inference pass: a folded residual's step first (folding.py).
        self.folded_order = folding.inference_order(self.steps, self.folds)

    def _sorted_nodes(self, model_name, input_layer_class):
        """The nodes the outputs depend on, the inputs' own nodes included, each after those
        feeding it: by decreasing depth (an output's node has depth 0; a node's depth exceeds
        every reader's), ties in the order a depth-first walk finishes them (Keras' order).
        Returns the nodes to run (all but the inputs'); all_nodes keeps every one."""
        inputs = {id(t) for t in self.inputs}
        order, depth, state = [], {}, {}

        def visit(tensor, path_output):
            node = tensor.node
            if id(tensor) not in inputs and (node is None or isinstance(node.layer,
                                                                       input_layer_class)):
                listed = ", ".join(f'"{t.name}" {shape_str(t.shape)}' for t in self.inputs)
                raise ValueError(
                    f'Model "{model_name}": output "{path_output.name}" cannot be computed from '
                    f'the inputs given: it depends on input "{tensor.name}" '
                    f"{shape_str(tensor.shape)}, which is not among inputs=[{listed}]")
            if state.get(id(node)) == "done":
                return
            state[id(node)] = "open"
            if id(tensor) not in inputs:
                for t in node.inputs:
                    visit(t, path_output)
            state[id(node)] = "done"
            order.append(node)

        for t in self.outputs:
            visit(t, t)
        for t in self.inputs:  # an input no output depends on still has its place
            if state.get(id(t.node)) != "done":
                state[id(t.node)] = "done"
                order.append(t.node)
        index = {id(node): i for i, node in enumerate(order)}
        input_nodes = {id(t.node) for t in self.inputs}
        for node in reversed(order):  # readers come later in `order`, so their depth is known
            depth.setdefault(id(node), 0)
            if id(node) in input_nodes:
                continue
            for parent in node.parents:
                if id(parent) in index:
                    depth[id(parent)] = max(depth.get(id(parent), 0), depth[id(node)] + 1)
        self.all_nodes = sorted(order, key=lambda node: (-depth[id(node)], index[id(node)]))
        return [node for node in self.all_nodes if id(node) not in input_nodes]

    @property
    def layers(self):
        """Each layer once, in the order of its first node, input layers included (Keras'
        Functional.layers)."""
        seen, layers = set(), []
        for node in self.all_nodes:
            if id(node.layer) not in seen:
                seen.add(id(node.layer))
                layers.append(node.layer)
        return layers

    # ---------------------------------------------------------------- running
    def new_state(self, layer, reuse=False):
        return GraphState(self, layer, reuse)

    def configure(self, gs, input_needs, training):
        """Which steps compute an input gradient: those reading a tensor whose gradient
        matters, a tensor that depends on trainable weights or on an input that needs one."""
        needs = [False] * self.tensor_count
        for number, need in zip(self.input_numbers, input_needs):
            needs[number] = need
        for step, child in zip(self.steps, gs.children):
            in_needs = [needs[n] for n in step.inputs]
            child.need_dx = any(in_needs)
            train = training if step.training is None else step.training
            if step.is_model:
                step.layer._configure(child, in_needs, train)
            out_need = child.need_dx or bool(step.layer.trainable_weights)
            for n in step.outputs:
                needs[n] = out_need

    def forward(self, gs, inputs, training):
        """inputs: one array per graph input; returns one array per output. An inference pass
        runs each BatchNormalization of self.folds inside the layer before it
        (engine/folding.py)."""
        values, steps = gs.values, self.steps
        for number, x in zip(self.input_numbers, inputs):
            values[number] = x
        gs.activity_loss = 0.0  # the activity regularizers' penalties of this pass
        folds = self.folds if not training and folding.ENABLED else {}
        folded = set() if folds else ()  # the BatchNormalization steps run inside their producer
        fusions = self.fusions if fusion.ENABLED else {}
        fused = gs.fused_relus  # the ReLU steps run inside their producer in this pass
        fused.clear()
        for i in self.folded_order if folds else range(len(steps)):
            if i in folded or i in fused:
                continue
            step, child = steps[i], gs.children[i]
            x = [values[n] for n in step.inputs] if step.packed else values[step.inputs[0]]
            fold = folds.get(i)
            if fold is not None:
                j, k, res = fold
                relu = k is not None or (res is not None and res[1] is not None)
                y = folding.folded_forward(step.layer, steps[j].layer, child, x, relu,
                                           None if res is None else values[res[2]])
                if y is not None:
                    # The producer's and BatchNormalization's outputs are never read (a fold
                    # needs them read once, by the next folded step): they name the result.
                    values[step.outputs[0]] = values[steps[j].outputs[0]] = y
                    folded.add(j)
                    # So do the ReLU's, or the residual Add's and its ReLU's.
                    for after in (k,) if res is None else res[:2]:
                        if after is not None:
                            values[steps[after].outputs[0]] = y
                            folded.add(after)
                    continue
            relu = fusions.get(i)
            child.fused_relu = relu is not None
            y = step.layer.forward(child, x, training if step.training is None else step.training)
            if step.is_model:
                gs.activity_loss += child.active.activity_loss
            elif step.layer.activity_regularizer is not None:
                gs.activity_loss += activity_penalty(step.layer.activity_regularizer, child, y)
            if step.single_output:
                values[step.outputs[0]] = y
                if relu is not None:  # y is already max(., 0): it is the ReLU step's output
                    values[steps[relu].outputs[0]] = y
                    fused.add(relu)
            else:
                for n, v in zip(step.outputs, y):
                    values[n] = v
        return [values[n] for n in self.output_numbers]

    def backward(self, gs, output_grads, logits=None, training=True):
        """output_grads: one array per output (None: no loss reads it); logits[i] True when
        output_grads[i] is the gradient with respect to the logits of output i's final
        softmax. Returns the gradient of each input (None where none is needed)."""
        grads, owned = gs.gradients, gs.owned
        for i in range(self.tensor_count):
            grads[i] = None
            owned[i] = False
        from_logits = set()
        for i, (number, grad) in enumerate(zip(self.output_numbers, output_grads)):
            if logits is not None and logits[i]:
                from_logits.add(number)
            self._add(gs, number, grad)
        add = self._add
        fused, children = gs.fused_relus, gs.children
        # after_step(i): step i's backward is done (distributed training starts summing the
        # gradients it finished over the ranks: distribute/gradient_buckets.py)
        after_step = gs.after_step
        last = len(self.steps) - 1
        for i in range(last, -1, -1):
            if after_step is not None and i < last:
                after_step(i + 1)
            step, child = self.steps[i], children[i]
            if i in fused:
                # Ran inside its producer, which masks the gradient itself: the gradient of the
                # ReLU's output is the gradient the producer receives (it is the only reader).
                dy = grads[step.outputs[0]]
                if dy is not None and child.need_dx:
                    add(gs, step.inputs[0], dy)
                continue
            if step.single_output:
                dy = grads[step.outputs[0]]
                if not step.is_model and step.layer.activity_regularizer is not None:
                    dy = with_activity_gradient(step.layer.activity_regularizer, child,
                                                gs.values[step.outputs[0]], dy)
                if dy is None:
                    _no_gradient(step, child, training)
                    continue
                if step.is_model:
                    dx = step.layer.backward(child, dy, [step.outputs[0] in from_logits])
                elif step.outputs[0] in from_logits:
                    dx = step.layer.backward_from_logits(child, dy)
                else:
                    dx = step.layer.backward(child, dy)
            else:  # a nested model of several outputs
                douts = [grads[n] for n in step.outputs]
                if all(d is None for d in douts):
                    _no_gradient(step, child, training)
                    continue
                dx = step.layer.backward(child, douts, [n in from_logits for n in step.outputs])
            if dx is None or not child.need_dx:
                continue
            if step.packed:
                for number, g in zip(step.inputs, dx):
                    add(gs, number, g)
            else:
                add(gs, step.inputs[0], dx)
        if after_step is not None and self.steps:
            after_step(0)
        return [grads[n] for n in self.input_numbers]

    def _add(self, gs, number, grad):
        if grad is None:
            return
        grads = gs.gradients
        current = grads[number]
        if current is None:
            grads[number] = grad
        elif gs.owned[number]:
            _sum_into(current, grad, current)
        else:
            grads[number] = _sum_into(current, grad, gs.sum_buffer(number, current.shape))
            gs.owned[number] = True

    def leaf_states(self, gs, training):
        """(layer, CallState) of every layer that holds weights, nested models included."""
        for step, child in zip(self.steps, gs.children):
            if step.is_model:
                train = training if step.training is None else step.training
                yield from step.layer._leaf_states(child, train)
            elif step.layer.weights:
                yield step.layer, child


def _sum_into(a, b, out):
    """out = a + b (out may be a): the add kernel (multi-threaded; numpy's add is not, and a
    ResNet's residual gradients are sums of whole activations), numpy for anything else."""
    if (out is not None and a.shape == b.shape == out.shape
            and all(kernel_ready(x) for x in (a, b, out)) and not np.may_share_memory(out, b)
            and (out is a or not np.may_share_memory(out, a))):
        return _core.add_forward(a, b, out=out)
    return np.add(a, b, out=out)


def activity_penalty(regularizer, call, y):
    """A layer's activity penalty on its output y, divided by the batch size as in Keras."""
    scratch = call.buffers(y.shape)("activity_scratch", y.shape)
    value = regularizer.penalty(y, scratch)
    return value / len(y) if y.ndim else value


def with_activity_gradient(regularizer, call, y, dy):
    """dy plus the gradient of the activity penalty, in a buffer of the call's (dy itself may
    be shared: a merge layer hands one array to several inputs). dy None: the penalty's alone."""
    buffers = call.buffers(y.shape)
    total = buffers("activity_grad", y.shape)
    if total is None:
        total = np.empty(y.shape, np.float32)
    if dy is None:
        total.fill(0)
    else:
        np.copyto(total, dy)
    scratch = buffers("activity_scratch", y.shape)
    regularizer.add_gradient(y, total, 1.0 / len(y) if y.ndim else 1.0,
                             np.empty_like(total) if scratch is None else scratch)
    return total


def _no_gradient(step, child, training):
    """A node whose outputs no loss reads: its weights get zero gradients this step."""
    if not step.is_model:
        child.grads = [np.zeros_like(w) for w in step.layer._trainable_variables]
        return
    for layer, call in step.layer._leaf_states(child, training):
        call.grads = [np.zeros_like(w) for w in layer._trainable_variables]
