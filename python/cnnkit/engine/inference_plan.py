"""Inference plans: predict runs a model's whole inference pass as one C++ call, depth-first.

Why: a layer-by-layer pass over a batch writes every activation to memory and reads it back in
the next layer (ResNet-20's first stage, 4 MB an activation at batch 64, ran its kernels at
~58 GFLOP/s against ~74 with the data in cache on the 2-core AVX2 Zen 3 VM), and runs the
layers' Python between kernels. A plan (cpp/inference_plan.h) runs every layer on a few images at
a time instead, whose activations then stay in L2, shares these passes among the threads (each
one's kernels on it alone), and transforms the Winograd kernels once per call, not per pass.
`python bench/inference_plan.py` measures it against the layer-by-layer pass.

What runs in a plan: a model of one input and one output (a float32 image or feature tensor of
known size) whose every layer is one of these, of cnnkit's own class (exact type, a subclass
may compute something else) and called without training=True: Conv2D (ungrouped, linear or ReLU)
with the BatchNormalization folded into it at inference (engine/folding.py) and a ResNet
block's Add and ReLU fused, DepthwiseConv2D (linear or ReLU, its BatchNormalization folded), Dense (linear, ReLU or softmax, on (N, features)), Add of two
same-shape inputs, ReLU and Activation (relu, softmax, linear), MaxPooling2D,
GlobalAveragePooling2D, and the layers that pass their input on at inference (Dropout, its
relatives, Flatten). Any other model runs layer by layer, as before: `plan_for` says why.

The weights are read on every call, the BatchNormalizations folded then (as the layer-by-layer
pass does): nothing goes stale after fit, set_weights or load_weights. Every op computes each
image's values as the layer-by-layer pass does, so the outputs are the same bit for bit (the
tests check it).
"""
import numpy as np

from .. import _core
from . import folding

__all__ = ["ENABLED", "PASS_BYTES", "Unsupported", "plan_for", "plan_predict", "pass_images",
           "whole_from"]

# Set to False to run every predict layer by layer (the tests compare both ways).
ENABLED = True
# A pass's largest activation (its images') within this many bytes: see pass_images.
PASS_BYTES = 1 << 19


class Unsupported(ValueError):
    """The model has a layer, a call or a shape an inference plan does not run."""


