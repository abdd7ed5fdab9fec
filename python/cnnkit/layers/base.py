"""Layer: the base of every cnnkit layer, with Keras' surface (names, build, call, weights,
configs) and a forward/backward pair for training.

A layer's contract:
  build(input_shape)       makes the weights; shapes include the batch axis as None.
  forward(x, training)     x is C-contiguous float32 (the model guarantees it); keeps what
                           backward needs and returns the output.
  backward(dy)             returns dx and sets self.grads, aligned with self.weights.
  compute_output_shape(s)  the output shape for input shape s (None for unknown sizes).
layer(x, training=False) checks and converts x, builds on first use, and runs forward.

Workspaces: during a training step, evaluate and predict, the model turns them on
(_set_workspaces) and a layer writes the arrays it makes into buffers it keeps, one set per
input shape (the two most recent), so that a warm step allocates no array. The buffers are
overwritten by the next step: nothing that outlives a step may point into them, which is why
they are off for a direct layer(x) or model(x) call, whose result belongs to the caller.

Threads: a layer keeps state between calls (its workspaces, what backward needs), so each
layer has a lock, and a call or a model's step holds the locks of every layer it runs
(_exclusive). The kernels release the GIL, so other Python threads go on meanwhile; two
threads calling predict on one model take turns batch by batch, and each gets the answers it
would get alone. Models that share layers (an autoencoder and its encoder) share their locks.
"""
import contextlib
import re
import threading

import numpy as np

from .._args import c_array, shape_str

__all__ = ["Layer", "RandomLayer", "shape_str", "Buffers", "Workspaces", "NO_BUFFERS"]

_REGISTRY = {}   # class name -> class, for from_config; every subclass registers itself
_NAME_COUNTS = {}


