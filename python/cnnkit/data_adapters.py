"""Streams of batches for fit, evaluate and predict, as Keras 3's data adapters and its
EpochIterator (keras/src/trainers/data_adapters/, keras/src/trainers/epoch_iterator.py).

A stream is x given as anything but arrays:
- a generator or other iterator of batches: read once; its batches run on from epoch to
  epoch (an epoch ends where the iterator or steps_per_epoch ends);
- an iterable dataset (cnnkit's image datasets, a torch DataLoader, any object with
  __iter__): a new iter() is one epoch; len() gives the number of batches when defined;
- a cnnkit.utils.PyDataset: batch i is dataset[i]; its on_epoch_begin/on_epoch_end hooks run
  around each epoch; workers > 1 read batches ahead in a thread pool, in order.
A batch is (x,), (x, y) or (x, y, sample_weight) (a list is taken as that tuple, as Keras'
PyDataset does), or x alone (an array or a dict of them). Each x, y, sample_weight may be a list
or dict for a model of several inputs or outputs, as the arrays fit takes.

EpochSteps runs the epochs: with steps_per_epoch, a pass over the data continues from epoch to
epoch, and an epoch that meets the end of the pass stops there with a warning; without it, an
epoch is one pass, and a pass of unknown length teaches the number of batches (for the
progress bar) when it ends.
"""
import collections
import collections.abc
import itertools
import numbers
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .utils.py_dataset import PyDataset

__all__ = ["is_stream", "Stream", "EpochSteps", "unpack"]


def is_stream(x):
    """Whether x is a stream of batches rather than array data (arrays, lists, dicts of
    arrays, or objects NumPy converts, such as a torch or jax array)."""
    if isinstance(x, PyDataset):
        return True
    if x is None or isinstance(x, (np.ndarray, list, tuple, dict, range, str, bytes,
                                   numbers.Number)):
        return False
    if hasattr(x, "__array__") or hasattr(x, "__array_interface__"):
        return False
    return hasattr(x, "__iter__") or hasattr(x, "__next__")


def kind_of(x):
    if isinstance(x, PyDataset):
        return "PyDataset"
    if isinstance(x, collections.abc.Iterator):
        return "generator" if hasattr(x, "send") else "iterator"
    return "dataset"


def reject(fn, x, **given):
    """Keras' errors for arguments a stream carries in its batches instead."""
    kind = kind_of(x)
    what = {"y": "the targets", "sample_weight": "the sample weights"}
    for name, value in given.items():
        if value is None:
            continue
        if name in what:
            raise ValueError(f"{fn}: when providing `x` as a {kind}, `{name}` should not be "
                             f"passed. Instead, {what[name]} should be included as part of the "
                             f"{kind}.")
        raise ValueError(f"{fn}: `{name}` is only supported for array data, not for x given "
                         f"as a {kind}")


def unpack(batch, fn, index):
    """(x, y, sample_weight) of one batch, None where the batch has none."""
    if isinstance(batch, list):
        batch = tuple(batch)
    if not isinstance(batch, tuple):
        return batch, None, None
    if len(batch) not in (1, 2, 3):
        raise ValueError(f"{fn}: batch {index} of the data is a tuple of {len(batch)} items; a "
                         "batch must be x, (x,), (x, y) or (x, y, sample_weight)")
    return tuple(batch) + (None,) * (3 - len(batch))


