"""ParallelFit: what a model's fit (and evaluate) does differently on several ranks; the trainer
asks it at a few points (trainer.py, "distributed" in its comments).

- check_start: every rank describes its cnnkit version, model, optimizer, loss, data and fit
  arguments; any difference from rank 0 is a ValueError on every rank, before any training.
- broadcast_state: rank 0's weights, optimizer state (iterations, slots, learning rate), the
  model's generators (shuffling, dropout) and the position a BackupAndRestore backup resumes at.
- shard: this rank's slice of a global batch (sizes differ by at most one sample).
- buckets: the GradientBuckets of the training step's plan.
- sync_metrics: the loss and metrics summed over the ranks (each rank's running values are its
  own until then).
- agree_batch: for a stream of batches, every rank must hold a batch of the same size and
  content at each step (each rank reads the same stream and keeps its slice of every batch).
"""
import contextlib
import zlib

import numpy as np

from .gradient_buckets import GradientBuckets
from .metric_sync import sum_metric_states
from .strategy import distribution

__all__ = ["begin", "current", "ParallelFit"]

_current = [None]  # the ParallelFit whose fit or evaluate runs (BatchNormalization reads it)


def current():
    return _current[0]


def begin(model):
    """The ParallelFit of this model's fit or evaluate, or None when it runs on one process."""
    strategy = getattr(model, "_distribution", None) or distribution()
    if strategy is None or strategy.world.size == 1:
        return None
    return ParallelFit(model, strategy)


class ParallelFit:
    def __init__(self, model, strategy):
        self.model, self.strategy = model, strategy
        self.world = strategy.world
        self.rank, self.size = self.world.rank, self.world.size
        self.chief = self.rank == 0
        self.sync_batch_norm = strategy.sync_batch_norm
        self.scale = 1.0  # this rank's share of the running step's global batch
        self._buckets = (None, None)
        self._flag = np.zeros(1, np.int64)

    @contextlib.contextmanager
    def running(self):
        """While fit runs: BatchNormalization finds this ParallelFit; an exception tells the
        other ranks which rank failed, and why, before it propagates."""
        previous, _current[0] = _current[0], self
        try:
            yield self
        except BaseException as error:
            self.world.fail(error)
            raise
        finally:
            _current[0] = previous

    # ------------------------------------------------------------ the start
    def check_start(self, what, **description):
        """Refuses, on every rank, a fit whose ranks differ in what they would train."""
        from .. import __version__
        model = self.model
        description = {
            "cnnkit version": __version__,
            "model": [f"{type(layer).__name__} {[tuple(w.shape) for w in layer.weights]}"
                      for layer in model._flat_layers()],
            "optimizer": f"{type(model.optimizer).__name__} {_config(model.optimizer)}",
            "loss": repr([(name, type(loss).__name__, weight)
                          for name, loss, weight, _ in model._per_output()]),
            "sync_batch_norm": self.sync_batch_norm,
            **description}
        everyone = self.world.allgather_object(description, f"{what}: comparing the ranks")
        problems = []
        for key, ours in everyone[0].items():
            for rank, theirs in enumerate(everyone):
                value = theirs.get(key)
                if value != ours:
                    problems.append(f"{key}: rank 0 has {_difference(ours, value)[0]}, rank "
                                    f"{rank} has {_difference(ours, value)[1]}")
                    break
        if problems:
            raise ValueError(f"{what}: the ranks would not train the same model, so "
                             "distributed training refuses to start. " + "; ".join(problems))

    def broadcast_state(self, what):
        """Rank 0's training state on every rank."""
        model, world = self.model, self.world
        _broadcast_arrays(world, model.weights, f"{what}: the weights")
        optimizer = model.optimizer
        rate = optimizer._learning_rate
        meta = world.broadcast_object({
            "layers": [layer.get_state() for layer in model._flat_layers()],
            "shuffle": model._shuffle_generator().bit_generator.state,
            "resume": getattr(model, "_resume_at", None),
            "iterations": optimizer.iterations, "built": optimizer.built,
            "learning_rate": rate if isinstance(rate, float) else None,
        } if self.chief else None, f"{what}: the training state")
        if not self.chief:
            for layer, state in zip(model._flat_layers(), meta["layers"]):
                layer.set_state(state)
            # in place: fit holds this generator
            model._shuffle_generator().bit_generator.state = meta["shuffle"]
            model._resume_at = meta["resume"]
            if meta["learning_rate"] is not None:
                optimizer.learning_rate = meta["learning_rate"]
            if meta["built"] and not optimizer.built:
                optimizer.build(model.trainable_weights)
            elif not meta["built"] and optimizer.built:
                optimizer.set_state(meta["iterations"], [], model.trainable_weights)
            optimizer.iterations = meta["iterations"]
        if meta["built"]:
            _broadcast_arrays(world, optimizer.variables, f"{what}: the optimizer state")
        optimizer._restore_scalars()

    def callbacks(self, callbacks):
        """Rank 0 runs every callback; the others leave out those that write files."""
        if self.chief or callbacks is None:
            return callbacks
        return [c for c in callbacks if not getattr(c, "_chief_only", False)]

    # ------------------------------------------------------------ steps
    def shard(self, batch):
        """(start, stop) of this rank's part of a global batch of `batch` samples."""
        base, extra = divmod(batch, self.size)
        start = self.rank * base + min(self.rank, extra)
        return start, start + base + (self.rank < extra)

    def buckets(self, plan, graph, sources):
        key, buckets = self._buckets
        if key is not plan:
            buckets = GradientBuckets(self.world, graph, sources, self.strategy.bucket_bytes)
            self._buckets = (plan, buckets)
        return buckets

    def agree_batch(self, batch_size, fingerprint, fn, step):
        """For streams: whether every rank holds step's batch (False when none does), after
        checking that all hold the same one (size and content)."""
        has = int(batch_size is not None)
        size, print_ = (batch_size or 0), (fingerprint or 0)
        flags = np.array([has, -has, size, -size, print_, -print_], np.int64)
        self.world.allreduce(flags, f"{fn}: batch {step}", "max")
        if flags[0] == 0:
            return False
        if flags[0] == -flags[1] and flags[2] == -flags[3] and flags[4] == -flags[5]:
            return True
        everyone = self.world.allgather_object((has, size, print_), f"{fn}: batch {step}")
        missing = [r for r, (h, _, _) in enumerate(everyone) if not h]
        if missing:
            raise ValueError(f"{fn}: the data of rank(s) {missing} ran out at batch {step}, "
                             "while the other ranks' goes on: every rank must read the same "
                             "stream of batches")
        raise ValueError(f"{fn}: the ranks read different batches at batch {step} (sizes "
                         f"{[s for _, s, _ in everyone]}): every rank must read the same "
                         "stream of batches, in the same order (seed its shuffling)")

    def agree_stop(self, stop, where):
        """Whether any rank's stop_training is set (a callback may set it on one rank)."""
        flag = self._flag
        flag[0] = int(bool(stop))
        self.world.allreduce(flag, f"fit: stop_training after batch {where}", "max")
        return bool(flag[0])

    def sync_metrics(self, what):
        sum_metric_states(self.model.metrics, self.world, what)

    def idle_batch_norm(self, graph, training):
        """A rank without samples in a step still takes part in each synchronized
        BatchNormalization's collectives (zeros), in the order the others run them."""
        layers = _synchronized_calls(graph, training, self.sync_batch_norm)
        for layer in layers:
            layer._sync_idle(self, "forward")
        for layer in reversed(layers):
            layer._sync_idle(self, "backward")


