"""Keras 3's merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum and Concatenate,
with their function forms (add([a, b]) is Add()([a, b])).

Each takes a list of tensors (takes_list) and gives one. One base, Merge, holds the shape rules,
the pairwise fold of the forward pass and the reduction of broadcast gradients, so that each
layer only names its operation and the gradient of that operation, as Keras' Merge leaves each
layer one function.

Shapes (Keras 3's rules; batch axis first in every shape):
- one input or more, as in Keras 3 (a single input comes out as a copy); Subtract exactly two;
- batch sizes must agree (None agrees with any): the batch axis is never broadcast;
- the other axes broadcast as NumPy's do, aligned from the right: a size 1 takes the other size,
  and an input of lower rank gets size-1 axes after its batch axis (Keras expands it at axis 1);
- an open size (None) on an axis makes that axis of the output None, as in Keras; two known sizes
  that differ (neither 1) are an error wherever they come in the list.
Concatenate: inputs of one rank, with equal sizes (None matches any) on every axis but `axis`.

Workspaces: forward and backward write into the call's buffers (call.buffers), so that a warm
training step allocates no array; a gradient that needs no work is dy itself (or a view of it).
"""
import numpy as np

from .. import _core
from .._args import kernel_ready, shape_str
from .base import Layer

__all__ = ["Merge", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
           "Concatenate", "add", "subtract", "multiply", "average", "maximum", "minimum",
           "concatenate"]


def _new(buffers, name, shape, dtype=np.float32):
    """buffers(name, shape), or a new array when the call reuses none (NO_BUFFERS gives None):
    the kernels below then always have an `out` of the full output shape."""
    out = buffers(name, shape, dtype)
    return np.empty(shape, dtype) if out is None else out


def _is_size(d):
    return d is None or (isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_))
                         and d >= 0)


class Merge(Layer):
    """The base of the merge layers: an element-wise operation `_ufunc` folded over the inputs
    left to right, as Keras folds them, and its gradient `_grads`."""
    takes_list = True
    n_inputs = None   # the exact number of inputs a layer takes (Subtract: 2); None: 1 or more
    _ufunc = None

    # ------------------------------------------------------------ shapes
    def _error(self, what, shapes):
        shapes = "[" + ", ".join(shape_str(s) for s in shapes) + "]"
        raise ValueError(f'Layer "{self.name}" ({type(self).__name__}) {what}. '
                         f"Received: input_shape={shapes}")

    def _shape_list(self, input_shape):
        """input_shape as a list of tuples, checked: a merge layer takes a list of shapes."""
        who = f'Layer "{self.name}" ({type(self).__name__})'
        if (not isinstance(input_shape, (list, tuple))
                or not all(isinstance(s, (list, tuple)) for s in input_shape)):
            raise ValueError(f"{who} should be called on a list of inputs. Received: "
                             f"input_shape={input_shape!r} (not a list of shapes)")
        shapes = [tuple(s) for s in input_shape]
        if not shapes:
            raise ValueError(f"{who} should be called on a list of at least 1 input. "
                             "Received 0 inputs")
        if self.n_inputs is not None and len(shapes) != self.n_inputs:
            self._error(f"should be called on exactly {self.n_inputs} inputs, got {len(shapes)}",
                        shapes)
        if not all(s and all(_is_size(d) for d in s) for s in shapes):
            self._error("takes shapes with the batch axis first, of sizes that are integers or "
                        "None", shapes)
        return shapes

    def build(self, input_shape):
        """Checks that the shapes merge (the errors name this layer and every shape)."""
        shapes = self._shape_list(input_shape)
        self.compute_output_shape(shapes)
        super().build(shapes)

    def compute_output_shape(self, input_shape):
        shapes = self._shape_list(input_shape)
        batch = {s[0] for s in shapes} - {None}
        if len(batch) > 1:
            self._error("cannot merge tensors with different batch sizes", shapes)
        ndim = max(map(len, shapes))
        out = [batch.pop() if batch else None]
        for k in range(1 - ndim, 0):  # aligned from the right, the batch axes left out
            sizes = [s[k] for s in shapes if len(s) + k >= 1]
            known = {d for d in sizes if d is not None and d != 1}
            if len(known) > 1:
                self._error(f"received inputs of incompatible shapes (sizes {sorted(known)} on "
                            f"axis {k})", shapes)
            out.append(None if None in sizes else known.pop() if known else 1)
        return tuple(out)

    # ------------------------------------------------------------ running
    def _prepare(self, call, inputs):
        """Checks the inputs' shapes (once per new set of shapes) and takes this call's buffers;
        returns the output shape."""
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f'Layer "{self.name}" ({type(self).__name__}) should be called on a '
                             f"list of inputs, got {type(inputs).__name__}")
        shapes = [x.shape for x in inputs]
        if shapes != getattr(call, "shapes", None):
            call.out_shape = self.compute_output_shape(shapes)
            call.shapes = shapes
        call.buf = call.buffers(call.out_shape)
        return call.out_shape

    def forward(self, call, inputs, training=False):
        shape = self._prepare(call, inputs)
        ndim = len(shape)
        # An input of lower rank gets size-1 axes after its batch axis (views, no copies).
        xs = [x if x.ndim == ndim else x.reshape(x.shape[:1] + (1,) * (ndim - x.ndim) + x.shape[1:])
              for x in inputs]
        call.xs = xs
        call.y = self._merge(xs, _new(call.buf, "y", shape))
        return call.y

    def _merge(self, xs, out):
        """The inputs folded pairwise, left to right, into `out` (full output shape)."""
        if len(xs) == 1:
            np.copyto(out, xs[0])
            return out
        self._ufunc(xs[0], xs[1], out=out)
        for x in xs[2:]:
            self._ufunc(out, x, out=out)
        return out

    def backward(self, call, dy):
        if not call.need_dx:
            return None
        return [self._reduce(call, i, g) for i, g in enumerate(self._grads(call, dy))]

    def _grads(self, call, dy):
        """The gradient for each input, of the output's shape (before any broadcast is undone)."""
        raise NotImplementedError

    def _reduce(self, call, i, g):
        """Input i's gradient: g summed over the axes input i was broadcast along, in its shape."""
        padded = call.xs[i].shape
        axes = tuple(k for k, (p, o) in enumerate(zip(padded, g.shape)) if p == 1 and o != 1)
        if axes:
            g = np.sum(g, axis=axes, keepdims=True, out=_new(call.buf, f"dx{i}", padded))
        shape = call.shapes[i]
        return g if g.shape == shape else g.reshape(shape)