class Stream:
    """One source of batches: its kind, its number of batches when known, passes over it."""

    def __init__(self, data, fn, shuffle=False, generator=None):
        # generator: a function giving the numpy Generator that shuffles a PyDataset's
        # batches, called at the first shuffled pass (after the model drew its weights)
        self.data, self.fn = data, fn
        self.kind = kind_of(data)
        self.shuffle, self.generator = shuffle, generator
        self._open = []  # the passes cnnkit made (PyDataset reads, iter(dataset)), to close
        if self.kind == "PyDataset":
            count = data.num_batches
            if count is not None and (not isinstance(count, numbers.Integral) or count < 0):
                raise ValueError(f"{fn}: {type(data).__name__}.num_batches (its len()) must be "
                                 f"an integer >= 0 or None, got {count!r}")
            self.num_batches = None if count is None else int(count)
        elif self.kind == "dataset":
            try:
                self.num_batches = int(len(data))
            except TypeError:  # no __len__, or a len() that says it does not know
                self.num_batches = None
        else:
            self.num_batches = None
        if shuffle and not (self.kind == "PyDataset" and self.num_batches is not None):
            # Keras: only a PyDataset of known length shuffles (the order of its batches)
            warnings.warn(f"`shuffle=True` was passed, but will be ignored since the data `x` "
                          f"was provided as a {self.kind}. The {self.kind} is expected to "
                          "yield already-shuffled data.", UserWarning, stacklevel=4)

    def new_pass(self):
        """An iterator over the batches from the start (the same iterator again for an
        iterator, which cannot restart)."""
        if self.kind in ("generator", "iterator"):
            return self.data
        if self.kind == "dataset":
            iterator = iter(self.data)
        else:
            iterator = self._py_dataset_pass()
        self._open.append(iterator)
        return iterator

    def _py_dataset_pass(self):
        dataset, count = self.data, self.num_batches
        if count is None:
            indices = itertools.count()
        elif self.shuffle:
            indices = (int(i) for i in self.generator().permutation(count))
        else:
            indices = range(count)
        if dataset.use_multiprocessing:
            raise NotImplementedError(f"{self.fn}: use_multiprocessing=True is not supported by "
                                      "cnnkit; a PyDataset's workers are threads")
        if dataset.workers > 1:
            return _read_ahead(dataset, indices, dataset.workers, dataset.max_queue_size)
        return (dataset[i] for i in indices)

    def on_epoch_begin(self):
        if self.kind == "PyDataset":
            self.data.on_epoch_begin()

    def on_epoch_end(self):
        if self.kind == "PyDataset":
            self.data.on_epoch_end()

    def close(self):
        """Ends the passes cnnkit opened (stops a PyDataset's threads); a user's own
        iterator stays open, to be read on by a later call."""
        for iterator in self._open:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
        self._open = []


def _read_ahead(dataset, indices, workers, depth):
    """dataset[i] for i in indices, read by `workers` threads with up to `depth` batches in
    flight, yielded in order; an exception in __getitem__ is raised here, for its batch."""
    pool = ThreadPoolExecutor(workers, thread_name_prefix="cnnkit-PyDataset")
    pending = collections.deque()
    indices = iter(indices)
    try:
        for index in itertools.islice(indices, max(depth, workers)):
            pending.append(pool.submit(dataset.__getitem__, index))
        while pending:
            batch = pending.popleft().result()
            for index in itertools.islice(indices, 1):
                pending.append(pool.submit(dataset.__getitem__, index))
            yield batch
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)


class EpochSteps:
    """The batches of each epoch, as Keras' EpochIterator hands them out."""

    def __init__(self, stream, steps_per_epoch=None):
        self.stream, self.steps_per_epoch = stream, steps_per_epoch
        self.num_batches = stream.num_batches  # learned at the end of a pass when unknown
        self._iterator, self._seen = None, 0
        self._peeked = []  # the first batch, read by peek() before the first epoch
        self.ran_out = False  # the last epoch met the end of the data before steps_per_epoch

    @property
    def steps(self):
        """The steps of an epoch, None while unknown (the progress bar's target)."""
        return self.steps_per_epoch or self.num_batches

    def peek(self):
        """The first batch of the first pass, read now (fit builds the model from it) and
        handed out again as the first batch of the first epoch; None when there is none."""
        self._iterator, self._seen = iter(self.stream.new_pass()), 0
        try:
            batch = next(self._iterator)
        except StopIteration:
            self._iterator = None
            return None
        self._peeked = [batch]
        return batch

    def restart(self):
        """The next epoch starts a new pass (evaluate does, each time it runs)."""
        self._iterator, self._seen = None, 0

    def epoch(self):
        """(step, batch) for each batch of one epoch."""
        limit = self.steps
        self.ran_out = False
        self.stream.on_epoch_begin()
        try:
            if not self._peeked and (self._iterator is None or self.steps_per_epoch is None):
                self._iterator, self._seen = iter(self.stream.new_pass()), 0
            step = 0
            while limit is None or step < limit:
                if self.num_batches is not None and self._seen >= self.num_batches:
                    self.ran_out = self.steps_per_epoch is not None
                    break
                try:
                    batch = self._peeked.pop() if self._peeked else next(self._iterator)
                except StopIteration:
                    if self.num_batches is None and self.steps_per_epoch is None and step:
                        self.num_batches = step  # a pass of unknown length: now known
                    self._iterator = None
                    self.ran_out = self.steps_per_epoch is not None
                    break
                self._seen += 1
                yield step, batch
                step += 1
            if self.num_batches is not None and self._seen >= self.num_batches:
                self._iterator = None  # the pass is over: the next epoch starts another
        finally:
            self.stream.on_epoch_end()
