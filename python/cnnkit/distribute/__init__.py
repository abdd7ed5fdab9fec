"""cnnkit.distribute: data-parallel training over MPI (through mpi4py: pip install 'cnnkit[mpi]').

    mpiexec -n 4 python train.py

    import cnnkit
    from cnnkit import distribute

    strategy = distribute.DataParallel()          # or DataParallel(sync_batch_norm=True)
    with strategy.scope():
        model = build_model()
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=256, epochs=10)    # 256: the global batch, 64 per rank

Under `mpiexec -n N`, a model compiled in a DataParallel scope (or any model, after
set_distribution(strategy)) trains data-parallel in fit:
- rank 0's weights, optimizer state and shuffling generator are broadcast when fit starts, so
  every rank starts from the same model (and a resumed fit from rank 0's checkpoint);
- every rank holds the same data; fit shuffles it with the shared generator and each rank
  computes its own slice of every global batch (batch_size is the global batch, as with
  TensorFlow's strategies), so N ranks follow one process with the same batch size, to float
  rounding, whatever N is;
- the gradients are summed with non-blocking Allreduce in buckets, started during the backward
  pass (gradient_buckets.py); the loss and metrics are summed over the ranks at the end of each
  epoch and of each validation, which is split across the ranks too;
- only rank 0 prints progress and runs the callbacks that write files (ModelCheckpoint,
  BackupAndRestore, CSVLogger); model.save and save_weights write on rank 0 only;
- BatchNormalization normalises with each rank's own batch statistics, or with the global
  batch's when the layer has synchronized=True (Keras' argument) or the strategy
  sync_batch_norm=True;
- a rank that raises tells the others, which raise RankFailedError naming it; a rank that dies
  without a word is found by the timeout on every collective (CollectiveTimeoutError, naming
  the ranks that do not answer). A rank started with another cnnkit version, model, optimizer
  or data is refused when fit starts.

Without a launcher (a plain `python train.py`) size() is 1, mpi4py is never imported, and fit
runs as it always does. The names follow Keras 3's keras.distribution (DataParallel, scope,
set_distribution, distribution) and Horovod's (rank, size, local_rank, allreduce, broadcast,
broadcast_weights).
"""
import os

from ._launch import launched_size
from .errors import CollectiveTimeoutError, DistributedError, RankFailedError

__all__ = ["init", "rank", "size", "local_rank", "local_size", "is_chief", "DataParallel",
           "set_distribution", "distribution", "allreduce", "broadcast", "broadcast_weights",
           "barrier", "DistributedError", "RankFailedError", "CollectiveTimeoutError"]

DEFAULT_TIMEOUT = 600.0  # seconds a collective may make no progress (as NCCL's 10 minutes)

_world = None


class _Alone:
    """The world of a process no launcher started: one rank, no MPI."""
    rank, size, local_rank, local_size = 0, 1, 0, 1
    broken = False


def init(timeout=None):
    """Joins the MPI job this process was launched in (once; later calls return the same
    world). timeout: seconds any collective may make no progress before the ranks that do not
    answer are named in a CollectiveTimeoutError (default $CNNKIT_DIST_TIMEOUT, else 600).
    Also sets the kernels' threads to this machine's cores shared by its ranks, unless
    OMP_NUM_THREADS says otherwise."""
    global _world
    if _world is not None:
        return _world
    if launched_size() == 1:
        _world = _Alone()
        return _world
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        raise ImportError("cnnkit.distribute: this process was started by an MPI launcher "
                          f"(a job of {launched_size()} processes), but mpi4py is not "
                          "installed: pip install 'cnnkit[mpi]' (mpi4py and the MPICH wheel)"
                          ) from None
    from .communicator import Communicator
    _world = Communicator(_timeout(timeout))
    if _world.local_size > 1 and "OMP_NUM_THREADS" not in os.environ:
        import cnnkit
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
        cnnkit.set_num_threads(max(1, cores // _world.local_size))
    return _world


def _timeout(timeout):
    if timeout is None:
        text = os.environ.get("CNNKIT_DIST_TIMEOUT")
        if text is None:
            return DEFAULT_TIMEOUT
        try:
            timeout = float(text)
        except ValueError:
            raise ValueError(f"CNNKIT_DIST_TIMEOUT must be a number of seconds, got {text!r}") \
                from None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"distribute: timeout must be a number of seconds > 0, got {timeout!r}")
    return float(timeout)


def rank():
    """This process's rank, 0 to size() - 1 (0 without a launcher)."""
    return init().rank


def size():
    """The number of processes training together (1 without a launcher)."""
    return init().size


def local_rank():
    """This process's rank among those on its machine."""
    return init().local_rank


def local_size():
    return init().local_size


def is_chief():
    """Rank 0: the one that prints and writes files."""
    return init().rank == 0


from .strategy import DataParallel, distribution, set_distribution  # noqa: E402
from .collectives import allreduce, barrier, broadcast, broadcast_weights  # noqa: E402
