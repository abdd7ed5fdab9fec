"""Inference folding: a BatchNormalization right after a linear Conv2D, DepthwiseConv2D or Dense
runs inside it.

At inference a BatchNormalization is a per-channel affine map with constant coefficients,
s = gamma / sqrt(moving_variance + epsilon) and t = beta - moving_mean * s; after a layer whose
output is x @ kernel + bias (no activation) it folds into that layer's weights:
kernel' = kernel * s (along the output channels), bias' = (bias - moving_mean) * s + beta, and
one kernel call replaces two (no pass over the activations for the normalization).

A pair folds when the BatchNormalization normalises the last axis, is the only reader of the
producer's output, that output is not a model output, and the pass is an inference pass (the
graph runs with training=False and the node does not force training=True). A plain ReLU that is
the BatchNormalization's only reader folds too, as the producer kernel's fused ReLU: conv-BN-ReLU
is then one kernel call (one pass over the output instead of three).

The folded weights are recomputed on every forward pass, from the weights as they are then: no
cache can go stale (after fit, set_weights, load_weights or an in-place edit). The cost is one
pass over the kernel; the pair runs unfolded when that is more than the pass over the output
it saves (a batch of a few images through a large kernel).
"""
import math

import numpy as np

from .. import _core
from .._args import kernel_ready


__all__ = ["ENABLED", "find_folds", "folded_forward", "folded_weights", "inference_order"]

# Set to False to run every BatchNormalization on its own (the tests compare both ways).
ENABLED = True


def _plain_relu(layer):
    """Whether the layer is Activation('relu') or ReLU() with its defaults: max(x, 0)."""
    from ..layers.activation import ReLU
    from ..layers.core import Activation
    if type(layer) is Activation:
        return layer.activation == "relu"
    return (type(layer) is ReLU and layer.max_value is None and layer.negative_slope == 0
            and layer.threshold == 0)


def _only_reader(steps, readers, number, output_numbers):
    """The index of the one step reading tensor `number` (by a plain, single-input call), or
    None when several read it, or it is a model output."""
    reading = readers.get(number, [])
    if number in output_numbers or len(reading) != 1:
        return None
    step = steps[reading[0]]
    if step.packed or step.inputs != [number] or step.training is True or step.is_model:
        return None
    return reading[0]


def _residual_add(steps, readers, producers, i, number, output_numbers):
    """(index of the Add step, index of the ReLU step after it or None, the Add's other input)
    when tensor `number` (the output of the BatchNormalization folded into step i) is read only
    by an Add of two inputs whose other input is computed before step i: a ResNet block's sum,
    which Conv2D step i can then add in its kernel (conv2d_forward's residual). Else None."""
    from ..layers.merging import Add
    reading = readers.get(number, [])
    if number in output_numbers or len(reading) != 1:
        return None
    a = reading[0]
    step = steps[a]
    if (type(step.layer) is not Add or not step.packed or len(step.inputs) != 2
            or step.inputs.count(number) != 1 or step.training is True or step.is_model
            or step.layer.activity_regularizer is not None):
        return None
    other = step.inputs[1] if step.inputs[0] == number else step.inputs[0]
    p = producers.get(other, -1)
    # Computed after the convolution, it is not there yet, unless its step can run first: all
    # its inputs come before step i (a projection block's 1x1 convolution of the block's input,
    # which Keras' order puts after the block's own convolutions). inference_order moves it.
    if p > i and any(producers.get(n, -1) >= i for n in steps[p].inputs):
        return None
    r = _only_reader(steps, readers, step.outputs[0], output_numbers)
    relu = r is not None and _plain_relu(steps[r].layer) and \
        steps[r].layer.activity_regularizer is None
    return a, r if relu else None, other


