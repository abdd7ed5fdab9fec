"""The ONNX graph being written: nodes, constants, and the layout of each image tensor.

A model takes and gives NHWC images, as Keras; ONNX's convolutions and pools take NCHW. So a
rank-4 tensor is held in either layout (Value.nchw) and turned only where an operation needs
the other one: a chain of convolutions, pools and elementwise operations runs in NCHW with one
transpose at its start and one where it ends (a Flatten, a Dense, the model's output).
"""
import numpy as np

NHWC_TO_NCHW = [0, 3, 1, 2]
NCHW_TO_NHWC = [0, 2, 3, 1]


class Value:
    """One tensor of the graph: its name, its Keras shape (NHWC, batch None) and, for rank 4,
    whether ONNX holds it as NCHW."""
    __slots__ = ("name", "shape", "nchw")

    def __init__(self, name, shape, nchw=False):
        self.name, self.shape, self.nchw = name, tuple(shape), nchw

    @property
    def rank(self):
        return len(self.shape)


class Builder:
    def __init__(self, helper, numpy_helper):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.initializers, self._names = [], [], {}

    def name(self, hint):
        count = self._names.get(hint, 0)
        self._names[hint] = count + 1
        return hint if count == 0 else f"{hint}_{count}"

    def const(self, array, hint, dtype=np.float32):
        name = self.name(hint)
        array = np.ascontiguousarray(np.asarray(array, dtype=dtype))
        self.initializers.append(self.numpy_helper.from_array(array, name))
        return name

    def op(self, op_type, inputs, hint, **attrs):
        """Appends a node; returns its (single) output name."""
        out = self.name(hint)
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def value(self, op_type, inputs, like, hint, shape=None, nchw=None, **attrs):
        """A node whose output keeps `like`'s layout (and shape, unless given)."""
        return Value(self.op(op_type, inputs, hint, **attrs),
                     like.shape if shape is None else shape, like.nchw if nchw is None else nchw)

    # ---------------------------------------------------------------- layouts
    def nchw(self, v):
        if v.rank != 4 or v.nchw:
            return v
        return Value(self.op("Transpose", [v.name], v.name + "_nchw", perm=NHWC_TO_NCHW),
                     v.shape, True)

    def nhwc(self, v):
        if not v.nchw:
            return v
        return Value(self.op("Transpose", [v.name], v.name + "_nhwc", perm=NCHW_TO_NHWC),
                     v.shape, False)

    def same_layout(self, values):
        """The values in one layout: NCHW if any rank-4 one is NCHW already."""
        if any(v.nchw for v in values):
            return [self.nchw(v) for v in values]
        return list(values)

    def axis(self, v, axis):
        """ONNX's axis for Keras axis `axis` of v (Keras numbers NHWC)."""
        axis %= v.rank
        return NHWC_TO_NCHW.index(axis) if v.nchw else axis

    def channel_const(self, v, array, hint):
        """A constant of Keras shape broadcastable to v's trailing axes (NHWC), laid out for
        v's layout."""
        array = np.asarray(array, np.float32)
        if v.nchw:
            full = array.reshape((1,) * (4 - array.ndim) + array.shape)
            array = full.transpose(NHWC_TO_NCHW)
        return self.const(array, hint)
