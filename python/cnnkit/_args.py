"""Argument normalisation and validation shared by cnnkit.ops and cnnkit.reference.

Everything a user can pass wrongly is caught here, with a message that starts with the public
function's name (`fn`) and names the argument, so that the C++ bindings only ever see arrays
and sizes they can trust. Sizes and paddings follow Keras exactly; arrays are converted once,
knowingly, to a C-contiguous array of the working dtype.
"""
import math
import numbers
from typing import NamedTuple

import numpy as np

PADDINGS = ("valid", "same")


class Window2d(NamedTuple):
    """The geometry of a convolution or pooling window over an NHWC batch (cnnkit.h: Window2d).

    PT/PL are the padding rows/columns before the first row/column; the bottom and right
    padding follow from OH and OW. DH/DW: the dilation of a convolution's kernel (1 for
    pooling)."""
    N: int
    H: int
    W: int
    C: int
    KH: int
    KW: int
    SH: int
    SW: int
    PT: int
    PL: int
    OH: int
    OW: int
    DH: int = 1
    DW: int = 1


def _prefix(fn):
    return f"{fn}: " if fn else ""


def _is_int(value):
    # bool is an int to Python, but True as a stride is a bug, not a 1.
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


# ---------------------------------------------------------------- scalars and tuples

def pair(value, name, fn=None):
    """3 or (3, 3) or [3, 3] -> (3, 3), as Keras accepts; each must be a positive integer."""
    values = (value, value) if _is_int(value) else value
    wrong = f"{_prefix(fn)}{name} must be an integer or a tuple of 2 integers, got {value!r}"
    try:
        values = tuple(values)
    except TypeError:
        raise TypeError(wrong) from None
    if not all(_is_int(v) for v in values):
        raise TypeError(wrong)
    if len(values) != 2:
        raise ValueError(wrong)
    if min(values) < 1:
        raise ValueError(f"{_prefix(fn)}{name} must be positive integers, got {value!r}")
    return int(values[0]), int(values[1])


def padding_mode(value, fn=None):
    """'valid' or 'same', in any case as Keras allows -> the lower-case name."""
    mode = value.lower() if isinstance(value, str) else None
    if mode not in PADDINGS:
        raise ValueError(f"{_prefix(fn)}padding must be 'valid' or 'same', got {value!r}")
    return mode


def positive_int(value, name, fn=None):
    """An integer >= 1 (not a bool), e.g. Adam's step."""
    if not _is_int(value):
        raise TypeError(f"{_prefix(fn)}{name} must be an integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{_prefix(fn)}{name} must be a positive integer, got {value!r}")
    return int(value)


def real_number(value, name, fn=None, low=-math.inf, high=math.inf, include_high=True):
    """A finite real number (not a bool) -> float, in [low, high] (or [low, high))."""
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{_prefix(fn)}{name} must be a real number, got {value!r}")
    value = float(value)
    above = value > high if include_high else value >= high
    if not math.isfinite(value) or value < low or above:
        interval = f"[{low}, {high}{']' if include_high else ')'}"
        raise ValueError(f"{_prefix(fn)}{name} must be a finite number in {interval}, "
                         f"got {value!r}")
    return value


