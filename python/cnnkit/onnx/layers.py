"""Each cnnkit layer as ONNX operations, at inference (dropout and augmentation pass their
input through). A converter takes the builder, the layer and its input Values and returns the
output Value; a layer without one is refused by name (export.py)."""
import math

import numpy as np

from .builder import Value

CONVERTERS = {}


def converts(*class_names):
    def register(fn):
        for name in class_names:
            CONVERTERS[name] = fn
        return fn
    return register


class NotExportable(ValueError):
    pass


# ------------------------------------------------------------------ activations

def _gelu(b, v, hint):
    inner = b.op("Div", [v.name, b.const(math.sqrt(2.0), hint + "_sqrt2")], hint + "_scaled")
    erf = b.op("Erf", [inner], hint + "_erf")
    one = b.op("Add", [erf, b.const(1.0, hint + "_one")], hint + "_1perf")
    half = b.op("Mul", [v.name, b.const(0.5, hint + "_half")], hint + "_halfx")
    return b.value("Mul", [half, one], v, hint)


def _times(b, v, gate, hint):
    return b.value("Mul", [v.name, gate], v, hint)


def activation(b, v, name, hint):
    """v through Keras activation `name` (cnnkit's canonical names)."""
    simple = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "exponential": "Exp",
              "selu": "Selu", "softplus": "Softplus", "softsign": "Softsign"}
    if name == "linear":
        return v
    if name in simple:
        return b.value(simple[name], [v.name], v, hint)
    if name == "elu":
        return b.value("Elu", [v.name], v, hint, alpha=1.0)
    if name == "leaky_relu":
        return b.value("LeakyRelu", [v.name], v, hint, alpha=0.2)
    if name == "relu6":
        return _clip(b, v, 0.0, 6.0, hint)
    if name == "hard_sigmoid":  # Keras 3: relu6(x + 3) / 6
        return b.value("HardSigmoid", [v.name], v, hint, alpha=1.0 / 6.0, beta=0.5)
    if name == "hard_silu":
        gate = b.op("HardSigmoid", [v.name], hint + "_gate", alpha=1.0 / 6.0, beta=0.5)
        return _times(b, v, gate, hint)
    if name == "silu":
        return _times(b, v, b.op("Sigmoid", [v.name], hint + "_gate"), hint)
    if name == "mish":
        soft = b.op("Softplus", [v.name], hint + "_softplus")
        return _times(b, v, b.op("Tanh", [soft], hint + "_gate"), hint)
    if name == "gelu":
        return _gelu(b, v, hint)
    if name in ("softmax", "log_softmax"):
        v = b.nhwc(v)
        return b.value("Softmax" if name == "softmax" else "LogSoftmax", [v.name], v, hint,
                       axis=-1)
    raise NotExportable(f"activation {name!r}")


def _clip(b, v, low, high, hint):
    inputs = [v.name, b.const(low, hint + "_min"),
              b.const(high if high is not None else np.finfo(np.float32).max, hint + "_max")]
    return b.value("Clip", inputs, v, hint)


@converts("Activation")
def _activation_layer(b, layer, x, out_shape):
    return activation(b, x, layer.activation, layer.name)


@converts("ReLU")
def _relu(b, layer, x, out_shape):
    slope, threshold, top = layer.negative_slope, layer.threshold, layer.max_value
    if slope == 0 and threshold == 0:
        y = b.value("Relu", [x.name], x, layer.name + "_relu")
    else:
        # Keras: x where x >= threshold, else negative_slope * (x - threshold)
        t = b.const(threshold, layer.name + "_threshold")
        below = b.op("Mul", [b.op("Sub", [x.name, t], layer.name + "_shift"),
                             b.const(slope, layer.name + "_slope")], layer.name + "_below")
        keep = b.op("GreaterOrEqual", [x.name, t], layer.name + "_keep")
        y = b.value("Where", [keep, x.name, below], x, layer.name + "_relu")
    if top is not None:
        y = b.value("Min", [y.name, b.const(top, layer.name + "_max")], y, layer.name)
    return y


