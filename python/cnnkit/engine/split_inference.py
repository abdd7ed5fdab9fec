"""Batch-split inference: predict cuts its batch into one slice per thread and runs each slice
through the model on a thread of its own, whose kernels then run on that thread alone.

A model that an inference plan runs (engine/inference_plan.py: its passes are shared among the
threads in C++ the same way, without Python between the layers) takes the plan instead; the
split serves the models a plan does not run.

Why: a layer-by-layer pass with every kernel spread over the threads wakes and joins them at
each of its parallel regions, and passive waiting (cnnkit's default, for shared machines: see
the README) makes each wake-up cost. On ResNet-20's .keras file (batch 64, the 2-core AVX2 Zen 3
VM of bench/compare.py), 2 threads ran 1,270-1,370 images/s, while two processes of one thread
each ran 1,650 together. Here one Python thread per slice takes the second shape inside one
process: the kernels release the GIL, so the slices' convolutions run side by side and only
the layers' Python glue takes turns (some 2.5 ms a pass: a batch of 2 took 5.9 ms).
`python bench/split_inference.py` measures both ways: on that VM, two runs gave 1.00-1.16x at
batches of 16 to 256 (the README has them).

Only a model whose every layer treats each sample on its own at inference is split: cnnkit's
own layers (BatchNormalization then uses its moving statistics; the random layers do nothing),
called without training=True, and models made of them. A layer of the user's own class might
mix samples (a mean over the batch), so a model with one runs whole. The slices' outputs are
the whole batch's bit for bit: every kernel computes a sample's values the same way whatever
else is in its batch (tests/test_split_inference.py checks it).
"""
import os
import threading

import numpy as np

from .. import _core

__all__ = ["ENABLED", "MIN_SLICE", "per_sample", "split_predict"]

# Set to False to run every predict batch whole (the tests compare both ways).
ENABLED = True
# Images per slice at least: a smaller batch runs whole, on all threads.
MIN_SLICE = 8

_lock = threading.Lock()
_workers = None  # (thread count, process id, ThreadPoolExecutor of count - 1 threads)


def per_sample(graph):
    """Whether every step of graph's inference pass computes each sample's outputs from that
    sample alone (cnnkit's own layers, called without training=True, and models of them)."""
    for step in graph.steps:
        if step.training is True:
            return False
        layer = step.layer
        if step.is_model:
            try:
                inner = layer._graph_for(False)
            except ValueError:  # not built: it runs whole, and builds
                return False
            if not per_sample(inner):
                return False
        elif not type(layer).__module__.startswith("cnnkit.layers."):
            return False
    return True


def _single_threaded():
    _core.set_local_num_threads(1)


def _pool(threads):
    """The worker threads (one fewer than the slices: the calling thread runs the first)."""
    global _workers
    from concurrent.futures import ThreadPoolExecutor  # here: most programs never split
    with _lock:
        # A forked child has the parent's pool but none of its threads: it makes its own.
        if _workers is None or _workers[:2] != (threads, os.getpid()):
            if _workers is not None and _workers[1] == os.getpid():
                _workers[2].shutdown(wait=False)
            _workers = (threads, os.getpid(),
                        ThreadPoolExecutor(threads - 1, "cnnkit-slice", initializer=_single_threaded))
        return _workers[2]


class SplitStates:
    """What a trainer's inference state keeps for split passes (as state.split): whether its
    model may split (per_sample), and a call state of the model per slice. The trainer keeps a
    state per graph, so a rebuilt model starts anew."""
    __slots__ = ("allowed", "states")

    def __init__(self, allowed):
        self.allowed = allowed
        self.states = []


def split_predict(model, state, xs):
    """The model's outputs on xs (copies), from one slice of the batch per thread; None when
    the batch runs whole (one thread, a batch under MIN_SLICE images a thread, a model that
    is not per_sample, or the state's first pass, which builds what the slices share)."""
    threads = _core.get_num_threads()
    n = len(xs[0])
    if not ENABLED or threads < 2 or n < 2 * MIN_SLICE:
        return None
    split = getattr(state, "split", None)
    if split is None:
        if not getattr(state, "ran", False):
            return None
        split = state.split = SplitStates(per_sample(model._graph_for(False)))
    if not split.allowed:
        return None
    slices = min(threads, n // MIN_SLICE)
    states = split.states
    while len(states) < slices:
        states.append(model.new_state(reuse=True))
    bounds = [n * k // slices for k in range(slices + 1)]
    parts = [[x[bounds[k]:bounds[k + 1]] for x in xs] for k in range(slices)]

    def run(k):
        return model._run(states[k], parts[k], False)

    workers = _pool(threads)
    futures = [workers.submit(run, k) for k in range(1, slices)]
    _core.set_local_num_threads(1)
    try:
        first = run(0)
    finally:
        _core.set_local_num_threads(0)
        done = [f.exception() for f in futures]  # every slice finished before anything returns
    for error in done:
        if error is not None:
            raise error
    results = [first] + [f.result() for f in futures]
    return [np.concatenate([r[i] for r in results]) for i in range(len(first))]
