"""cnnkit.onnx.export(model, "m.onnx"): a model's inference graph as an ONNX file (needs the
onnx package: pip install onnx).

The file takes the model's NHWC input as the model does, with a dynamic batch axis, and gives
its outputs in Keras' layout. Inside, convolutions run in ONNX's NCHW (builder.py turns the
layout only where needed); a BatchNormalization that follows a Conv2D, DepthwiseConv2D or Dense
is folded into its kernel and bias, as cnnkit's own inference folds it (engine/folding.py);
dropout, noise and augmentation layers pass their input through. A layer or option ONNX export
does not cover is a ValueError naming it, never a different model.
"""
import os

import numpy as np

from .builder import Builder, Value
from .layers import CONVERTERS, PASS_THROUGH, NotExportable

__all__ = ["export"]

DEFAULT_OPSET = 17
_FOLDABLE = ("Conv2D", "DepthwiseConv2D", "Dense")


def _onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise ImportError("ONNX export needs the onnx package: pip install onnx") from None
    return onnx, helper, numpy_helper


def _graph(model):
    graph = model._graph_for(False) if hasattr(model, "_graph_for") else None
    if graph is None:
        raise ValueError(f'Model "{model.name}" has no graph to export: build it (call it on data '
                         "or give it an input shape) first")
    return graph


def _run_graph(b, model, inputs):
    """Writes the nodes of model's graph, its inputs given as Values; returns its outputs."""
    graph = _graph(model)
    values = dict(zip(graph.input_numbers, inputs))
    skip, folded_into = set(), {}
    for index, (bn_index, _, _) in graph.folds.items():
        if type(graph.steps[index].layer).__name__ in _FOLDABLE:
            folded_into[index] = graph.steps[bn_index]
            skip.add(bn_index)
    for index, step in enumerate(graph.steps):
        if index in skip:
            continue
        layer, kind = step.layer, type(step.layer).__name__
        args = [values[n] for n in step.inputs]
        out_shape = tuple(step.node.outputs[0].shape)
        if step.is_model:
            outs = _run_graph(b, layer, args)
        elif kind in PASS_THROUGH:
            outs = [args[0]]
        elif kind == "RandomCrop":
            outs = [_center_crop(b, layer, args[0], out_shape)]
        elif kind in CONVERTERS:
            converter = CONVERTERS[kind]
            x = args if step.packed else args[0]
            try:
                if index in folded_into:
                    bn_step = folded_into[index]
                    out = converter(b, layer, x, tuple(bn_step.node.outputs[0].shape),
                                    bn=bn_step.layer)
                    values[bn_step.outputs[0]] = out
                    continue
                outs = [converter(b, layer, x, out_shape)]
            except NotExportable as error:
                raise ValueError(f'Layer "{layer.name}" ({kind}): ONNX export does not support '
                                 f"{error}") from None
        else:
            raise ValueError(f'Layer "{layer.name}" ({kind}): ONNX export has no conversion for '
                             f"this layer class")
        for number, out in zip(step.outputs, outs):
            values[number] = out
    return [values[n] for n in graph.output_numbers]


def _center_crop(b, layer, x, out_shape):
    """RandomCrop at inference: the centred window of the target's aspect ratio, resized
    (bilinear, half-pixel centres) to the target, as the layer's own inference pass."""
    h, w = x.shape[1:3]
    if h is None or w is None:
        raise ValueError(f'Layer "{layer.name}" (RandomCrop): ONNX export needs a known image size')
    ch = max(min(h, int(w * layer.height / layer.width)), 1)
    cw = max(min(w, int(h * layer.width / layer.height)), 1)
    x = b.nchw(x)
    top, left = (h - ch) // 2, (w - cw) // 2
    name = b.op("Slice", [x.name, b.const([top, left], layer.name + "_starts", np.int64),
                          b.const([top + ch, left + cw], layer.name + "_ends", np.int64),
                          b.const([2, 3], layer.name + "_axes", np.int64)], layer.name + "_crop")
    if (ch, cw) != (layer.height, layer.width):
        sizes = b.op("Concat", [b.op("Slice", [b.op("Shape", [name], layer.name + "_shape"),
                                               b.const([0], layer.name + "_s0", np.int64),
                                               b.const([2], layer.name + "_s2", np.int64)],
                                      layer.name + "_nc"),
                                b.const([layer.height, layer.width], layer.name + "_hw", np.int64)],
                     layer.name + "_sizes", axis=0)
        name = b.op("Resize", [name, "", "", sizes], layer.name, mode="linear",
                    coordinate_transformation_mode="half_pixel")
    return Value(name, out_shape, True)


def to_onnx(model, opset=DEFAULT_OPSET):
    """The ONNX ModelProto of a built cnnkit model."""
    onnx, helper, numpy_helper = _onnx()
    if not isinstance(opset, int) or isinstance(opset, bool) or not 13 <= opset:
        raise ValueError(f"opset must be an integer of at least 13 (17 by default), got {opset!r}")
    if opset < 17 and any(type(l).__name__ == "LayerNormalization" for l in model._flat_layers()):
        raise ValueError("LayerNormalization needs opset 17 or newer")
    if not getattr(model, "built", False):
        raise ValueError(f'Model "{model.name}" has not been built yet: call it on data or build '
                         "it first")
    graph = _graph(model)
    b = Builder(helper, numpy_helper)
    inputs, graph_inputs = [], []
    for tensor in graph.inputs:
        name = b.name(tensor.node.layer.name)
        dims = ["batch"] + [d if d is not None else f"{name}_dim{i + 1}"
                            for i, d in enumerate(tensor.shape[1:])]
        graph_inputs.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, dims))
        inputs.append(Value(name, tensor.shape))
    outputs = _run_graph(b, model, inputs)
    graph_outputs = []
    for tensor, value in zip(graph.outputs, outputs):
        value = b.nhwc(value)
        hint = tensor.node.layer.name if tensor.node else "output"
        name = b.op("Identity", [value.name], f"{hint}_output")
        dims = ["batch"] + [d if d is not None else f"{name}_dim{i + 1}"
                            for i, d in enumerate(tensor.shape[1:])]
        graph_outputs.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, dims))
    onnx_graph = helper.make_graph(b.nodes, model.name, graph_inputs, graph_outputs,
                                   initializer=b.initializers)
    proto = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="cnnkit")
    if opset <= 17:
        proto.ir_version = min(proto.ir_version, 8)  # readable by ONNX Runtimes of 2022 on
    onnx.checker.check_model(proto)
    return proto


def export(model, filepath, opset=DEFAULT_OPSET):
    """Writes the model's ONNX file (atomically); returns its path."""
    from ..saving import atomic_write
    proto = to_onnx(model, opset=opset)
    path = os.fspath(filepath)
    data = proto.SerializeToString()
    atomic_write(path, True, lambda f: f.write(data))
    return path
