"""Argument checks of the pooling family that cnnkit._args does not have: the rows and columns
of ZeroPadding2D and Cropping2D, and UpSampling2D's interpolation. Shared by cnnkit.ops.pool,
cnnkit.reference.pool and the layers, so that all three accept and refuse the same values."""
from ._args import _is_int, _prefix

UPSAMPLING_INTERPOLATIONS = ("nearest", "bilinear")


def _side_pair(value, name, fn):
    """An int n -> (n, n); a pair of ints -> the pair. Every entry an integer >= 0."""
    wrong = (f"{_prefix(fn)}{name} must be an integer or a tuple of 2 integers, got {value!r}")
    values = (value, value) if _is_int(value) else value
    if not isinstance(values, (tuple, list)) or not all(_is_int(v) for v in values):
        raise TypeError(wrong)
    if len(values) != 2:
        raise ValueError(wrong)
    if min(values) < 0:
        raise ValueError(f"{_prefix(fn)}{name} must not be negative, got {value!r}")
    return int(values[0]), int(values[1])


def border_2d(value, name, fn=None):
    """Keras' padding of ZeroPadding2D / cropping of Cropping2D -> ((top, bottom), (left, right)).

    An int n: n on every side; a pair (h, w): h rows above and below, w columns left and right;
    a pair of pairs ((top, bottom), (left, right)). Every entry an integer >= 0."""
    shapes = ("an integer, a tuple of 2 integers (rows, columns) or a tuple of 2 tuples of 2 "
              "integers ((top, bottom), (left, right))")
    if _is_int(value):
        rows = cols = _side_pair(value, name, fn)
        return rows, cols
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{_prefix(fn)}{name} must be {shapes}, got {value!r}")
    if len(value) != 2:
        raise ValueError(f"{_prefix(fn)}{name} must be {shapes}, got {value!r}")
    if all(_is_int(v) for v in value):
        rows, cols = (_side_pair(v, name, fn) for v in value)
        return rows, cols
    if all(isinstance(v, (tuple, list)) for v in value):
        return (_side_pair(value[0], f"{name}[0] (top, bottom)", fn),
                _side_pair(value[1], f"{name}[1] (left, right)", fn))
    raise TypeError(f"{_prefix(fn)}{name} must be {shapes}, got {value!r}")


def upsampling_interpolation(value, fn=None):
    """'nearest' or 'bilinear', in any case as Keras lower-cases it -> the lower-case name."""
    listed = ", ".join(repr(o) for o in UPSAMPLING_INTERPOLATIONS)
    if not isinstance(value, str):
        raise TypeError(f"{_prefix(fn)}interpolation must be one of {listed}, got {value!r}")
    if value.lower() not in UPSAMPLING_INTERPOLATIONS:
        raise ValueError(f"{_prefix(fn)}interpolation must be one of {listed} (cnnkit has no "
                         f"other), got {value!r}")
    return value.lower()