def flag(value, name, fn=None):
    """A bool (Python or numpy) -> bool; 0, 1 or 'yes' are rejected as likely mistakes."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{_prefix(fn)}{name} must be True or False, got {value!r}")
    return bool(value)


# ---------------------------------------------------------------- arrays

def working_dtype(*values):
    """The reference's dtype: float64 when any argument is a float64 array (so that finite
    differences work), float32 otherwise. cnnkit.ops always works in float32."""
    given = [getattr(v, "dtype", None) for v in values]
    return np.float64 if any(d == np.float64 for d in given) else np.float32


def c_array(x, dtype):
    """x as a C-contiguous, aligned array of dtype: no copy if it already is one. np.asarray
    with order='C' keeps a view whose data starts mid-element (the kernels refuse it), and
    np.ascontiguousarray turns a 0-d array into a 1-d one."""
    array = np.asarray(x, dtype=dtype, order="C")
    return array if array.flags.aligned else array.copy()


def kernel_ready(x):
    """Whether the C++ kernels take x as it is (no copy, no conversion): a non-empty float32
    ndarray, C-contiguous and aligned."""
    return (isinstance(x, np.ndarray) and x.dtype == np.float32 and x.flags.c_contiguous
            and x.flags.aligned and x.size > 0)


def float_array(x, name, ndim=None, dtype=np.float32, fn=None):
    """x as a C-contiguous array of `dtype`, converted once (no copy if it already is one).

    Any real floating dtype is accepted; integer, bool, complex and object arrays are a
    TypeError (a silently truncated image or a class index mistaken for a value is a bug).
    A wrong rank or an empty array is a ValueError. ndim=None accepts any rank."""
    try:
        array = np.asarray(x)
    except (ValueError, TypeError):  # ragged lists and the like
        raise TypeError(f"{_prefix(fn)}{name} must be a floating-point array, got "
                        f"{type(x).__name__}") from None
    if array.dtype.kind != "f":
        raise TypeError(f"{_prefix(fn)}{name} must be a floating-point array, got dtype "
                        f"{array.dtype}")
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{_prefix(fn)}{name} must be {ndim}-D, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{_prefix(fn)}{name} is empty (shape {array.shape})")
    return c_array(array, dtype)


def expect_shape(array, shape, name, what, fn=None):
    """ValueError unless array.shape == shape; `what` says where the expected shape comes
    from, e.g. 'the output of this convolution'."""
    if array.shape != tuple(shape):
        raise ValueError(f"{_prefix(fn)}{name} has shape {array.shape} but {what} is "
                         f"{tuple(shape)}")


def float_array_like(x, name, shape, what, dtype=np.float32, fn=None):
    """float_array(x) that must have exactly `shape` (dy against the forward output, y_true
    against y_pred, ...)."""
    array = float_array(x, name, dtype=dtype, fn=fn)
    expect_shape(array, shape, name, what, fn)
    return array


def target_array(y_true, shape, dtype=np.float32, fn=None):
    """y_true of a regression or binary loss, as a (shape) array of dtype. Unlike float_array
    it accepts integer and bool targets (0/1 labels), which Keras casts to the prediction's
    dtype; complex and object arrays are still a TypeError."""
    try:
        array = np.asarray(y_true)
    except (ValueError, TypeError):
        array = None  # float_array below says what is wrong with it
    if array is None:
        array = y_true
    elif array.dtype.kind in "biu":
        array = array.astype(dtype)
    array = float_array(array, "y_true", dtype=dtype, fn=fn)
    expect_shape(array, shape, "y_true", "y_pred's shape", fn)
    return array


def bias_array(b, units, dtype=np.float32, fn=None):
    """None, or b as a (units,) array."""
    if b is None:
        return None
    return float_array_like(b, "b", (units,), f"the layer has {units} outputs, so the expected "
                            "shape", dtype, fn)


def inplace_arrays(shape, dtypes=(np.float32,), fn=None, **arrays):
    """Checks arrays updated in place (param, m, v, velocity): each a numpy array of one of
    `dtypes`, all the same dtype, C-contiguous, writeable and of `shape` (the gradient's).
    A copy would be updated and then lost, so nothing here converts. Returns the common dtype."""
    allowed = " or ".join(np.dtype(d).name for d in dtypes)
    for name, array in arrays.items():
        if not isinstance(array, np.ndarray) or array.dtype not in [np.dtype(d) for d in dtypes]:
            got = f"dtype {array.dtype}" if isinstance(array, np.ndarray) else type(array).__name__
            raise TypeError(f"{_prefix(fn)}{name} is updated in place and must be a {allowed} "
                            f"numpy array, got {got}")
        if not array.flags.c_contiguous or not array.flags.aligned:
            raise ValueError(f"{_prefix(fn)}{name} is updated in place and must be C-contiguous "
                             "and aligned")
        if not array.flags.writeable:
            raise ValueError(f"{_prefix(fn)}{name} is updated in place and must be writeable")
        expect_shape(array, shape, name, "grad's shape", fn)
    kinds = {name: array.dtype for name, array in arrays.items()}
    if len(set(kinds.values())) > 1:
        listed = ", ".join(f"{name} is {d}" for name, d in kinds.items())
        raise TypeError(f"{_prefix(fn)}the arrays updated in place must share one dtype: {listed}")
    return next(iter(kinds.values()))


def class_labels(y_true, logits_shape, dtype=np.float32, fn=None):
    """y_true for a (N, K) batch of logits -> (onehot, indices), exactly one of them None.

    An integer array of shape (N,) or (N, 1) holds class indices in [0, K) -> int64 (N,);
    anything else must be a floating one-hot (or soft) array of shape (N, K)."""
    n, k = logits_shape
    try:
        array = np.asarray(y_true)
    except (ValueError, TypeError):
        array = None  # float_array below says what is wrong with it
    if array is not None and array.dtype.kind in "iu":
        if array.shape not in ((n,), (n, 1)):
            raise ValueError(f"{_prefix(fn)}y_true holds class indices and must have shape "
                             f"({n},) or ({n}, 1) for logits {tuple(logits_shape)}, got "
                             f"{array.shape}")
        indices = c_array(array.reshape(n), np.int64)
        bad = indices[(indices < 0) | (indices >= k)]
        if bad.size:
            raise ValueError(f"{_prefix(fn)}y_true holds class index {bad[0]}, outside [0, {k}) "
                             f"for K={k} classes")
        return None, indices
    onehot = float_array(y_true, "y_true", dtype=dtype, fn=fn)
    if onehot.shape != (n, k):
        raise ValueError(f"{_prefix(fn)}y_true has shape {onehot.shape} but one-hot labels for "
                         f"logits of shape {tuple(logits_shape)} must have shape ({n}, {k}) "
                         "(class indices must be an integer array)")
    return onehot, None


# ---------------------------------------------------------------- geometry

def _window_1d(size, k, s, mode):
    """(out, pad_before) along one axis, exactly as Keras (TensorFlow) computes them."""
    if mode == "valid":
        return (size - k) // s + 1, 0
    out = -(-size // s)  # ceil(size / s)
    pad_total = max((out - 1) * s + k - size, 0)
    return out, pad_total // 2  # the odd row or column goes to the bottom or right


def window_geometry(x_shape, window, strides, padding, fn=None, what="kernel"):
    """Window2d of a (kh, kw) window with the given strides and padding over x (N, H, W, C).
    window and strides are already normalised pairs; padding is checked here."""
    mode = padding_mode(padding, fn)
    n, h, w, c = x_shape
    (kh, kw), (sh, sw) = window, strides
    if mode == "valid" and (kh > h or kw > w):
        raise ValueError(f"{_prefix(fn)}the {kh}x{kw} {what} is larger than the {h}x{w} input "
                         "(padding='valid')")
    oh, pt = _window_1d(h, kh, sh, mode)
    ow, pl = _window_1d(w, kw, sw, mode)
    return Window2d(int(n), int(h), int(w), int(c), kh, kw, sh, sw, pt, pl, oh, ow)


def conv_geometry(x_shape, w_shape, strides, padding, fn=None):
    """Window2d of conv2d(x (N,H,W,C), w (KH,KW,C,OC)); checks that the channels agree."""
    if x_shape[3] != w_shape[2]:
        raise ValueError(f"{_prefix(fn)}x has {x_shape[3]} channels but w expects {w_shape[2]} "
                         f"(x has shape {tuple(x_shape)}, w has shape {tuple(w_shape)})")
    return window_geometry(x_shape, (int(w_shape[0]), int(w_shape[1])),
                           pair(strides, "strides", fn), padding, fn)


def pool_geometry(x_shape, pool_size, strides, padding, fn=None):
    """Window2d of a pooling over x (N,H,W,C); strides=None means strides = pool_size."""
    window = pair(pool_size, "pool_size", fn)
    steps = window if strides is None else pair(strides, "strides", fn)
    return window_geometry(x_shape, window, steps, padding, fn, what="pool window")


def dense_sizes(x_shape, w_shape, fn=None):
    """(B, IN, OUT) of dense(x (B, IN), w (IN, OUT)); checks that the features agree."""
    if x_shape[1] != w_shape[0]:
        raise ValueError(f"{_prefix(fn)}x has {x_shape[1]} features but w expects {w_shape[0]} "
                         f"(x has shape {tuple(x_shape)}, w has shape {tuple(w_shape)})")
    return int(x_shape[0]), int(x_shape[1]), int(w_shape[1])


# ---------------------------------------------------------------- augmentation

INTERPOLATIONS = ("bilinear", "nearest")
FILL_MODES = ("reflect", "wrap", "nearest", "constant")


def one_of(value, name, options, fn=None):
    """A string among `options` (compared exactly, as Keras does) -> the string."""
    listed = ", ".join(repr(o) for o in options)
    if not isinstance(value, str):
        raise TypeError(f"{_prefix(fn)}{name} must be one of {listed}, got {value!r}")
    if value not in options:
        raise ValueError(f"{_prefix(fn)}{name} must be one of {listed}, got {value!r}")
    return value


def factor_range(factor, name, fn=None, low=-1.0, high=1.0, symmetric=True):
    """Keras' factor of a random augmentation -> (lower, upper). A number f gives (-|f|, |f|)
    (or (f, f) with symmetric=False, for RandomContrast's [1 - f, 1 + f]); a pair is sorted.
    Every number must lie in [low, high]."""
    wrong = (f"{_prefix(fn)}{name} must be a number in [{low}, {high}] or a tuple of 2 such "
             f"numbers, got {factor!r}")
    def number(value):
        if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
            raise TypeError(wrong)
        if not low <= float(value) <= high:  # NaN fails too
            raise ValueError(wrong)
        return float(value)
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2:
            raise ValueError(wrong)
        return tuple(sorted(number(v) for v in factor))
    f = abs(number(factor))
    return (-f, f) if symmetric else (f, f)


def factor_config(factor):
    """A factor as get_config stores it (JSON): a float, or a list of 2 floats as given."""
    return [float(v) for v in factor] if isinstance(factor, (tuple, list)) else float(factor)


def value_range(value, fn=None):
    """(low, high) with low < high, both finite -> a tuple of 2 floats."""
    wrong = f"{_prefix(fn)}value_range must be a tuple (low, high) with low < high, got {value!r}"
    try:
        low, high = value
    except (TypeError, ValueError):
        raise ValueError(wrong) from None
    low, high = real_number(low, "value_range", fn), real_number(high, "value_range", fn)
    if not low < high:
        raise ValueError(wrong)
    return low, high


def seed(value, fn=None):
    """None, or a non-negative integer (a generator seed) -> None or int."""
    if value is None:
        return None
    if not _is_int(value):
        raise TypeError(f"{_prefix(fn)}seed must be a non-negative integer or None, got {value!r}")
    if value < 0:
        raise ValueError(f"{_prefix(fn)}seed must be a non-negative integer or None, got {value!r}")
    return int(value)


def per_image(values, n, name, dtype, row=(), fn=None):
    """One parameter (of shape `row`) per image of a batch of n: a single value for every image,
    or one per image -> a C-contiguous (n, *row) array of dtype. Integers where dtype is an
    integer type, bools where it is bool, real numbers where it is float."""
    array = np.asarray(values)
    kinds = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}[np.dtype(dtype).kind]
    if array.dtype.kind not in kinds:
        what = {"b": "bools", "iu": "integers", "iuf": "real numbers"}[kinds]
        raise TypeError(f"{_prefix(fn)}{name} must hold {what}, got dtype {array.dtype}")
    row = tuple(row)
    if array.shape == row:
        array = np.broadcast_to(array, (n,) + row)
    elif array.shape != (n,) + row:
        raise ValueError(f"{_prefix(fn)}{name} must have shape {shape_str(row)} or "
                         f"{shape_str((n,) + row)} for a batch of {n} images, got {array.shape}")
    return c_array(array, dtype)


def shape_str(shape):
    """(3,) or (None, 32, 32, 3), as Python writes a tuple (None for an open size)."""
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