def _snake_case(name):
    name = re.sub("(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(base):
    """'conv2d', then 'conv2d_1', 'conv2d_2', ... as Keras names layers."""
    count = _NAME_COUNTS.get(base, 0)
    _NAME_COUNTS[base] = count + 1
    return base if count == 0 else f"{base}_{count}"


def get_layer_class(class_name, custom_objects=None):
    cls = (custom_objects or {}).get(class_name) or _REGISTRY.get(class_name)
    if cls is None:
        raise ValueError(f"Unknown layer class {class_name!r}; pass it in custom_objects")
    return cls


def _batch_shape(shape, who):
    """None, or a tuple of sizes (None or a positive integer each): Keras' batch_input_shape."""
    if shape is None:
        return None
    wrong = (f"{who}: the input shape must be a tuple of positive integers (None for a size "
             f"left open), got {shape!r}")
    if isinstance(shape, (str, bytes)):
        raise TypeError(wrong)
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(wrong) from None
    for size in shape:
        if size is None:
            continue
        if not isinstance(size, (int, np.integer)) or isinstance(size, (bool, np.bool_)):
            raise TypeError(wrong)
        if size < 1:
            raise ValueError(wrong)
    return tuple(None if s is None else int(s) for s in shape)


class Buffers(dict):
    """Named arrays reused from call to call: buffers(name, shape) is the same array each time
    (made anew only when the shape or dtype changes). Contents are not kept: the caller
    overwrites them."""

    def __call__(self, name, shape, dtype=np.float32):
        array = self.get(name)
        if array is None or array.shape != shape or array.dtype != dtype:
            array = self[name] = np.empty(shape, dtype)
        return array


def NO_BUFFERS(name, shape, dtype=np.float32):
    """Buffers when workspaces are off: None, so that each kernel makes a new array."""
    return None


class Workspaces:
    """Buffers per input shape, the `keep` most recently used: a new batch size (the last,
    partial batch of an epoch) gets its own, and alternating between two sizes reuses both."""

    def __init__(self, keep=2):
        self.keep = keep
        self._by_shape = {}  # insertion order = least recently used first

    def __call__(self, shape):
        buffers = self._by_shape.pop(shape, None)
        if buffers is None:
            buffers = Buffers()
            if len(self._by_shape) >= self.keep:
                del self._by_shape[next(iter(self._by_shape))]
        self._by_shape[shape] = buffers
        return buffers


class Layer:
    # Input rank the layer accepts (checked on build and on direct calls); None: any.
    input_ndim = None
    input_min_ndim = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    def __init__(self, name=None, trainable=True, dtype=None, input_shape=None,
                 batch_input_shape=None, batch_size=None, input_dim=None, **kwargs):
        if kwargs:
            raise TypeError(f"Unrecognized keyword arguments passed to {type(self).__name__}: "
                            f"{kwargs}")
        if dtype not in (None, "float32", np.float32):
            raise ValueError(f"{type(self).__name__}: cnnkit computes in float32, got dtype={dtype!r}")
        self.name = name or unique_name(_snake_case(type(self).__name__))
        self.trainable = bool(trainable)
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        if input_shape is not None and batch_input_shape is None:
            batch_input_shape = (batch_size,) + tuple(input_shape)
        # Keras' input_shape= on a first layer: the model starts from this shape.
        self._batch_input_shape = _batch_shape(batch_input_shape, type(self).__name__)
        self.built = False
        self.input_shape = self.output_shape = None
        self._weights = []
        self._mutex = threading.RLock()

    # ------------------------------------------------------------ building
    def build(self, input_shape):
        """Makes the weights for this input shape (batch axis included). Subclasses call
        super().build(input_shape) last."""
        self.input_shape = tuple(input_shape)
        self.output_shape = tuple(self.compute_output_shape(self.input_shape))
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def _build_checked(self, input_shape):
        """build(), after the rank check, so that any mismatch names this layer."""
        input_shape = tuple(None if s is None else int(s) for s in input_shape)
        self._check_rank(input_shape)
        self.build(input_shape)

    def _check_rank(self, shape):
        ndim = len(shape)
        if self.input_ndim is not None and ndim != self.input_ndim:
            self._incompatible(f"expected ndim={self.input_ndim}, found ndim={ndim}", shape)
        if self.input_min_ndim is not None and ndim < self.input_min_ndim:
            self._incompatible(f"expected min_ndim={self.input_min_ndim}, found ndim={ndim}", shape)

    def _incompatible(self, what, shape):
        raise ValueError(f'Input 0 of layer "{self.name}" ({type(self).__name__}) is incompatible '
                         f"with the layer: {what}. Full shape received: {shape_str(shape)}")

    def _check_input(self, shape):
        """A built layer called again: same rank, and the sizes its weights depend on."""
        self._check_rank(shape)
        built = self.input_shape
        if self.weights and built is not None:
            if len(shape) != len(built) or any(b is not None and s != b
                                               for s, b in zip(shape[1:], built[1:])):
                self._incompatible(f"expected shape={shape_str(built)}, found "
                                   f"shape={shape_str(shape)}", shape)

    def add_weight(self, shape, initializer):
        weight = initializer(shape)
        self._weights.append(weight)
        return weight

    # ------------------------------------------------------------ running
    def __call__(self, x, training=False):
        x = np.asarray(x)
        if x.dtype.kind not in "fiub":
            raise TypeError(f'Layer "{self.name}" expects a numeric array, got dtype {x.dtype}')
        x = c_array(x, np.float32)
        with self._exclusive():
            self._check_rank(x.shape)  # before build, so that the message shows x's own shape
            if not self.built:
                self._build_checked((None,) + x.shape[1:])
            else:
                self._check_input(x.shape)
            return self.forward(x, training=bool(training))

    # ------------------------------------------------------------ threads
    def _own_layers(self):
        """This layer and, for a model, every layer inside it: what a call of it runs."""
        return [self]

    @contextlib.contextmanager
    def _exclusive(self):
        """Holds the locks of every layer a call runs, taken in one global order (by id) so
        that two models sharing layers cannot deadlock; re-entrant within a thread."""
        with contextlib.ExitStack() as stack:
            for layer in sorted(set(self._own_layers()), key=id):
                stack.enter_context(layer._mutex)
            yield

    def __getstate__(self):
        # A lock cannot be copied or pickled; workspaces are scratch. copy.deepcopy and pickle
        # make a layer with a lock of its own.
        state = {k: v for k, v in self.__dict__.items()
                 if k not in ("_mutex", "_workspaces", "_grad_workspace")}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._mutex = threading.RLock()

    # Every layer defines these two; the base class only names the contract.
    def forward(self, x, training=False):
        raise NotImplementedError(f"{type(self).__name__} does not define forward(x, training)")

    def backward(self, dy):
        raise NotImplementedError(f"{type(self).__name__} does not define backward(dy)")

    # A layer ending in an activation (Dense, Conv2D, Activation, a Sequential) names it here,
    # so that a model can fuse softmax with cross-entropy: it then reads `logits` (the values
    # before the activation) after forward and calls backward_from_logits(dlogits).
    output_activation = None

    # False when nothing reads the gradient backward returns (the first layer of the model being
    # trained): a layer may then skip computing it and return None. Set by Sequential.
    input_grad_needed = True

    # True for a layer that only preprocesses the input (the augmentation layers): it has no
    # weights, so no gradient needs to pass through a model's leading run of them.
    preprocessing = False

    # ------------------------------------------------------------ workspaces
    _reuse = False  # set by _set_workspaces, for the length of a step

    def _set_workspaces(self, on):
        self._reuse = on

    def _buffers(self, shape):
        """Buffers for the arrays made from an input of this shape, or NO_BUFFERS when
        workspaces are off."""
        if not self._reuse:
            return NO_BUFFERS
        if "_workspaces" not in self.__dict__:
            self._workspaces = Workspaces()
        return self._workspaces(shape)

    def _grad_buffers(self):
        """Buffers for the weight gradients (their shapes do not depend on the batch)."""
        if not self._reuse:
            return NO_BUFFERS
        if "_grad_workspace" not in self.__dict__:
            self._grad_workspace = Buffers()
        return self._grad_workspace

    # ------------------------------------------------------------ weights
    grads = ()  # set by backward, aligned with weights

    @property
    def weights(self):
        return self._weights

    @property
    def trainable_weights(self):
        return list(self.weights) if self.trainable else []

    def _trainable_grads(self):
        return list(self.grads) if self.trainable and self.weights else []

    @property
    def non_trainable_weights(self):
        return [] if self.trainable else list(self.weights)

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        """Copies into the existing arrays (in place: the optimizer's references stay valid)."""
        weights = list(weights)
        if len(weights) != len(self.weights):
            raise ValueError(f'Layer "{self.name}" expects {len(self.weights)} weights, but '
                             f"received {len(weights)}")
        for i, (own, new) in enumerate(zip(self.weights, weights)):
            new = np.asarray(new)
            if new.shape != own.shape:
                raise ValueError(f'Layer "{self.name}" weight {i} has shape {shape_str(own.shape)}, '
                                 f"but the received value has shape {shape_str(new.shape)}")
        for own, new in zip(self.weights, weights):
            np.copyto(own, np.asarray(new, dtype=np.float32))

    def count_params(self):
        return int(sum(w.size for w in self.weights))

    # State beyond the weights that a saved model must restore (e.g. a dropout generator).
    def get_state(self):
        return {}

    def set_state(self, state):
        pass

    # ------------------------------------------------------------ configs
    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable}
        if self._batch_input_shape is not None:
            config["batch_input_shape"] = list(self._batch_input_shape)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("batch_input_shape") is not None:
            config["batch_input_shape"] = tuple(config["batch_input_shape"])
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


