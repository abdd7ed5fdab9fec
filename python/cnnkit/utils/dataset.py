"""A small tf.data-like dataset of NumPy elements: what image_dataset_from_directory returns.

A Dataset is an iterable; each iter() is one epoch and builds a fresh pipeline of generators.
Transformations (take, map, batch, unbatch, shuffle, cache, prefetch) wrap the parent's epoch.
Every background thread lives inside a generator's try/finally: it starts at the first next()
and is stopped and joined when the epoch ends, fails, or is abandoned (break, del, close()), so
nothing can hang or leak. Elements are an array, or a tuple of arrays ((images, labels)).
"""
import collections
import math
import queue
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["Dataset", "AUTOTUNE"]

# tf.data.AUTOTUNE's value, so `ds.prefetch(tf.data.AUTOTUNE)` keeps working: a default depth.
AUTOTUNE = -1
_AUTOTUNE_DEPTH = 2


def _close(iterator):
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


def _check_count(name, value, allow_autotune=False, allow_negative_one=False):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"Dataset.{name}: expected an integer, got {value!r}")
    if allow_autotune and value == AUTOTUNE:
        return _AUTOTUNE_DEPTH
    if allow_negative_one and value == -1:
        return -1
    if value < (0 if name == "take" else 1):
        raise ValueError(f"Dataset.{name}: expected a positive integer, got {value}")
    return int(value)


def ordered_parallel_map(fn, items, num_threads, readahead):
    """Yields fn(item) for each item, in order, computed by `num_threads` worker threads that
    run at most `readahead` items ahead of the consumer. A worker's exception is re-raised here
    as the same object. Closing the generator cancels queued work and joins the workers."""
    items = iter(items)
    pending = collections.deque()
    executor = ThreadPoolExecutor(max_workers=num_threads, thread_name_prefix="cnnkit-data")
    try:
        def submit_next():
            for item in items:
                pending.append(executor.submit(fn, item))
                return

        for _ in range(readahead):
            submit_next()
        while pending:
            result = pending.popleft().result()
            submit_next()
            yield result
    finally:
        for future in pending:
            future.cancel()
        executor.shutdown(wait=True, cancel_futures=True)
        _close(items)


def _stack(elements):
    """[array, ...] -> array; [(a, b), ...] -> (stacked a, stacked b)."""
    if isinstance(elements[0], tuple):
        return tuple(np.stack(column) for column in zip(*elements))
    return np.stack(elements)


