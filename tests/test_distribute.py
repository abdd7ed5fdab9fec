"""cnnkit.distribute without a launcher: one process, no mpi4py import, and every piece of the
data-parallel step checked against the plain step through a stand-in for MPI (FakeWorld: one
rank, sums that return their input). tests/test_distribute_mpi.py runs the real thing."""
import os
import subprocess
import sys

import numpy as np
import pytest

import cnnkit
from cnnkit import distribute
from cnnkit import layers as L
from cnnkit.distribute import training as distributed
from cnnkit.distribute.gradient_buckets import GradientBuckets
from cnnkit.distribute.metric_sync import sum_metric_states
from cnnkit.utils import set_random_seed

# The folder of the cnnkit these tests import (the installed one, or the source tree's with
# its built module): the child processes must run the same one.
PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(cnnkit.__file__)))


def run_python(code, env=None):
    environment = {**os.environ, "PYTHONPATH": PYTHON_DIR, **(env or {})}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=environment)


def test_one_process_needs_no_mpi():
    done = run_python(
        "import sys, numpy as np, cnnkit\n"
        "from cnnkit import distribute, layers as L\n"
        "with distribute.DataParallel().scope():\n"
        "    m = cnnkit.Sequential([cnnkit.Input((4,)), L.Dense(2)])\n"
        "    m.compile(loss='mse')\n"
        "m.fit(np.ones((8, 4)), np.ones((8, 2)), verbose=0)\n"
        "print(distribute.rank(), distribute.size(), distribute.is_chief(), "
        "'mpi4py' in sys.modules)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "1", "True", "False"]


def test_a_launched_process_without_mpi4py_is_told_how_to_install_it():
    done = run_python("import sys; sys.modules['mpi4py'] = None\n"
                      "from cnnkit import distribute; distribute.init()",
                      env={"PMI_SIZE": "2", "PMI_RANK": "0"})
    assert done.returncode != 0
    assert "a job of 2 processes" in done.stderr and "pip install 'cnnkit[mpi]'" in done.stderr


def test_arguments_are_checked():
    with pytest.raises(TypeError, match="sync_batch_norm"):
        distribute.DataParallel(sync_batch_norm=1)
    with pytest.raises(ValueError, match="bucket_bytes"):
        distribute.DataParallel(bucket_bytes=0)
    with pytest.raises(ValueError, match="timeout"):
        distribute.DataParallel(timeout=-1)
    with pytest.raises(ValueError, match="CNNKIT_DIST_TIMEOUT"):
        os.environ["CNNKIT_DIST_TIMEOUT"] = "soon"
        try:
            distribute._timeout(None)
        finally:
            del os.environ["CNNKIT_DIST_TIMEOUT"]
    with pytest.raises(TypeError, match="DataParallel or None"):
        distribute.set_distribution("all")
    with pytest.raises(ValueError, match="op must be"):
        distribute.allreduce(1.0, op="product")
    with pytest.raises(ValueError, match="root must be a rank from 0 to 0"):
        distribute.broadcast(1, root=1)


def test_collectives_of_one_process_return_their_input():
    assert distribute.allreduce(2.5) == 2.5
    np.testing.assert_array_equal(distribute.allreduce([1, 2], op="sum"), [1.0, 2.0])
    assert distribute.broadcast({"a": 1}) == {"a": 1}
    distribute.barrier()
    model = cnnkit.Sequential([cnnkit.Input((3,)), L.Dense(2)])
    before = [w.copy() for w in model.get_weights()]
    distribute.broadcast_weights(model)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_scopes_and_set_distribution():
    strategy = distribute.DataParallel(sync_batch_norm=True)
    assert strategy.num_replicas_in_sync == 1 and strategy.rank == 0
    assert distribute.distribution() is None
    with strategy.scope():
        assert distribute.distribution() is strategy
        inside = cnnkit.Sequential([cnnkit.Input((3,)), L.Dense(2)])
    outside = cnnkit.Sequential([cnnkit.Input((3,)), L.Dense(2)])
    assert inside._distribution is strategy and outside._distribution is None
    distribute.set_distribution(strategy)
    try:
        assert distribute.distribution() is strategy
    finally:
        distribute.set_distribution(None)
    import copy
    import pickle
    assert copy.deepcopy(strategy) is strategy
    again = pickle.loads(pickle.dumps(strategy))
    assert again.sync_batch_norm and again.bucket_bytes == strategy.bucket_bytes


# ---------------------------------------------------------------- a stand-in for MPI

class FakeWorld:
    """One rank: every sum returns its input; records what was summed."""
    rank, size, local_rank, local_size, broken = 0, 1, 0, 1, False

    class MPI:
        class Request:
            @staticmethod
            def Testall(requests):
                return True

    def __init__(self):
        self.sums, self.started = [], []

    def allreduce(self, array, what, op="sum", comm=None):
        self.sums.append(what)
        return array

    def start_allreduce(self, array):
        self.started.append(array.size)
        return object()

    def wait(self, requests, what):
        pass

    def broadcast(self, array, what, root=0):
        return array

    def broadcast_object(self, value, what, root=0):
        return value

    def allgather_object(self, value, what):
        return [value]

    def fail(self, error):
        pass


class FakeStrategy:
    def __init__(self, sync_batch_norm=False, bucket_bytes=64):
        self.world, self.sync_batch_norm, self.bucket_bytes = FakeWorld(), sync_batch_norm, \
            bucket_bytes


def model_of(kind):
    set_random_seed(5)
    inputs = cnnkit.Input((6, 6, 3))
    if kind == "bn":
        # no bias: through BatchNormalization its gradient is 0 up to rounding, which Adam
        # would turn into steps of the learning rate in either direction
        x = L.Conv2D(4, 3, padding="same", use_bias=False, kernel_regularizer="l2")(inputs)
        x = L.BatchNormalization(synchronized=True)(x)
        x = L.ReLU()(x)
        x = L.GlobalAveragePooling2D()(x)
    else:  # a layer called twice
        shared = L.Conv2D(3, 3, padding="same", activation="relu")
        x = shared(shared(inputs))
        x = L.Flatten()(x)
    outputs = L.Dense(3, activation="softmax", activity_regularizer="l2")(x)
    model = cnnkit.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.parametrize("kind", ["bn", "shared"])
def test_the_parallel_step_of_one_rank_is_the_plain_step(monkeypatch, kind):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(37, 6, 6, 3)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 37)]
    plain = model_of(kind)
    plain_log = plain.fit(x, y, batch_size=8, epochs=2, verbose=0, validation_split=0.2).history
    strategy = FakeStrategy()
    monkeypatch.setattr(distributed, "begin",
                        lambda model: distributed.ParallelFit(model, strategy))
    parallel = model_of(kind)
    log = parallel.fit(x, y, batch_size=8, epochs=2, verbose=0, validation_split=0.2).history
    for a, b in zip(plain.get_weights(), parallel.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for key in plain_log:
        np.testing.assert_allclose(log[key], plain_log[key], rtol=1e-5)
    sums = strategy.world.sums
    assert any("the epoch's metrics" in s for s in sums)
    assert any("evaluate: the metrics" in s for s in sums)
    assert any("stop_training" in s for s in sums)
    if kind == "bn":  # the synchronized layer summed its statistics and gradient sums
        assert any("the batch variance" in s for s in sums)
        assert any("the gradient sums" in s for s in sums)
    assert len(strategy.world.started) > 2 * 4  # several buckets per step


def test_gradient_buckets_follow_the_backward_pass():
    model = model_of("shared")
    model.fit(np.zeros((4, 6, 6, 3), np.float32), np.eye(3, dtype=np.float32)[[0, 1, 2, 0]],
              verbose=0)
    state = model._step_state(True)
    _, weights, sources, _ = model._step_plan(state, 1)
    world = FakeWorld()
    buckets = GradientBuckets(world, model._graph_for(True), sources, bucket_bytes=1)
    # one bucket per layer (1 byte each), in the order the backward pass finishes them: the
    # output layer's first, the shared convolution (called first, finished last) last
    assert len(buckets.buckets) == len(sources)
    assert [g.shape for g in buckets.grads] == [w.shape for w in weights]
    names = [layer.name for layer, _ in sources]
    assert buckets.bucket_of[names.index(model.layers[-1].name)] == 0
    assert buckets.bucket_of[names.index(model.layers[1].name)] == len(sources) - 1
    assert len(sources[names.index(model.layers[1].name)][1]) == 2  # its two calls
    # every byte of the buffer is in exactly one bucket
    assert sum(b.size for b in buckets.buckets) == buckets.buffer.size


def test_graph_backward_calls_its_hook_after_every_step_in_reverse():
    model = model_of("shared")
    x = np.zeros((2, 6, 6, 3), np.float32)
    state = model._step_state(True)
    model._step_plan(state, 1)
    model._run(state, [x], True)
    seen = []
    state.active.after_step = seen.append
    model.backward(state, np.ones((2, 3), np.float32))
    state.active.after_step = None
    assert seen == list(range(len(model._graph_for(True).steps) - 1, -1, -1))


def test_metric_states_are_summed():
    from cnnkit import metrics

    class Doubling(FakeWorld):
        def allreduce(self, array, what, op="sum", comm=None):
            array *= 2
            return array
    mean, auc, precision = metrics.Mean(), metrics.AUC(num_thresholds=5), metrics.Precision()
    mean.update_state([1.0, 2.0, 6.0])
    auc.update_state([0, 1, 1], [0.2, 0.7, 0.4])
    precision.update_state([0, 1, 1], [0.8, 0.7, 0.4])
    results = [float(m.result()) for m in (mean, auc, precision)]
    tp = auc.true_positives.copy()
    sum_metric_states([mean, auc, precision], Doubling(), "test")
    assert mean.count == 6.0 and mean.total == 18.0
    np.testing.assert_array_equal(auc.true_positives, 2 * tp)
    np.testing.assert_allclose([float(m.result()) for m in (mean, auc, precision)], results)

    class Odd(metrics.Metric):
        def reset_state(self):
            self.seen = "none"

        def update_state(self, *a):
            pass

        def result(self):
            return 0.0
    odd = Odd(name="odd")
    odd.reset_state()
    with pytest.raises(TypeError, match='metric "odd": its state \'seen\' is a str'):
        sum_metric_states([odd], FakeWorld(), "test")


@pytest.mark.parametrize("size", [2, 3, 4, 7])
@pytest.mark.parametrize("batch", [1, 3, 10, 64])
def test_shards_cover_the_batch_in_order(size, batch):
    parts = []
    for rank in range(size):
        fit = object.__new__(distributed.ParallelFit)
        fit.rank, fit.size = rank, size
        parts.append(fit.shard(batch))
    assert parts[0][0] == 0 and parts[-1][1] == batch
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
    sizes = [b - a for a, b in parts]
    assert max(sizes) - min(sizes) <= 1