def _grads_to_winners(self, call, dy):
    """Maximum's and Minimum's gradient: dy goes to the input holding the output's value, 0 to
    the others; on a tie, only to the first input holding it (Keras folds the inputs pairwise,
    and the pair's gradient then goes to its first argument, as TensorFlow's does), so that the
    gradients always add up to dy."""
    taken = _new(call.buf, "taken", dy.shape, bool)
    hit = _new(call.buf, "hit", dy.shape, bool)
    grads = []
    for i, x in enumerate(call.xs):
        np.equal(x, call.y, out=hit)
        if i:
            np.greater(hit, taken, out=hit)  # holds the value and no input before it does
            np.logical_or(taken, hit, out=taken)
        else:
            np.copyto(taken, hit)
        grads.append(np.multiply(dy, hit, out=_new(call.buf, f"g{i}", dy.shape)))
    return grads


class Add(Merge):
    """Adds a list of inputs element-wise: y = x0 + x1 + ... Each input's gradient is dy.

    With a fused ReLU (call.fused_relu, set by a model graph when a plain ReLU is the only
    reader: engine/fusion.py) y = max(sum, 0), and dy, the gradient after
    the ReLU, is masked where y <= 0 once, into a buffer of the call, for every input."""
    _ufunc = np.add

    def forward(self, call, inputs, training=False):
        if (len(inputs) == 2 and inputs[0].shape == inputs[1].shape
                and all(kernel_ready(x) for x in inputs)):
            # A ResNet block's sum: one multi-threaded pass, the fused ReLU in it (numpy's add is
            # single-threaded, and a ReLU pass after it reads and writes the output again).
            shape = self._prepare(call, inputs)
            call.xs = list(inputs)
            call.y = _core.add_forward(inputs[0], inputs[1], relu=bool(call.fused_relu),
                                       out=_new(call.buf, "y", shape))
            return call.y
        y = super().forward(call, inputs, training)
        if call.fused_relu:
            # The relu kernel (OpenMP, NaN passes) into a second buffer: np.maximum in place is
            # single-threaded and about 3x slower on a ResNet activation.
            call.y = y = _core.relu_forward(y, out=_new(call.buf, "relu_y", y.shape))
        return y

    def _grads(self, call, dy):
        if call.fused_relu:
            # A select, as relu_backward: one array handed to every input; nothing writes into it
            # (the graph adds other gradients into buffers of its own).
            dy = _core.relu_backward(dy, call.y, out=_new(call.buf, "relu_dy", dy.shape))
        return [dy] * len(call.xs)


