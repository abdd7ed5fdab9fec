"""Per-call state: what one call of a layer keeps between its forward and backward passes.

A layer object holds its configuration and weights; everything a single call of it needs to
remember (the saved input, the max-pool winners, the logits before a softmax, the weight
gradients of that call, the reused output buffers) lives in a CallState, one per call site of
the layer in a model graph (llm.c keeps an activation slot per call site the same way). A layer
called twice (shared weights) therefore has two CallStates and never overwrites itself.

A CallState's buffers are on (`reuse`) only for the states a model's trainer owns: their arrays
are overwritten by the next step, so the trainer copies what it hands out. States made for an
eager call, layer(x), have no buffers: every array is new.
"""
import numpy as np

__all__ = ["Buffers", "Workspaces", "NO_BUFFERS", "CallState"]


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


class CallState:
    """The state of one call site of `layer`.

    need_dx  whether anything reads the input gradient; when False, backward may skip it and
             return None (the first layers of a trained model, those after augmentation).
    grads    the weight gradients of the last backward of this call, aligned with the layer's
             weights (set by backward).
    logits   the values before a final softmax, for a fused cross-entropy (set by forward).
    fused_relu  set by a model graph (engine/fusion.py) on the call of a BatchNormalization or
             Add whose only reader is a plain ReLU: the call applies max(., 0) to its output and
             its backward receives the gradient after the ReLU. Per call, not per layer: a
             shared layer may be fused at one call site and not at another.
    Layers store whatever else they save on the state itself (state.x = x, ...)."""

    def __init__(self, layer, reuse=False):
        self.layer = layer
        self.reuse = reuse
        self.need_dx = True
        self.grads = ()
        self.logits = None
        self.fused_relu = False
        self._workspaces = Workspaces() if reuse else None
        self._grad_workspace = Buffers() if reuse else None

    def buffers(self, shape):
        """Buffers for the arrays made from an input of this shape, or NO_BUFFERS when this
        state does not reuse its arrays."""
        return self._workspaces(shape) if self.reuse else NO_BUFFERS

    def grad_buffers(self):
        """Buffers for the weight gradients (their shapes do not depend on the batch)."""
        return self._grad_workspace if self.reuse else NO_BUFFERS

    def __repr__(self):
        return f"<CallState of {self.layer.name}>"
