"""Layer: the base of every cnnkit layer, with Keras' surface (names, build, call, weights,
configs) and a forward/backward pair for training.

A layer's contract:
  build(input_shape)            makes the weights; shapes include the batch axis as None (a
                                list of shapes for a layer that takes a list, `takes_list`).
  forward(call, x, training)    x is C-contiguous float32 (the model guarantees it), or a list
                                of them; keeps what backward needs on `call` (a CallState, one
                                per call site: layers/call_state.py) and returns the output.
  backward(call, dy)            returns dx (a list for a list input), or None when
                                call.need_dx is False, and sets call.grads, aligned with weights.
  compute_output_shape(s)       the output shape for input shape s (None for unknown sizes).

layer(x) on arrays checks and converts x, builds on first use and runs forward once, with a
CallState of its own. layer(t) on symbolic tensors (cnnkit.Input, or another layer's output)
builds the layer, records the call as a Node of the model graph (engine/node.py) and returns
symbolic outputs: that is how functional models are written.

Threads: a model's call states live with the model, so each layer has a lock, and a call or a
model's step holds the locks of every layer it runs (_exclusive). The kernels release the GIL,
so other Python threads go on meanwhile; two threads calling predict on one model take turns
batch by batch, and each gets the answers it would get alone. Models that share layers (an
autoencoder and its encoder) share their locks.
"""
import contextlib
import threading

import numpy as np

from .._naming import snake_case
from .._args import c_array, shape_str
from .call_state import NO_BUFFERS, Buffers, CallState, Workspaces

__all__ = ["Layer", "RandomLayer", "shape_str", "Buffers", "Workspaces", "NO_BUFFERS",
           "CallState"]

_REGISTRY = {}   # class name -> class, for from_config; every subclass registers itself
# Counts changes of any layer's `trainable`: a trainer recomputes what it caches about which
# weights train (and which calls need input gradients) when this moves.
TRAINABLE_VERSION = [0]
# Counts changes of any model's structure (a graph made, a layer set as an attribute): a model
# recomputes the list of locks it takes (Layer._exclusive) when this moves.
STRUCTURE_VERSION = [0]
_NAME_COUNTS = {}


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


def _numeric(x, who):
    """An eager input as a C-contiguous float32 array."""
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise TypeError(f'Layer "{who}" expects a numeric array, got dtype {x.dtype}')
    return c_array(x, np.float32)


