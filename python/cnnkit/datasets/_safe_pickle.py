"""Unpickling that cannot run code: data set files arrive from the network and from users.

A pickle may name any importable callable and call it while loading, so a hostile file could run
anything through plain `pickle.load`. `load` allows only the handful of globals that numpy arrays
and byte strings need to be rebuilt (whichever pickle protocol and numpy version wrote them), and
the wrappers below refuse arguments that these files never use. Anything else raises
pickle.UnpicklingError before it is called.
"""
import codecs
import importlib
import pickle

import numpy as np


def _numpy_function(module, name):
    # numpy 2 moved numpy.core to numpy._core; files written by either name the one they knew.
    for prefix in ("numpy._core.", "numpy.core."):
        try:
            return getattr(importlib.import_module(prefix + module), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"numpy has no {module}.{name}")


class _NdarrayToken:
    """Stands for numpy.ndarray inside a pickle: usable only as _reconstruct's first argument,
    so a file cannot call the ndarray constructor directly."""


def _reconstruct(cls, shape, dtype_code):
    # Protocols 0-4: numpy pickles an array as _reconstruct(ndarray, (0,), b'b'), then fills it
    # through ndarray.__setstate__ with the real shape, dtype and bytes.
    if cls is not _NdarrayToken or tuple(shape) != (0,):
        raise pickle.UnpicklingError("refusing an unusual numpy array reconstruction")
    return _numpy_function("multiarray", "_reconstruct")(np.ndarray, shape, dtype_code)


def _frombuffer(buffer, dtype, shape, order):
    # Protocol 5: numpy pickles an array as _frombuffer(bytes, dtype, shape, order).
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError("refusing a numpy array of Python objects")
    return _numpy_function("numeric", "_frombuffer")(buffer, dtype, shape, order)


def _encode(text, encoding):
    # Protocol 2 from Python 3 stores bytes as _codecs.encode(str, 'latin1'); other codecs are
    # never needed, so they are refused.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("refusing _codecs.encode with anything but a latin1 string")
    return codecs.encode(text, "latin1")


_ALLOWED = {
    ("numpy", "ndarray"): _NdarrayToken,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("_codecs", "encode"): _encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def load(file):
    """Unpickles one object from a binary file object, allowing only numpy arrays and builtins.

    Strings written by Python 2 stay bytes (encoding='bytes'), as the CIFAR batches expect."""
    return _RestrictedUnpickler(file, encoding="bytes").load()
