"""cnnkit.reference: optimizers (in place) in plain NumPy."""
import math
import numpy as np

from .._args import flag, float_array, inplace_arrays, positive_int, real_number, working_dtype
from ._window import INPLACE_DTYPES

__all__ = ["adam_update", "sgd_update"]


def adam_update(param, grad, m, v, step, learning_rate=0.001, beta_1=0.9, beta_2=0.999,
                epsilon=1e-7):
    # Keras 3's Adam; step is the 1-based number of this update.
    fn = "adam_update"
    grad = float_array(grad, "grad", dtype=working_dtype(param), fn=fn)
    inplace_arrays(grad.shape, INPLACE_DTYPES, fn, param=param, m=m, v=v)
    step = positive_int(step, "step", fn)
    lr = real_number(learning_rate, "learning_rate", fn, low=0)
    b1 = real_number(beta_1, "beta_1", fn, low=0, high=1, include_high=False)
    b2 = real_number(beta_2, "beta_2", fn, low=0, high=1, include_high=False)
    eps = real_number(epsilon, "epsilon", fn, low=0)
    alpha = lr * math.sqrt(1 - b2**step) / (1 - b1**step)
    m += (grad - m) * (1 - b1)
    v += (grad * grad - v) * (1 - b2)
    param -= alpha * m / (np.sqrt(v) + eps)


def sgd_update(param, grad, velocity=None, learning_rate=0.01, momentum=0.0, nesterov=False):
    # Keras' SGD: plain without a velocity; with one, momentum (optionally Nesterov).
    fn = "sgd_update"
    grad = float_array(grad, "grad", dtype=working_dtype(param), fn=fn)
    lr = real_number(learning_rate, "learning_rate", fn, low=0)
    momentum = real_number(momentum, "momentum", fn, low=0, high=1)
    nesterov = flag(nesterov, "nesterov", fn)
    if velocity is None:
        if momentum > 0:
            raise ValueError(f"{fn}: momentum={momentum} needs a velocity array")
        inplace_arrays(grad.shape, INPLACE_DTYPES, fn, param=param)
        param -= lr * grad
        return
    inplace_arrays(grad.shape, INPLACE_DTYPES, fn, param=param, velocity=velocity)
    velocity *= momentum
    velocity -= lr * grad
    if nesterov:
        param += momentum * velocity - lr * grad
    else:
        param += velocity