class Layer:
    # Input rank the layer accepts (checked on build and on direct calls); None: any.
    input_ndim = None
    input_min_ndim = None
    # True for a layer called on a list of tensors (the merge layers).
    takes_list = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    def __init__(self, name=None, trainable=True, dtype=None, input_shape=None,
                 batch_input_shape=None, batch_size=None, input_dim=None,
                 activity_regularizer=None, **kwargs):
        if kwargs:
            raise TypeError(f"Unrecognized keyword arguments passed to {type(self).__name__}: "
                            f"{kwargs}")
        from ..mixed_precision import policy_of
        # Keras' dtype policy: float32, or mixed_bfloat16 run in float32 (with one warning);
        # anything else raises (cnnkit.mixed_precision).
        self.dtype_policy = policy_of(dtype, type(self).__name__)
        if name is not None and (not isinstance(name, str) or not name or "/" in name):
            raise ValueError(f"{type(self).__name__}: name must be a non-empty string without "
                             f"'/', got {name!r}")
        self.name = name or unique_name(snake_case(type(self).__name__))
        self._trainable = bool(trainable)
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        if input_shape is not None and batch_input_shape is None:
            batch_input_shape = (batch_size,) + tuple(input_shape)
        # Keras' input_shape= on a first layer: the model starts from this shape.
        self._batch_input_shape = _batch_shape(batch_input_shape, type(self).__name__)
        self.built = False
        self.input_shape = self.output_shape = None
        self._weights = []
        self._frozen_ids = set()  # ids of the weights made with trainable=False
        self._weight_regularizers = []  # (weight, regularizer) pairs, from add_weight
        from .. import regularizers
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self._inbound_nodes = []  # the Nodes recording this layer's symbolic calls
        self._mutex = threading.RLock()

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)
        TRAINABLE_VERSION[0] += 1

    # ------------------------------------------------------------ building
    def build(self, input_shape):
        """Makes the weights for this input shape (batch axis included). Subclasses call
        super().build(input_shape) last."""
        self.input_shape = _as_shape(input_shape)
        self.output_shape = _as_shape(self.compute_output_shape(self.input_shape))
        self.built = True

    def compute_output_shape(self, input_shape):
        return _as_shape(input_shape)

    def _build_checked(self, input_shape):
        """build(), after the rank check, so that any mismatch names this layer."""
        input_shape = _as_shape(input_shape)
        self._check_rank(input_shape)
        self.build(input_shape)

    def _check_rank(self, shape):
        if self.takes_list:
            return
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
        if self.takes_list:
            self.compute_output_shape(shape)  # the merge layers check compatibility there
            return
        self._check_rank(shape)
        built = self.input_shape
        if self.weights and built is not None:
            if len(shape) != len(built) or any(b is not None and s != b
                                               for s, b in zip(shape[1:], built[1:])):
                self._incompatible(f"expected shape={shape_str(built)}, found "
                                   f"shape={shape_str(shape)}", shape)

    def _ensure_built(self, shape):
        """Builds on the first call, else checks the input against the built layer."""
        if not self.built:
            self._build_checked(shape)
        else:
            self._check_input(shape)

    def add_weight(self, shape, initializer, trainable=True, regularizer=None):
        """A new weight, in creation order in `weights`. trainable=False (BatchNormalization's
        moving statistics): no gradient, the optimizer never moves it, the layer updates it
        itself. regularizer: a cnnkit.regularizers object whose penalty on this weight joins
        the loss in training."""
        weight = initializer(shape)
        self._weights.append(weight)
        if not trainable:
            self._frozen_ids.add(id(weight))
        if regularizer is not None:
            self._weight_regularizers.append((weight, regularizer))
        return weight

    # ------------------------------------------------------------ calling
    def __call__(self, inputs, training=None, **kwargs):
        """On symbolic tensors: records the call in the model graph. On arrays: runs the layer
        once (training=False unless given) and returns a new array."""
        from ..engine import symbolic
        if kwargs:
            raise TypeError(f'Layer "{self.name}" got unexpected keyword arguments {sorted(kwargs)}')
        if symbolic.any_symbolic(inputs):
            return symbolic.call_symbolic(self, inputs, training)
        return self._call_eager(inputs, bool(training))

    def _call_eager(self, inputs, training):
        if self.takes_list:
            if not isinstance(inputs, (list, tuple)):
                raise TypeError(f'Layer "{self.name}" ({type(self).__name__}) expects a list of '
                                f"arrays, got {type(inputs).__name__}")
            x = [_numeric(a, self.name) for a in inputs]
            actual = [a.shape for a in x]
            shape = [(None,) + a.shape[1:] for a in x]
        else:
            if isinstance(inputs, (list, tuple, dict)):
                raise TypeError(f'Layer "{self.name}" ({type(self).__name__}) takes one array, '
                                f"got a {type(inputs).__name__}")
            x = _numeric(inputs, self.name)
            self._check_rank(x.shape)  # before build, so that the message shows x's own shape
            actual, shape = x.shape, (None,) + x.shape[1:]
        with self._exclusive():
            if self.built:
                self._check_input(actual)  # the message shows the shape received
            else:
                self._build_checked(shape)
            return self.forward(self.new_state(), x, training=training)

    def new_state(self, reuse=False):
        """The state of one call site (a model makes one per node of its graph)."""
        return CallState(self, reuse)

    # ------------------------------------------------------------ threads
    def _own_layers(self):
        """This layer and, for a model, every layer inside it: what a call of it runs."""
        return [self]

    def _locks(self):
        """The locks of every layer a call runs, in one global order (by id)."""
        return [layer._mutex for layer in sorted(set(self._own_layers()), key=id)]

    @contextlib.contextmanager
    def _exclusive(self):
        """Holds the locks of every layer a call runs, taken in one global order (by id) so
        that two models sharing layers cannot deadlock; re-entrant within a thread."""
        locks = self._locks()
        taken = 0
        try:
            for lock in locks:
                lock.acquire()
                taken += 1
            yield
        finally:
            for lock in reversed(locks[:taken]):
                lock.release()

    def __getstate__(self):
        # A lock cannot be copied or pickled; graph nodes and call states belong to the
        # original. copy.deepcopy and pickle make a layer with a lock of its own.
        state = {k: v for k, v in self.__dict__.items()
                 if k not in ("_mutex", "_inbound_nodes", "_states", "_locks_cache")}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._inbound_nodes = []
        self._mutex = threading.RLock()

    # Every layer defines these two; the base class only names the contract.
    def forward(self, call, x, training=False):
        raise NotImplementedError(f"{type(self).__name__} does not define forward(call, x, training)")

    def backward(self, call, dy):
        raise NotImplementedError(f"{type(self).__name__} does not define backward(call, dy)")

    # A layer ending in an activation (Dense, Conv2D, Activation, a model) names it here, so
    # that a model can fuse softmax with cross-entropy: it then reads logits_of(call) (the
    # values before the activation) after forward and calls backward_from_logits(call, dlogits).
    output_activation = None

    def logits_of(self, call):
        return call.logits

    # True for a layer that only preprocesses the input (the augmentation layers).
    preprocessing = False

    # ------------------------------------------------------------ weights
    @property
    def weights(self):
        return self._weights

    @property
    def _trainable_variables(self):
        """The weights that take gradients when the layer trains (all but those made with
        trainable=False), whatever layer.trainable says: backward's call.grads follow this
        order."""
        return [w for w in self.weights if id(w) not in self._frozen_ids]

    @property
    def trainable_weights(self):
        return self._trainable_variables if self.trainable else []

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return list(self.weights)
        return [w for w in self.weights if id(w) in self._frozen_ids]

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
    @property
    def dtype(self):
        """The weights' dtype (Keras' layer.dtype): always float32."""
        return self.dtype_policy.variable_dtype

    @property
    def compute_dtype(self):
        """What the layer computes in: float32 in cnnkit, whatever the policy asks."""
        return "float32"

    @property
    def variable_dtype(self):
        return self.dtype_policy.variable_dtype

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