def fingerprint(arrays):
    """A cheap checksum of arrays' shapes and up to 16 of their rows."""
    crc = 0
    for a in arrays:
        a = np.asarray(a)
        crc = zlib.crc32(repr((a.shape, a.dtype.str)).encode(), crc)
        if a.ndim and len(a):
            rows = np.unique(np.linspace(0, len(a) - 1, min(len(a), 16)).astype(np.int64))
            crc = zlib.crc32(np.ascontiguousarray(a[rows]).tobytes(), crc)
    return crc


def describe(data):
    """What check_start compares of fit's validation_data: None, a stream's kind, or the
    arrays' sample count and fingerprint."""
    from ..data_adapters import is_stream, kind_of
    if data is None:
        return None
    if is_stream(data):
        return ("stream", kind_of(data))
    try:
        parts = [np.asarray(part) for part in tuple(data)[:2]]
    except (TypeError, ValueError):  # several inputs: a list of arrays of other shapes
        return ("arrays", len(data))
    return (len(parts[0]) if parts and parts[0].ndim else 0, fingerprint(parts))


def _broadcast_arrays(world, arrays, what):
    if not arrays:
        return
    flat = np.concatenate([np.asarray(a, np.float32).ravel() for a in arrays])
    world.broadcast(flat, what)
    offset = 0
    for a in arrays:
        np.copyto(a, flat[offset:offset + a.size].reshape(a.shape))
        offset += a.size


def _config(optimizer):
    try:
        return repr(sorted(optimizer.get_config().items()))
    except TypeError:  # a plain callable learning rate
        return type(optimizer._learning_rate).__name__


def _difference(ours, theirs):
    """The first differing item of two lists (the layer), else the two values."""
    if isinstance(ours, list) and isinstance(theirs, list):
        for i, (a, b) in enumerate(zip(ours, theirs)):
            if a != b:
                return f"layer {i} {a}", f"layer {i} {b}"
        return f"{len(ours)} layers", f"{len(theirs)} layers"
    return repr(ours), repr(theirs)


def _synchronized_calls(graph, training, sync_all):
    """The BatchNormalization calls of a training pass that synchronize, in forward order."""
    from ..layers.normalization import BatchNormalization
    calls = []
    for step in graph.steps:
        train = training if step.training is None else step.training
        if step.is_model:
            calls.extend(_synchronized_calls(step.layer._graph_for(train), train, sync_all))
        elif isinstance(step.layer, BatchNormalization) and step.layer._synchronizes(
                train, sync_all):
            calls.append(step.layer)
    return calls