@converts("LeakyReLU")
def _leaky(b, layer, x, out_shape):
    return b.value("LeakyRelu", [x.name], x, layer.name, alpha=float(layer.negative_slope))


@converts("ELU")
def _elu(b, layer, x, out_shape):
    return b.value("Elu", [x.name], x, layer.name, alpha=float(layer.alpha))


@converts("PReLU")
def _prelu(b, layer, x, out_shape):
    alpha = np.asarray(layer.alpha, np.float32)
    return b.value("PRelu", [x.name, b.channel_const(x, alpha, layer.name + "_alpha")], x,
                   layer.name)


@converts("Softmax")
def _softmax(b, layer, x, out_shape):
    x = b.nhwc(x)
    axis = layer.axis if isinstance(layer.axis, int) else None
    if axis is None:
        raise NotExportable(f"Softmax over several axes ({layer.axis})")
    return b.value("Softmax", [x.name], x, layer.name, axis=axis % x.rank)


# ------------------------------------------------------------------ convolutions

def _pads(x, kernel, strides, dilation, padding):
    """ONNX pads [top, left, bottom, right] of Keras' padding for x's (static) size."""
    if padding == "valid":
        return [0, 0, 0, 0]
    before, after = [], []
    for size, k, s, d in zip(x.shape[1:3], kernel, strides, dilation):
        if size is None:
            raise NotExportable("'same' padding with an unknown image size")
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        before.append(total // 2)
        after.append(total - total // 2)
    return before + after


def conv(b, x, kernel_oihw, bias, strides, dilation, padding, groups, hint):
    x = b.nchw(x)
    kh, kw = kernel_oihw.shape[2:]
    inputs = [x.name, b.const(kernel_oihw, hint + "_kernel")]
    if bias is not None:
        inputs.append(b.const(bias, hint + "_bias"))
    pads = _pads(x, (kh, kw), strides, dilation, padding)
    out = b.op("Conv", inputs, hint, kernel_shape=[kh, kw], strides=list(strides),
               dilations=list(dilation), pads=pads, group=groups)
    return Value(out, (), True)


def _shaped(v, shape):
    return Value(v.name, shape, v.nchw)


def folded(layer, kernel_oihw, bias, bn):
    """The kernel and bias with the following BatchNormalization folded in (per output)."""
    scale = np.asarray(bn.gamma if bn.scale else 1.0, np.float64) / np.sqrt(
        np.asarray(bn.moving_variance, np.float64) + bn.epsilon)
    shift = (np.asarray(bn.beta, np.float64) if bn.center else 0.0) - np.asarray(
        bn.moving_mean, np.float64) * scale
    base = 0.0 if bias is None else np.asarray(bias, np.float64)
    kernel = np.asarray(kernel_oihw, np.float64) * scale.reshape(
        (-1,) + (1,) * (kernel_oihw.ndim - 1))
    return kernel.astype(np.float32), (base * scale + shift).astype(np.float32)


@converts("Conv2D")
def _conv2d(b, layer, x, out_shape, bn=None):
    kernel = np.asarray(layer.kernel).transpose(3, 2, 0, 1)
    bias = np.asarray(layer.bias) if layer.use_bias else None
    if bn is not None:
        kernel, bias = folded(layer, kernel, bias, bn)
    y = conv(b, x, kernel, bias, layer.strides, layer.dilation_rate, layer.padding,
             layer.groups, layer.name)
    return activation(b, _shaped(y, out_shape), layer.activation, layer.name + "_act")


def _depthwise_oihw(kernel):
    kh, kw, c, m = kernel.shape
    return np.asarray(kernel).reshape(kh, kw, c * m).transpose(2, 0, 1)[:, None]


@converts("DepthwiseConv2D")
def _depthwise(b, layer, x, out_shape, bn=None):
    kernel = _depthwise_oihw(np.asarray(layer.kernel))
    bias = np.asarray(layer.bias) if layer.use_bias else None
    if bn is not None:
        kernel, bias = folded(layer, kernel, bias, bn)
    y = conv(b, x, kernel, bias, layer.strides, layer.dilation_rate, layer.padding,
             x.shape[-1], layer.name)
    return activation(b, _shaped(y, out_shape), layer.activation, layer.name + "_act")


@converts("SeparableConv2D")
def _separable(b, layer, x, out_shape):
    depthwise = _depthwise_oihw(np.asarray(layer.depthwise_kernel))
    mid = conv(b, x, depthwise, None, layer.strides, layer.dilation_rate, layer.padding,
               x.shape[-1], layer.name + "_depthwise")
    mid = _shaped(mid, out_shape[:3] + (depthwise.shape[0],))
    pointwise = np.asarray(layer.pointwise_kernel).transpose(3, 2, 0, 1)
    y = conv(b, mid, pointwise, np.asarray(layer.bias) if layer.use_bias else None, (1, 1),
             (1, 1), "valid", 1, layer.name)
    return activation(b, _shaped(y, out_shape), layer.activation, layer.name + "_act")


@converts("Conv2DTranspose")
def _conv_transpose(b, layer, x, out_shape):
    x = b.nchw(x)
    kernel = np.asarray(layer.kernel).transpose(3, 2, 0, 1)  # (in, out, kh, kw)
    kh, kw = kernel.shape[2:]
    pads, extra = [0, 0, 0, 0], [0, 0]
    for i, (size, k, s, d, want) in enumerate(zip(x.shape[1:3], (kh, kw), layer.strides,
                                                  layer.dilation_rate, out_shape[1:3])):
        if size is None or want is None:
            raise NotExportable("Conv2DTranspose with an unknown image size")
        full = (size - 1) * s + (k - 1) * d + 1
        crop = full - want
        if crop >= 0:
            pads[i], pads[i + 2] = crop // 2, crop - crop // 2
        else:
            extra[i] = -crop
    inputs = [x.name, b.const(kernel, layer.name + "_kernel")]
    if layer.use_bias:
        inputs.append(b.const(np.asarray(layer.bias), layer.name + "_bias"))
    attrs = dict(kernel_shape=[kh, kw], strides=list(layer.strides),
                 dilations=list(layer.dilation_rate), pads=pads)
    if any(extra):
        attrs["output_padding"] = extra
    y = Value(b.op("ConvTranspose", inputs, layer.name, **attrs), out_shape, True)
    return activation(b, y, layer.activation, layer.name + "_act")


@converts("Dense")
def _dense(b, layer, x, out_shape, bn=None):
    x = b.nhwc(x)
    kernel = np.asarray(layer.kernel)
    bias = np.asarray(layer.bias) if layer.use_bias else None
    if bn is not None:
        folded_kernel, bias = folded(layer, kernel.T, bias, bn)
        kernel = folded_kernel.T
    if x.rank == 2:
        inputs = [x.name, b.const(kernel, layer.name + "_kernel")]
        if bias is not None:
            inputs.append(b.const(bias, layer.name + "_bias"))
        y = Value(b.op("Gemm", inputs, layer.name), out_shape)
    else:
        y = Value(b.op("MatMul", [x.name, b.const(kernel, layer.name + "_kernel")],
                       layer.name + ("_matmul" if bias is not None else "")), out_shape)
        if bias is not None:
            y = b.value("Add", [y.name, b.const(bias, layer.name + "_bias")], y, layer.name)
    return activation(b, y, layer.activation, layer.name + "_act")


# ------------------------------------------------------------------ normalization

@converts("BatchNormalization")
def _batch_norm(b, layer, x, out_shape):
    if layer._axis != x.rank - 1:
        raise NotExportable(f"BatchNormalization over axis {layer.axis} (not the last)")
    scale, shift = folded(layer, np.ones((x.shape[-1], 1), np.float32), None, layer)
    x = b.nchw(x) if x.rank == 4 else x
    y = b.value("Mul", [x.name, b.channel_const(x, scale[:, 0], layer.name + "_scale")], x,
                layer.name + "_mul")
    return b.value("Add", [y.name, b.channel_const(x, shift, layer.name + "_shift")], y,
                   layer.name)


@converts("LayerNormalization")
def _layer_norm(b, layer, x, out_shape):
    axes = sorted(a % x.rank for a in layer.axis)
    if axes != list(range(axes[0], x.rank)) or layer.rms_scaling:
        raise NotExportable(f"LayerNormalization over axes {layer.axis}"
                            + (" with rms_scaling" if layer.rms_scaling else ""))
    x = b.nhwc(x)
    shape = x.shape[axes[0]:]
    gamma = np.asarray(layer.gamma) if layer.scale else np.ones(shape[-1:], np.float32)
    beta = np.asarray(layer.beta) if layer.center else np.zeros(shape[-1:], np.float32)
    gamma = np.broadcast_to(gamma, shape) if len(axes) > 1 else gamma
    beta = np.broadcast_to(beta, shape) if len(axes) > 1 else beta
    return b.value("LayerNormalization", [x.name, b.const(gamma, layer.name + "_gamma"),
                                          b.const(beta, layer.name + "_beta")], x, layer.name,
                   axis=axes[0], epsilon=float(layer.epsilon))


def _probe_affine(layer, shape):
    """(scale, offset) of an elementwise affine layer, read off the layer itself on 0 and 1:
    exact whatever its parameters' broadcasting."""
    if any(s is None for s in shape[1:]):
        raise NotExportable(f"{type(layer).__name__} with an unknown input size")
    zeros = np.zeros((1,) + tuple(shape[1:]), np.float32)
    offset = np.asarray(layer(zeros, training=False))[0]
    scale = np.asarray(layer(zeros + 1, training=False))[0] - offset
    return _compact(scale), _compact(offset)


def _compact(array):
    """The array with every axis along which it is constant reduced to size 1, leading ones
    dropped."""
    for axis in range(array.ndim):
        first = np.take(array, [0], axis=axis)
        if np.array_equal(np.broadcast_to(first, array.shape), array):
            array = first
    while array.ndim and array.shape[0] == 1:
        array = array[0]
    return array


@converts("Rescaling", "Normalization")
def _affine(b, layer, x, out_shape):
    scale, offset = _probe_affine(layer, x.shape)
    if scale.ndim > 1 and x.rank == 4:
        x = b.nhwc(x)  # a per-position constant: kept in Keras' layout
    y = b.value("Mul", [x.name, b.channel_const(x, scale, layer.name + "_scale")], x,
                layer.name + "_mul")
    return b.value("Add", [y.name, b.channel_const(x, offset, layer.name + "_offset")], y,
                   layer.name)


# ------------------------------------------------------------------ pooling

def _pool(b, layer, x, out_shape, op_type, **extra):
    x = b.nchw(x)
    pads = _pads(x, layer.pool_size, layer.strides, (1, 1), layer.padding)
    return Value(b.op(op_type, [x.name], layer.name, kernel_shape=list(layer.pool_size),
                      strides=list(layer.strides), pads=pads, **extra), out_shape, True)


@converts("MaxPooling2D")
def _max_pool(b, layer, x, out_shape):
    return _pool(b, layer, x, out_shape, "MaxPool")


@converts("AveragePooling2D")
def _avg_pool(b, layer, x, out_shape):
    return _pool(b, layer, x, out_shape, "AveragePool", count_include_pad=0)


def _global(b, layer, x, out_shape, op_type):
    x = b.nchw(x)
    keep = bool(layer.keepdims)
    return Value(b.op(op_type, [x.name], layer.name, axes=[2, 3], keepdims=int(keep)),
                 out_shape, keep)


@converts("GlobalAveragePooling2D")
def _global_avg(b, layer, x, out_shape):
    return _global(b, layer, x, out_shape, "ReduceMean")


@converts("GlobalMaxPooling2D")
def _global_max(b, layer, x, out_shape):
    return _global(b, layer, x, out_shape, "ReduceMax")


# ------------------------------------------------------------------ shapes

@converts("Flatten")
def _flatten(b, layer, x, out_shape):
    x = b.nhwc(x)
    return Value(b.op("Flatten", [x.name], layer.name, axis=1), out_shape)


@converts("Reshape")
def _reshape(b, layer, x, out_shape):
    x = b.nhwc(x)
    target = b.const([0] + [-1 if s is None else s for s in layer.target_shape],
                     layer.name + "_shape", np.int64)
    return Value(b.op("Reshape", [x.name, target], layer.name), out_shape)


@converts("UpSampling2D")
def _upsample(b, layer, x, out_shape):
    x = b.nchw(x)
    scales = b.const([1.0, 1.0, float(layer.size[0]), float(layer.size[1])],
                     layer.name + "_scales")
    if layer.interpolation == "nearest":
        attrs = dict(mode="nearest", coordinate_transformation_mode="asymmetric",
                     nearest_mode="floor")
    else:
        attrs = dict(mode="linear", coordinate_transformation_mode="half_pixel")
    return Value(b.op("Resize", [x.name, "", scales], layer.name, **attrs), out_shape, True)


@converts("ZeroPadding2D")
def _zero_pad(b, layer, x, out_shape):
    x = b.nchw(x)
    (top, bottom), (left, right) = layer.padding
    pads = b.const([0, 0, top, left, 0, 0, bottom, right], layer.name + "_pads", np.int64)
    return Value(b.op("Pad", [x.name, pads], layer.name, mode="constant"), out_shape, True)


@converts("Cropping2D")
def _crop(b, layer, x, out_shape):
    x = b.nchw(x)
    (top, bottom), (left, right) = layer.cropping
    h, w = x.shape[1:3]
    if h is None or w is None:
        raise NotExportable("Cropping2D with an unknown image size")
    starts = b.const([top, left], layer.name + "_starts", np.int64)
    ends = b.const([h - bottom, w - right], layer.name + "_ends", np.int64)
    axes = b.const([2, 3], layer.name + "_axes", np.int64)
    return Value(b.op("Slice", [x.name, starts, ends, axes], layer.name), out_shape, True)


# ------------------------------------------------------------------ merging

_VARIADIC = {"Add": "Sum", "Average": "Mean", "Maximum": "Max", "Minimum": "Min"}


@converts("Add", "Average", "Maximum", "Minimum", "Multiply", "Subtract")
def _merge(b, layer, xs, out_shape):
    xs = b.same_layout(xs)
    kind = type(layer).__name__
    if kind == "Subtract":
        return Value(b.op("Sub", [xs[0].name, xs[1].name], layer.name), out_shape, xs[0].nchw)
    if kind == "Multiply":
        name = xs[0].name
        for i, v in enumerate(xs[1:]):
            name = b.op("Mul", [name, v.name], layer.name if i == len(xs) - 2 else
                        layer.name + "_partial")
        return Value(name, out_shape, xs[0].nchw)
    return Value(b.op(_VARIADIC[kind], [v.name for v in xs], layer.name), out_shape, xs[0].nchw)


@converts("Concatenate")
def _concat(b, layer, xs, out_shape):
    xs = b.same_layout(xs)
    axis = b.axis(xs[0], layer.axis)
    return Value(b.op("Concat", [v.name for v in xs], layer.name, axis=axis), out_shape,
                 xs[0].nchw)


# ------------------------------------------------------------------ pass-through at inference

PASS_THROUGH = ("Dropout", "SpatialDropout2D", "GaussianNoise", "RandomFlip",
                "RandomTranslation", "RandomRotation", "RandomZoom", "RandomContrast",
                "InputLayer")