class RandomLayer(Layer):
    """A layer that draws from a generator of its own (Dropout's masks, the augmentation
    layers' parameters): made at build from `self.seed`, or without one from the global
    generator (cnnkit.utils.set_random_seed); its state is saved with the model, so a resumed
    fit draws exactly what an uninterrupted one would."""
    seed = None
    _generator = None

    def build(self, input_shape):
        from .. import utils
        self._generator = utils.spawn_generator(self.seed)
        super().build(input_shape)

    def get_state(self):
        return {"generator": self._generator.bit_generator.state if self._generator else None}

    def set_state(self, state):
        if state.get("generator") is not None:
            self._generator = np.random.default_rng()
            self._generator.bit_generator.state = state["generator"]

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


class ActivationMixin:
    """The fused activation of Dense and Conv2D: run after the layer's kernel on the way
    forward, its backward before the kernel's backward. Softmax also keeps its input, the
    logits, for a fused cross-entropy."""

    def _set_activation(self, activation):
        from .. import activations
        self.activation = activations.serialize(activation)
        self._act = activations.kernels(self.activation)
        self.logits = None
        self._buf = NO_BUFFERS

    @property
    def output_activation(self):
        return self.activation

    @property
    def _fuses_relu(self):
        """ReLU runs inside the layer's kernel (relu=True) as each output tile is stored; the
        kernel's output is then already the activation, kept for the backward pass."""
        return self.activation == "relu"

    def _activate(self, z, fused=False, buffers=NO_BUFFERS):
        """The activation of z, into buffers("act") when workspaces are on; backward's buffers
        are those of this forward pass."""
        self._buf = buffers
        if self._act is None or fused:
            self._y = z
            return z
        if self.activation == "softmax":
            self.logits = z
        self._y = self._act[0](z, out=buffers("act", z.shape))
        return self._y

    def _deactivate(self, dy):
        if self._act is None:
            return dy
        return self._act[1](dy, self._y, out=self._buf("dact", self._y.shape))
