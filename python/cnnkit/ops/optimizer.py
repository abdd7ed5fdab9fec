"""cnnkit.ops: optimizers (in place), checked and converted, over the C++ kernels."""
from .. import _args, _core

__all__ = ["adam_update", "sgd_update"]


def adam_update(param, grad, m, v, step, learning_rate=0.001, beta_1=0.9, beta_2=0.999,
                epsilon=1e-7):
    """One Keras Adam step on param, m and v in place (float32, C-contiguous, writeable).

    step is the 1-based number of this update."""
    fn = "adam_update"
    grad = _args.float_array(grad, "grad", fn=fn)
    _args.inplace_arrays(grad.shape, fn=fn, param=param, m=m, v=v)
    _core.adam_update(
        param, grad, m, v, _args.positive_int(step, "step", fn),
        _args.real_number(learning_rate, "learning_rate", fn, low=0.0),
        _args.real_number(beta_1, "beta_1", fn, low=0.0, high=1.0, include_high=False),
        _args.real_number(beta_2, "beta_2", fn, low=0.0, high=1.0, include_high=False),
        _args.real_number(epsilon, "epsilon", fn, low=0.0))


def sgd_update(param, grad, velocity=None, learning_rate=0.01, momentum=0.0, nesterov=False):
    """One Keras SGD step in place; with momentum > 0 it needs a velocity array."""
    fn = "sgd_update"
    grad = _args.float_array(grad, "grad", fn=fn)
    momentum = _args.real_number(momentum, "momentum", fn, low=0.0, high=1.0)
    if momentum > 0 and velocity is None:
        raise ValueError(f"{fn}: momentum={momentum} needs a velocity array (zeros to start)")
    arrays = {"param": param} if velocity is None else {"param": param, "velocity": velocity}
    _args.inplace_arrays(grad.shape, fn=fn, **arrays)
    _core.sgd_update(param, grad, velocity if momentum > 0 else None,
                     _args.real_number(learning_rate, "learning_rate", fn, low=0.0), momentum,
                     _args.flag(nesterov, "nesterov", fn))