class Subtract(Merge):
    """Subtracts two inputs element-wise: y = x0 - x1 (exactly two inputs, as in Keras)."""
    n_inputs = 2
    _ufunc = np.subtract

    def _grads(self, call, dy):
        return [dy, np.negative(dy, out=_new(call.buf, "g1", dy.shape))]


class Multiply(Merge):
    """Multiplies a list of inputs element-wise. Input i's gradient is dy times the product of
    the other inputs (no division, so that zeros are exact)."""
    _ufunc = np.multiply

    def _grads(self, call, dy):
        xs = call.xs
        if len(xs) == 1:
            return [dy]
        grads = []
        for i in range(len(xs)):
            others = xs[:i] + xs[i + 1:]
            g = np.multiply(dy, others[0], out=_new(call.buf, f"g{i}", dy.shape))
            for x in others[1:]:
                np.multiply(g, x, out=g)
            grads.append(g)
        return grads


class Average(Merge):
    """Averages a list of inputs element-wise: the sum divided by the number of inputs (as
    Keras computes it). Each input's gradient is dy / n."""
    _ufunc = np.add

    def _merge(self, xs, out):
        return np.divide(super()._merge(xs, out), len(xs), out=out)

    def _grads(self, call, dy):
        g = np.divide(dy, len(call.xs), out=_new(call.buf, "g", dy.shape))
        return [g] * len(call.xs)


class Maximum(Merge):
    """The element-wise maximum of a list of inputs. The gradient goes to the input holding the
    maximum; on a tie, to the first input holding it."""
    _ufunc = np.maximum
    _grads = _grads_to_winners


class Minimum(Merge):
    """The element-wise minimum of a list of inputs. The gradient goes to the input holding the
    minimum; on a tie, to the first input holding it."""
    _ufunc = np.minimum
    _grads = _grads_to_winners


class Concatenate(Merge):
    """Concatenates a list of inputs along `axis` (negative counts from the end; 0, the batch
    axis, is allowed as Keras allows it). The inputs have one rank and equal sizes on the other
    axes (None matches any). The gradient of each input is its slice of dy, copied."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(axis, (int, np.integer)) or isinstance(axis, (bool, np.bool_)):
            raise TypeError(f'Layer "{self.name}" (Concatenate): `axis` must be an integer. '
                            f"Received: axis={axis!r}")
        self.axis = int(axis)

    def compute_output_shape(self, input_shape):
        shapes = self._shape_list(input_shape)
        rank = len(shapes[0])
        mismatch = ("requires inputs with matching shapes except for the concatenation axis "
                    f"(axis={self.axis})")
        if any(len(s) != rank for s in shapes):
            self._error(mismatch, shapes)
        if not -rank <= self.axis < rank:
            self._error(f"cannot concatenate along axis={self.axis}: its inputs have rank {rank}",
                        shapes)
        axis = self.axis % rank
        if any(len({s[k] for s in shapes} - {None}) > 1 for k in range(rank) if k != axis):
            self._error(mismatch, shapes)
        out = list(shapes[0])  # Keras takes the other axes from the first input
        sizes = [s[axis] for s in shapes]
        out[axis] = None if None in sizes else sum(sizes)
        return tuple(out)

    def forward(self, call, inputs, training=False):
        shape = self._prepare(call, inputs)
        return np.concatenate(inputs, axis=self.axis, out=_new(call.buf, "y", shape))

    def backward(self, call, dy):
        if not call.need_dx:
            return None
        if len(call.shapes) == 1:
            return [dy]
        axis = self.axis % dy.ndim
        grads, start = [], 0
        for i, shape in enumerate(call.shapes):
            g = _new(call.buf, f"dx{i}", shape)
            np.copyto(g, dy[(slice(None),) * axis + (slice(start, start + shape[axis]),)])
            grads.append(g)
            start += shape[axis]
        return grads

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def add(inputs, **kwargs):
    """Functional interface to the Add layer."""
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    """Functional interface to the Subtract layer."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    """Functional interface to the Multiply layer."""
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    """Functional interface to the Average layer."""
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    """Functional interface to the Maximum layer."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    """Functional interface to the Minimum layer."""
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    """Functional interface to the Concatenate layer."""
    return Concatenate(axis=axis, **kwargs)(inputs)