def _as_shape(shape):
    """A shape tuple, or a list of them (a layer that takes or gives several tensors)."""
    if isinstance(shape, list) and shape and isinstance(shape[0], (tuple, list)):
        return [_as_shape(s) for s in shape]
    return tuple(None if s is None else int(s) for s in shape)


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
    """The fused activation of Dense and Conv2D (and the Activation layer): run after the
    layer's kernel on the way forward, its backward before the kernel's backward.

    ReLU runs inside the layer's kernel; any other activation writes into the call's buffer
    "act", and its backward takes what its derivative needs (activations.Kernels.saves_input):
    the forward output, or the pre-activation z, which stays in the kernel's own output buffer
    until the next forward pass, so nothing is copied or allocated for it. Softmax also keeps
    z as the logits, for a fused cross-entropy."""

    def _set_activation(self, activation):
        from .. import activations
        self.activation = activations.serialize(activation)
        self._act = activations.kernels(self.activation)

    @property
    def output_activation(self):
        return self.activation

    @property
    def _fuses_relu(self):
        """ReLU runs inside the layer's kernel (relu=True) as each output tile is stored; the
        kernel's output is then already the activation, kept for the backward pass."""
        return self.activation == "relu"

    def _activate(self, call, z, fused=False, buffers=NO_BUFFERS):
        """The activation of z, into buffers("act") when the call reuses its arrays;
        backward's buffers are those of this forward pass."""
        call.buf = buffers
        if self._act is None or fused:
            call.y = call.pre_activation = z
            return z
        if self.activation == "softmax":
            call.logits = z
        call.pre_activation = z
        call.y = self._act.forward(z, out=buffers("act", z.shape))
        return call.y

    def _deactivate(self, call, dy):
        if self._act is None:
            return dy
        saved = call.pre_activation if self._act.saves_input else call.y
        return self._act.backward(dy, saved, out=call.buf("dact", saved.shape))

    def backward(self, call, dy):
        return self.backward_from_logits(call, self._deactivate(call, dy))