class Dataset:
    """An iterable of NumPy elements; `iter()` starts one epoch.

    len() is the number of elements when it is known (a TypeError otherwise, as for any Python
    object without a length). `class_names` and `file_paths` are kept through transformations.
    """

    def __init__(self, make_epoch, length=None, num_samples=None, parent=None):
        # make_epoch(): a generator over one epoch's elements. num_samples: the total of the
        # leading axes of the elements when they are batches (so unbatch() knows its length).
        self._make_epoch = make_epoch
        self._length = length
        self._num_samples = num_samples
        self.class_names = getattr(parent, "class_names", None)
        self.file_paths = getattr(parent, "file_paths", None)

    def __iter__(self):
        return self._make_epoch()

    def __len__(self):
        if self._length is None:
            raise TypeError("the number of elements of this Dataset is not known")
        return self._length

    def __repr__(self):
        length = "unknown" if self._length is None else self._length
        return f"<cnnkit Dataset: {length} elements>"

    def _derive(self, make_epoch, length=None, num_samples=None):
        return Dataset(make_epoch, length, num_samples, parent=self)

    def take(self, count):
        """The first `count` elements (all of them when count is -1)."""
        count = _check_count("take", count, allow_negative_one=True)
        if count == -1:
            return self._derive(self._make_epoch, self._length, self._num_samples)

        def epoch():
            it = iter(self)
            try:
                for _, element in zip(range(count), it):
                    yield element
            finally:
                _close(it)
        length = count if self._length is None else min(count, self._length)
        return self._derive(epoch, length)

    def map(self, map_func, num_parallel_calls=None, deterministic=None):
        """map_func(*element) for tuple elements, map_func(element) otherwise, as tf.data.
        With num_parallel_calls > 1 (or AUTOTUNE), that many threads apply it, in order."""
        if not callable(map_func):
            raise TypeError(f"Dataset.map: map_func must be callable, got {map_func!r}")
        threads = 1
        if num_parallel_calls is not None:
            threads = _check_count("map", num_parallel_calls, allow_autotune=True)
            if num_parallel_calls == AUTOTUNE:
                from .image_dataset import default_num_threads
                threads = default_num_threads()

        def apply(element):
            return map_func(*element) if isinstance(element, tuple) else map_func(element)

        def epoch():
            it = iter(self)
            try:
                if threads == 1:
                    for element in it:
                        yield apply(element)
                else:
                    yield from ordered_parallel_map(apply, it, threads, 2 * threads)
            finally:
                _close(it)
        return self._derive(epoch, self._length, self._num_samples)

    def batch(self, batch_size, drop_remainder=False):
        """Stacks consecutive elements into batches of `batch_size`."""
        batch_size = _check_count("batch", batch_size)

        def epoch():
            it = iter(self)
            try:
                pending = []
                for element in it:
                    pending.append(element)
                    if len(pending) == batch_size:
                        yield _stack(pending)
                        pending = []
                if pending and not drop_remainder:
                    yield _stack(pending)
            finally:
                _close(it)
        length = num_samples = None
        if self._length is not None:
            rounding = math.floor if drop_remainder else math.ceil
            length = rounding(self._length / batch_size)
            num_samples = length * batch_size if drop_remainder else self._length
        return self._derive(epoch, length, num_samples)

    def unbatch(self):
        """Splits each batch into its samples along the first axis."""
        def epoch():
            it = iter(self)
            try:
                for element in it:
                    if isinstance(element, tuple):
                        yield from zip(*element)
                    else:
                        yield from element
            finally:
                _close(it)
        return self._derive(epoch, self._num_samples)

    def shuffle(self, buffer_size, seed=None, reshuffle_each_iteration=True):
        """tf.data's buffered shuffle: each element is drawn at random from a buffer of the next
        `buffer_size` elements. Each epoch draws anew (unless reshuffle_each_iteration=False),
        deterministically from `seed`."""
        buffer_size = _check_count("shuffle", buffer_size)
        if seed is None:
            from . import global_generator
            seed = int(global_generator().integers(2**63))
        epochs = [0]

        def epoch():
            rng = np.random.default_rng([seed, epochs[0]])
            if reshuffle_each_iteration:
                epochs[0] += 1
            it = iter(self)
            try:
                buffer = []
                for element in it:
                    if len(buffer) < buffer_size:
                        buffer.append(element)
                        continue
                    slot = int(rng.integers(buffer_size))
                    yield buffer[slot]
                    buffer[slot] = element
                for slot in rng.permutation(len(buffer)):
                    yield buffer[slot]
            finally:
                _close(it)
        return self._derive(epoch, self._length, self._num_samples)

    def cache(self):
        """Keeps the elements of the first complete epoch in memory and replays them after
        (an epoch abandoned midway caches nothing). The cached arrays are made read-only, so an
        in-place change raises instead of altering later epochs."""
        store = []

        def epoch():
            if store:
                yield from store[0]
                return
            it = iter(self)
            elements = []
            try:
                for element in it:
                    for array in (element if isinstance(element, tuple) else (element,)):
                        if isinstance(array, np.ndarray):
                            array.flags.writeable = False
                    elements.append(element)
                    yield element
                if not store:
                    store.append(elements)
            finally:
                _close(it)
        return self._derive(epoch, self._length, self._num_samples)

    def prefetch(self, buffer_size):
        """Computes up to `buffer_size` elements ahead in a background thread."""
        depth = _check_count("prefetch", buffer_size, allow_autotune=True)
        return self._derive(lambda: _prefetch_epoch(self, depth), self._length, self._num_samples)


_ELEMENT, _END, _ERROR = 0, 1, 2


def _prefetch_epoch(parent, depth):
    slots = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(message):
        while not stop.is_set():
            try:
                slots.put(message, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def produce():
        it = None
        try:
            it = iter(parent)
            for element in it:
                if not put((_ELEMENT, element)):
                    return
            put((_END, None))
        except BaseException as error:  # noqa: BLE001 - handed to the consumer as it is
            put((_ERROR, error))
        finally:
            if it is not None:
                _close(it)

    producer = threading.Thread(target=produce, name="cnnkit-prefetch", daemon=True)
    producer.start()
    try:
        while True:
            kind, value = slots.get()
            if kind == _END:
                return
            if kind == _ERROR:
                raise value
            yield value
    finally:
        stop.set()
        while producer.is_alive():
            try:  # free a slot so a producer blocked in put() sees `stop`
                slots.get(timeout=0.05)
            except queue.Empty:
                pass
        producer.join()
