"""Collectives for a user's own code (Horovod's hvd.allreduce, broadcast, broadcast_variables),
with the same fault handling as fit's. Without a launcher each returns its input."""
import numpy as np

__all__ = ["allreduce", "broadcast", "broadcast_weights", "barrier"]


def _world():
    from . import init
    return init()


def allreduce(value, op="average"):
    """value (a number or an array) combined over the ranks: 'average' (Horovod's default),
    'sum', 'max' or 'min'. Returns a new float64 array (a float for a number)."""
    if op not in ("average", "sum", "max", "min"):
        raise ValueError(f"allreduce: op must be 'average', 'sum', 'max' or 'min', got {op!r}")
    array = np.array(value, dtype=np.float64)
    if array.dtype.kind not in "f":
        raise TypeError(f"allreduce: value must be numeric, got {value!r}")
    world = _world()
    if world.size > 1:
        world.allreduce(array, "allreduce", "sum" if op == "average" else op)
        if op == "average":
            array /= world.size
    return float(array) if array.ndim == 0 else array


def broadcast(value, root=0):
    """Rank root's value (any picklable object) on every rank."""
    world = _world()
    _check_root(root, world)
    if world.size == 1:
        return value
    return world.broadcast_object(value, "broadcast", root)


def broadcast_weights(model, root=0):
    """Sets every rank's weights to rank root's (the model must be built on every rank)."""
    world = _world()
    _check_root(root, world)
    if world.size == 1:
        return
    if not model.built:
        raise ValueError(f'broadcast_weights: model "{model.name}" is not built; build it '
                         "(call it, or build(input_shape)) on every rank first")
    weights = model.weights
    shapes = world.allgather_object([w.shape for w in weights], "broadcast_weights")
    differ = [r for r, s in enumerate(shapes) if s != shapes[root]]
    if differ:
        raise ValueError(f'broadcast_weights: model "{model.name}" has other weight shapes on '
                         f"rank(s) {differ} than on rank {root}")
    flat = np.concatenate([w.ravel() for w in weights]) if weights else np.zeros(0, np.float32)
    world.broadcast(flat, "broadcast_weights", root)
    offset = 0
    for w in weights:
        np.copyto(w, flat[offset:offset + w.size].reshape(w.shape))
        offset += w.size


def barrier():
    world = _world()
    if world.size > 1:
        world.barrier("barrier")


def _check_root(root, world):
    if isinstance(root, bool) or not isinstance(root, (int, np.integer)) or not \
            0 <= root < world.size:
        raise ValueError(f"root must be a rank from 0 to {world.size - 1}, got {root!r}")
