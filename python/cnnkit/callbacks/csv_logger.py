"""CSVLogger: a line per epoch in a CSV file, as keras.callbacks.CSVLogger writes it (the
'epoch' column first, then the logs' keys sorted; without validation data, the val_ columns
anyway, holding 'NA'; lines end with '\\r\\n', the csv module's excel dialect).

Each epoch's line is added by rewriting the file atomically (_files.write_atomically), so a
crash never leaves a half-written line: the file holds whole lines only, and append=True can
always continue it.
"""
import collections.abc
import csv
import io
import os

import numpy as np

from . import _checks
from ._files import make_parent, write_atomically
from .base import Callback

__all__ = ["CSVLogger"]


def _cell(value):
    """A log value as Keras writes it: strings as they are, a 1-D sequence as "[a, b]"."""
    if isinstance(value, str):
        return value
    if isinstance(value, collections.abc.Iterable) and not (
            isinstance(value, np.ndarray) and value.ndim == 0):
        return f'"[{", ".join(map(str, value))}]"'
    return value


class CSVLogger(Callback):
    """CSVLogger(filename, separator=',', append=False): append=True continues an existing
    file (its header is written only when the file is new or empty)."""
    _chief_only = True  # distributed training: rank 0 alone runs it (cnnkit.distribute)

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        who = "CSVLogger"
        if not isinstance(filename, (str, os.PathLike)):
            raise TypeError(f"{who}: filename must be a path, got {filename!r}")
        self.filename = os.fspath(filename)
        if not self.filename:
            raise ValueError(f"{who}: filename must not be empty")
        if not isinstance(separator, str) or len(separator) != 1:
            raise TypeError(f"{who}: separator must be a one-character string, got {separator!r}")
        self.sep = separator
        self.append = _checks.flag(append, "append", who)
        self.keys = None
        self._content = b""
        self._header_written = False

    def on_train_begin(self, logs=None):
        self.keys = None
        self._content = b""
        if self.append and os.path.exists(self.filename):
            with open(self.filename, "rb") as f:
                self._content = f.read()
        self._header_written = bool(self._content)  # Keras: a header only in a new/empty file
        make_parent(self.filename)
        write_atomically(self.filename, self._content)  # append=False: the old file goes now

    def _line(self, values):
        out = io.StringIO()
        dialect = type("CSVLoggerDialect", (csv.excel,), {"delimiter": self.sep})
        csv.writer(out, dialect=dialect).writerow(values)
        return out.getvalue().encode("utf-8")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(k.startswith("val_") for k in self.keys):
                self.keys += [f"val_{k}" for k in self.keys]  # Keras' columns, then 'NA'
        lines = b""
        if not self._header_written:
            lines += self._line(["epoch"] + self.keys)
        lines += self._line([epoch] + [_cell(logs.get(k, "NA")) for k in self.keys])
        write_atomically(self.filename, self._content + lines)
        self._content += lines
        self._header_written = True

    def on_train_end(self, logs=None):
        self._content = b""