def pass_images(plan, n, threads):
    """Images a pass: as many as keep its largest activation within PASS_BYTES (ResNet-20's
    32x32x16 at 8 images: measured by bench/inference_plan.py), at least 1, and no more than
    leave every thread a pass when the batch is small."""
    per_image = 4 * plan.largest_floats
    images = max(1, PASS_BYTES // per_image)
    if threads > 1:
        images = min(images, max(1, -(-n // threads)))
    return max(1, min(images, n))


class Plan:
    """A model graph's inference pass as a _core.InferencePlan, and how to gather its weights
    for a call."""

    def __init__(self, graph):
        builder = _Builder(graph)
        self.largest_floats = max(builder.floats)
        self.core = _core.InferencePlan(builder.floats, builder.input, builder.output, builder.ops,
                                        whole_from(builder.ops,
                                                   PASS_BYTES // (4 * self.largest_floats)))
        self.sources = builder.sources
        self.input_shape = builder.input_shape
        self.output_shape = builder.output_shape

    def weights(self):
        return [None if source is None else source() for source in self.sources]

    def run(self, x, threads):
        n = len(x)
        out = np.empty((n,) + self.output_shape, np.float32)
        self.core.run(x, self.weights(), pass_images(self, n, threads), out=out.reshape(n, -1))
        return out


# An op with more weights than this (floats: 128 KB, a quarter of a Zen 3 core's L2) that does
# fewer than WHOLE_MIN_USES multiply-adds per weight in a pass starts the plan's whole-batch part.
WHOLE_MIN_WEIGHTS = 1 << 15
WHOLE_MIN_USES = 64


def whole_from(ops, images):
    """The first op of a plan to run on the whole batch: the first whose kernel is large and
    used little in a pass of `images` images (each weight once per output position of each
    image: a Dense layer's once an image), where reading the kernel for every pass costs more
    than the pass saves. Keras' CIFAR-10 example CNN (a Dense of 512 on 2,304 features) ran 2x
    slower in passes of 4 images than layer by layer before this rule (a scratch script, 1 and
    2 threads); len(ops) when no op is such."""
    for i, (kind, _, _, _, window, oc, features, _) in enumerate(ops):
        if kind == "conv":
            weights, positions = window[3] * window[4] * window[2] * oc, window[9] * window[10]
        elif kind == "depthwise":
            weights, positions = window[3] * window[4] * oc, window[9] * window[10]
        elif kind == "dense":
            weights, positions = features * oc, 1
        else:
            continue
        if weights > WHOLE_MIN_WEIGHTS and max(1, images) * positions < WHOLE_MIN_USES:
            return i
    return len(ops)


def _exact(layer, *names):
    """Whether type(layer) is exactly one of cnnkit's layer classes of these names."""
    from .. import layers
    return any(type(layer) is getattr(layers, name, None) for name in names)


class _Builder:
    """Turns a graph's folded inference order into plan ops: (kind, in, in2, out, window, oc,
    features, relu), tensors numbered as the plan's (an identity layer's output is its input's
    tensor), and per op where its weights come from."""

    def __init__(self, graph):
        if len(graph.inputs) != 1 or len(graph.outputs) != 1:
            raise Unsupported("a plan runs models of one input and one output")
        self.graph = graph
        self.shapes = {}  # graph tensor number -> its per-sample shape
        steps = graph.steps
        for step in steps:
            for number, t in zip(step.outputs, step.node.outputs):
                self.shapes[number] = tuple(t.shape[1:])
        (number,) = graph.input_numbers
        self.input_shape = tuple(graph.inputs[0].shape[1:])
        self.shapes[number] = self.input_shape
        self.plan_of = {}  # graph tensor number -> plan tensor
        self.floats, self.ops, self.sources = [], [], []
        self.input = self._tensor(number)
        folds = graph.folds if folding.ENABLED else {}
        done = set()
        for i in graph.folded_order if folds else range(len(steps)):
            if i in done:
                continue
            done.update(self._step(i, folds.get(i)))
        (out_number,) = graph.output_numbers
        if out_number not in self.plan_of:
            raise Unsupported("the model's output is not computed by its steps")
        self.output = self.plan_of[out_number]
        self.output_shape = self.shapes[out_number]
        if self.output == self.input:
            raise Unsupported("the model computes nothing")

    # ---------------------------------------------------------------- tensors
    def _tensor(self, number, alias=None):
        """The plan tensor of graph tensor `number`: alias's (a layer passing its input on) or a
        new one of the number's size."""
        if alias is not None:
            self.plan_of[number] = alias
            return alias
        shape = self.shapes[number]
        if any(d is None for d in shape) or not shape:
            raise Unsupported(f"tensor shape {shape} is not fully known")
        self.floats.append(int(np.prod(shape)))
        self.plan_of[number] = len(self.floats) - 1
        return self.plan_of[number]

    def _op(self, kind, inp, out_number, *, in2=-1, window=None, oc=0, features=0, relu=False,
            source=None):
        out = self._tensor(out_number)
        self.ops.append((kind, inp, in2, out, window, oc, features, relu))
        self.sources.append(source)
        return out

    def _input(self, number):
        if number not in self.plan_of:
            raise Unsupported("a step reads a tensor no earlier step made")
        return self.plan_of[number]

    # ---------------------------------------------------------------- steps
    def _step(self, i, fold):
        """Adds step i's op(s); returns the steps it consumed besides i (folded ones)."""
        step = self.graph.steps[i]
        layer = step.layer
        name = f'layer "{layer.name}" ({type(layer).__name__})'
        if step.is_model or not step.single_output:
            raise Unsupported(f"{name}: nested models and layers of several outputs run layer by layer")
        if step.training is True:
            raise Unsupported(f"{name} is called with training=True")
        if getattr(layer, "activity_regularizer", None) is not None:
            raise Unsupported(f"{name} has an activity regularizer")
        (out_number,) = step.outputs
        if _exact(layer, "Add"):
            if len(step.inputs) != 2 or self.shapes[step.inputs[0]] != self.shapes[step.inputs[1]]:
                raise Unsupported(f"{name}: only sums of two same-shape inputs")
            relu_step = self.graph.fusions.get(i)
            a, b = (self._input(n) for n in step.inputs)
            out = self._op("add", a, out_number, in2=b, relu=relu_step is not None)
            if relu_step is not None:
                self._tensor(self.graph.steps[relu_step].outputs[0], alias=out)
                return {relu_step}
            return set()
        if step.packed or len(step.inputs) != 1:
            raise Unsupported(f"{name} takes several inputs")
        x = self._input(step.inputs[0])
        in_shape = self.shapes[step.inputs[0]]
        if _exact(layer, "Conv2D", "DepthwiseConv2D"):
            return self._conv(step, layer, name, x, in_shape, fold)
        if _exact(layer, "Dense"):
            return self._dense(step, layer, name, x, in_shape, fold)
        if _exact(layer, "Activation", "ReLU"):
            if folding._plain_relu(layer):
                self._op("relu", x, out_number)
            elif _exact(layer, "Activation") and layer.activation == "softmax":
                self._op("softmax", x, out_number, features=in_shape[-1])
            elif _exact(layer, "Activation") and layer.activation == "linear":
                self._tensor(out_number, alias=x)
            else:
                raise Unsupported(f"{name}: activation {getattr(layer, 'activation', '?')!r}")
            return set()
        if _exact(layer, "MaxPooling2D"):
            g = layer._window((1,) + in_shape)
            self._op("max_pool", x, out_number, window=_window13(g, in_shape))
            return set()
        if _exact(layer, "GlobalAveragePooling2D"):
            self._op("global_avg_pool", x, out_number, features=in_shape[-1])
            return set()
        if _exact(layer, "Dropout", "SpatialDropout2D", "GaussianNoise", "Flatten"):
            self._tensor(out_number, alias=x)  # the input itself at inference, or a view of it
            return set()
        raise Unsupported(f"{name} has no inference-plan op")

    def _conv(self, step, layer, name, x, in_shape, fold):
        depthwise = _exact(layer, "DepthwiseConv2D")
        if (len(in_shape) != 3 or (not depthwise and layer.groups != 1)
                or layer.activation not in ("linear", "relu")):
            raise Unsupported(f"{name}: only ungrouped 2-D convolutions, linear or ReLU")
        kind = "depthwise" if depthwise else "conv"
        g = layer._window((1,) + in_shape)
        window = _window13(g, in_shape)
        oc = in_shape[2] * layer.depth_multiplier if depthwise else layer.filters
        if fold is None:
            self._op(kind, x, step.outputs[0], window=window, oc=oc,
                     relu=layer.activation == "relu", source=lambda: (layer.kernel, layer.bias))
            return set()
        j, k, residual = fold
        steps = self.graph.steps
        consumed, relu, in2 = {j}, k is not None, -1
        out_number = steps[j].outputs[0]
        if k is not None:
            consumed.add(k)
            out_number = steps[k].outputs[0]
        if residual is not None:  # a Conv2D's only (folding._residual_add)
            add, add_relu, other = residual
            if other not in self.plan_of or self.shapes[other] != self.shapes[steps[add].outputs[0]]:
                raise Unsupported(f"{name}: its residual is not ready or not its output's shape")
            in2 = self.plan_of[other]
            consumed.add(add)
            out_number = steps[add].outputs[0]
            if add_relu is not None:
                consumed.add(add_relu)
                relu = True
                out_number = steps[add_relu].outputs[0]
        out = self._op(kind, x, out_number, in2=in2, window=window, oc=oc, relu=relu,
                       source=_folded_source(layer, steps[j].layer))
        # The producer's and the BatchNormalization's own outputs, never read elsewhere (a fold
        # needs that), name the same values.
        for number in (step.outputs[0], steps[j].outputs[0]):
            self.plan_of.setdefault(number, out)
        return consumed

    def _dense(self, step, layer, name, x, in_shape, fold):
        if len(in_shape) != 1 or layer.activation not in ("linear", "relu", "softmax"):
            raise Unsupported(f"{name}: only Dense on (N, features), linear, ReLU or softmax")
        units = self.shapes[step.outputs[0]][-1]
        if fold is not None:
            j, k, _ = fold
            steps = self.graph.steps
            out_number = steps[k].outputs[0] if k is not None else steps[j].outputs[0]
            self._op("dense", x, out_number, oc=units, features=in_shape[0], relu=k is not None,
                     source=_folded_source(layer, steps[j].layer))
            self.plan_of.setdefault(step.outputs[0], self.plan_of[out_number])
            return {j} | ({k} if k is not None else set())
        relu = layer.activation == "relu"
        source = lambda: (layer.kernel, layer.bias)  # noqa: E731
        if layer.activation == "softmax":
            self.shapes[("z", step.outputs[0])] = (units,)
            z = self._op("dense", x, ("z", step.outputs[0]), oc=units, features=in_shape[0],
                         source=source)
            self._op("softmax", z, step.outputs[0], features=units)
        else:
            self._op("dense", x, step.outputs[0], oc=units, features=in_shape[0], relu=relu,
                     source=source)
        return set()


def _window13(g, in_shape):
    h, w, c = in_shape
    return (h, w, c, g.KH, g.KW, g.SH, g.SW, g.PT, g.PL, g.OH, g.OW,
            getattr(g, "DH", 1), getattr(g, "DW", 1))


def _folded_source(producer, bn):
    """A call's weights of producer with bn folded in (folding.folded_weights), into arrays of
    the plan's own, made once."""
    channels = len(bn.moving_mean)
    buffers = (np.empty(producer.kernel.shape, np.float32), np.empty((channels,), np.float32),
               np.empty((channels,), np.float32))
    return lambda: folding.folded_weights(producer, bn, *buffers)


def plan_for(graph):
    """The graph's Plan, or raises Unsupported saying which layer keeps it layer by layer."""
    return Plan(graph)


def plan_predict(model, state, xs):
    """The model's output on xs from its inference plan (a new array); None when the batch runs
    layer by layer (plans off, a model a plan does not run, an input other than the model's
    float32 shape, or the state's first pass, which builds the layers)."""
    if not ENABLED or len(xs) != 1:
        return None
    plan = getattr(state, "inference_plan", None)
    if plan is None:
        if not getattr(state, "ran", False):
            return None
        try:
            plan = state.inference_plan = plan_for(model._graph_for(False))
        except Unsupported:
            plan = state.inference_plan = False
    if plan is False:
        return None
    x = xs[0]
    if (x.dtype != np.float32 or x.shape[1:] != plan.input_shape or not x.flags.c_contiguous
            or len(x) == 0):
        return None
    return [plan.run(x, _core.get_num_threads())]
