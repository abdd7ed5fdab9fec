"""DataParallel: how a model's fit is spread over the ranks (Keras 3's
keras.distribution.DataParallel and its scope; TensorFlow's MultiWorkerMirroredStrategy)."""
import contextlib
import numbers

__all__ = ["DataParallel", "set_distribution", "distribution"]

_scopes = []     # the DataParallel scopes entered, innermost last
_global = [None]  # set_distribution's


class DataParallel:
    """Data-parallel training over the MPI job this process was launched in.

    sync_batch_norm: every BatchNormalization normalises with the global batch's statistics
        (as if each had synchronized=True); default False, each rank's own (as TensorFlow and
        PyTorch DDP do by default).
    bucket_bytes: the gradients are summed over the ranks in buckets of about this size, each
        started as soon as the backward pass has finished its layers (default 512 KiB: a few
        buckets for a CIFAR-sized network, so communication overlaps the backward pass).
    timeout: seconds a collective may make no progress (default $CNNKIT_DIST_TIMEOUT, else 600).
    """

    def __init__(self, sync_batch_norm=False, bucket_bytes=512 * 1024, timeout=None):
        from . import _timeout, init
        if not isinstance(sync_batch_norm, bool):
            raise TypeError(f"DataParallel: sync_batch_norm must be True or False, got "
                            f"{sync_batch_norm!r}")
        if (isinstance(bucket_bytes, bool) or not isinstance(bucket_bytes, numbers.Integral)
                or bucket_bytes < 1):
            raise ValueError(f"DataParallel: bucket_bytes must be a positive integer, got "
                             f"{bucket_bytes!r}")
        self.sync_batch_norm = sync_batch_norm
        self.bucket_bytes = int(bucket_bytes)
        seconds = _timeout(timeout)  # checked on one process too
        self.world = init(timeout)
        if timeout is not None and self.world.size > 1:
            self.world.timeout = seconds

    @property
    def num_replicas_in_sync(self):
        """The number of ranks (TensorFlow's name)."""
        return self.world.size

    @property
    def rank(self):
        return self.world.rank

    @contextlib.contextmanager
    def scope(self):
        """Models compiled inside train data-parallel with this strategy."""
        _scopes.append(self)
        try:
            yield self
        finally:
            _scopes.remove(self)

    def __deepcopy__(self, memo):
        return self  # a copied model trains with the same ranks

    def __reduce__(self):  # pickled without its MPI handles: made again where it is loaded
        return DataParallel, (self.sync_batch_norm, self.bucket_bytes)

    def __repr__(self):
        return (f"DataParallel(size={self.world.size}, sync_batch_norm={self.sync_batch_norm}, "
                f"bucket_bytes={self.bucket_bytes})")


def set_distribution(value):
    """The DataParallel every model's fit uses when it was not compiled in a scope (None: no
    distribution), as keras.distribution.set_distribution."""
    if value is not None and not isinstance(value, DataParallel):
        raise TypeError(f"set_distribution: expected a DataParallel or None, got {value!r}")
    _global[0] = value


def distribution():
    """The DataParallel in effect here: the innermost scope's, else set_distribution's."""
    return _scopes[-1] if _scopes else _global[0]
