"""PyDataset: a dataset of batches written in Python, as keras.utils.PyDataset (alias
Sequence, as in Keras 3).

A subclass defines `__len__` (the number of batches; or a `num_batches` property that may be
None for an endless dataset) and `__getitem__(index)` (one whole batch: `(x, y)`,
`(x, y, sample_weight)`, or x alone). fit/evaluate/predict read batch 0, 1, ... in order (fit
with shuffle=True reads the batches of each epoch in a shuffled order, as Keras does), and call
`on_epoch_begin()` / `on_epoch_end()` around each epoch.

workers > 1: fit reads the batches ahead in a pool of that many threads, keeping at most
max_queue_size batches in flight, and hands them to the model in order. cnnkit has no
process pool: use_multiprocessing=True is refused when the dataset is made (threads help when
__getitem__ waits on files or releases the GIL in NumPy or Pillow).
"""
import itertools

import numpy as np

from .._args import _is_int

__all__ = ["PyDataset", "Sequence"]


class PyDataset:
    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        name = type(self).__name__
        if not _is_int(workers) or workers < 1:
            raise ValueError(f"{name}: workers must be an integer >= 1, got {workers!r}")
        if not _is_int(max_queue_size) or max_queue_size < 1:
            raise ValueError(f"{name}: max_queue_size must be an integer >= 1, got "
                             f"{max_queue_size!r}")
        if not isinstance(use_multiprocessing, (bool, np.bool_)):
            raise ValueError(f"{name}: use_multiprocessing must be True or False, got "
                             f"{use_multiprocessing!r}")
        if use_multiprocessing:
            raise NotImplementedError(
                f"{name}: use_multiprocessing=True is not supported by cnnkit, which reads a "
                "PyDataset's batches in threads only; pass workers=N with "
                "use_multiprocessing=False")
        self._workers = int(workers)
        self._use_multiprocessing = False
        self._max_queue_size = int(max_queue_size)

    # A subclass that forgot super().__init__() still works with the defaults, as in Keras.
    @property
    def workers(self):
        return getattr(self, "_workers", 1)

    @workers.setter
    def workers(self, value):
        self._workers = value

    @property
    def use_multiprocessing(self):
        return getattr(self, "_use_multiprocessing", False)

    @use_multiprocessing.setter
    def use_multiprocessing(self, value):
        self._use_multiprocessing = value

    @property
    def max_queue_size(self):
        return getattr(self, "_max_queue_size", 10)

    @max_queue_size.setter
    def max_queue_size(self, value):
        self._max_queue_size = value

    def __getitem__(self, index):
        """The batch at position `index`."""
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__(index), "
                                  "returning one batch")

    @property
    def num_batches(self):
        """The number of batches (len(self)), or None for an endless dataset."""
        if hasattr(self, "__len__"):
            return len(self)
        raise NotImplementedError(f"{type(self).__name__} must define __len__ (the number of "
                                  "batches) or a num_batches property (None when endless)")

    def __iter__(self):
        # Iterating by hand reads the batches in order, without workers (as in Keras).
        count = self.num_batches
        for index in (itertools.count() if count is None else range(count)):
            yield self[index]

    def on_epoch_begin(self):
        """Called at the start of every epoch."""

    def on_epoch_end(self):
        """Called at the end of every epoch (e.g. to shuffle the samples)."""


Sequence = PyDataset  # Keras 3 exports the same class under both names