def find_folds(steps, output_numbers):
    """{index of a producer step: (index of the BatchNormalization step folded into it, index
    of the ReLU step folded after it or None, residual)}. The ReLU runs inside the producer's
    kernel as its fused activation, so conv-BN-ReLU at inference is one kernel call. residual,
    for a Conv2D whose BatchNormalization feeds a ResNet block's Add (and maybe its ReLU): the
    (Add step, ReLU step or None, other input) of _residual_add, all in the same kernel call."""
    from ..layers.conv import Conv2D
    from ..layers.core import Dense
    from ..layers.depthwise_conv import DepthwiseConv2D
    from ..layers.normalization import BatchNormalization
    readers, producers = {}, {}
    for i, step in enumerate(steps):
        for number in step.inputs:
            readers.setdefault(number, []).append(i)
        for number in step.outputs:
            producers[number] = i
    folds = {}
    for i, step in enumerate(steps):
        layer = step.layer
        # Exact types: a subclass may compute something else in forward.
        if step.is_model or not step.single_output or type(layer) not in (Conv2D, DepthwiseConv2D, Dense):
            continue
        # An activity regularizer reads the output that folding never makes.
        if layer.activation != "linear" or layer.activity_regularizer is not None:
            continue
        j = _only_reader(steps, readers, step.outputs[0], output_numbers)
        if j is None:
            continue
        bn = steps[j].layer
        if (type(bn) is not BatchNormalization or not bn.built
                or bn._axis != len(bn.input_shape) - 1 or bn.activity_regularizer is not None):
            continue
        k = _only_reader(steps, readers, steps[j].outputs[0], output_numbers)
        relu = k is not None and _plain_relu(steps[k].layer) and \
            steps[k].layer.activity_regularizer is None
        residual = None
        if not relu and type(layer) is Conv2D:
            residual = _residual_add(steps, readers, producers, i, steps[j].outputs[0],
                                     output_numbers)
        folds[i] = (j, k if relu else None, residual)
    return folds


def inference_order(steps, folds):
    """The order an inference pass runs the steps in: the graph's, except that the step making
    a folded residual is moved to just before the convolution that adds it (_residual_add)."""
    producers = {n: i for i, step in enumerate(steps) for n in step.outputs}
    order = list(range(len(steps)))
    for i, (_, _, residual) in sorted(folds.items()):
        p = producers.get(residual[2], -1) if residual is not None else -1
        if p > i:
            order.remove(p)
            order.insert(order.index(i), p)
    return order


def folded_forward(producer, bn, call, x, relu=False, residual=None):
    """bn(producer(x)) (+ residual, a Conv2D's only), then max(., 0) if relu, at inference in
    one kernel call, into the producer's buffers; None when folding would cost more than it
    saves, or the residual does not fit (another shape, Add broadcasting it)."""
    kernel = producer.kernel
    channels = len(bn.moving_mean)  # the producer's output channels
    out_shape = producer.compute_output_shape((len(x),) + x.shape[1:])
    # math.prod, not np.prod: some 5 us a call on a tuple.
    if math.prod(out_shape) < kernel.size:
        return None
    buffers = call.buffers(x.shape)
    if residual is not None:
        out = buffers("z", out_shape)
        if (not kernel_ready(residual) or residual.shape != out_shape
                or (out is not None and np.may_share_memory(out, residual))):
            return None
    k, b = folded_weights(producer, bn, buffers("fold_kernel", kernel.shape),
                          buffers("fold_bias", (channels,)), buffers("fold_scale", (channels,)))
    call.buf = buffers
    if residual is not None:
        return producer._linear(x, k, b, buffers, relu=relu, residual=residual)
    return producer._linear(x, k, b, buffers, relu=relu)


def folded_weights(producer, bn, kernel_out, bias_out, scale_out):
    """(kernel', bias') of producer with bn folded in, into the given arrays (None: new ones).
    As Keras' batch_normalization: s = gamma * (1 / sqrt(variance + epsilon)), in float32;
    kernel' = kernel * s along the output channels (a depthwise kernel (kh, kw, C, multiplier)
    makes output channel c * multiplier + m: its last two axes), bias' = (bias - mean) * s +
    beta. One kernel call (_core.batchnorm_fold, rounding as NumPy would): the eight NumPy calls
    it replaces cost some 100 us a layer, 4% of a ResNet-20 inference pass."""
    return _core.batchnorm_fold(
        producer.kernel, producer.bias, bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance,
        float(np.float32(bn.epsilon)), kernel_out=kernel_out, bias_out=bias_out,
        scale_out=scale_out)
