"""cnnkit.reference: Keras 3's optimizer updates (in place) in plain NumPy.

Each update does, as Keras' BaseOptimizer: clip the gradient (clipvalue, or a precomputed
grad_scale for clipnorm / global_clipnorm), decoupled weight decay p -= p * weight_decay * lr,
the optimizer's step, then the moving average ema = m * ema + (1 - m) * p when ema is given."""
import math
import numpy as np

from .._args import flag, float_array, inplace_arrays, positive_int, real_number, working_dtype
from .._optimizer_args import common_options, nadam_scalars
from ._window import INPLACE_DTYPES

__all__ = ["sgd_update", "rmsprop_update", "adam_update", "adagrad_update", "nadam_update",
           "adamax_update", "sum_squares"]


def _prelude(fn, param, grad, lr, clipvalue, grad_scale, weight_decay, ema, ema_momentum, **slots):
    """Checks the arrays, returns the clipped, scaled gradient and decays param in place."""
    grad = float_array(grad, "grad", dtype=working_dtype(param), fn=fn)
    arrays = {"param": param, **{k: v for k, v in slots.items() if v is not None}}
    if ema is not None:
        arrays["ema"] = ema
    inplace_arrays(grad.shape, INPLACE_DTYPES, fn, **arrays)
    clipvalue, grad_scale, weight_decay, ema_momentum = common_options(
        fn, clipvalue, grad_scale, weight_decay, ema_momentum)
    if clipvalue > 0:
        grad = np.clip(grad, -clipvalue, clipvalue)
    grad = grad * grad_scale
    if weight_decay:
        param -= param * weight_decay * lr
    return grad, ema_momentum


def _ema(param, ema, ema_momentum):
    if ema is not None:
        ema[...] = ema_momentum * ema + (1 - ema_momentum) * param


def _lr(fn, learning_rate):
    return real_number(learning_rate, "learning_rate", fn, low=0)


def sgd_update(param, grad, velocity=None, learning_rate=0.01, momentum=0.0, nesterov=False, *,
               clipvalue=None, grad_scale=1.0, weight_decay=None, ema=None, ema_momentum=0.0):
    # Keras' SGD: plain without a velocity; with one, momentum (optionally Nesterov).
    fn = "sgd_update"
    lr = _lr(fn, learning_rate)
    momentum = real_number(momentum, "momentum", fn, low=0, high=1)
    nesterov = flag(nesterov, "nesterov", fn)
    if velocity is None and momentum > 0:
        raise ValueError(f"{fn}: momentum={momentum} needs a velocity array")
    grad, em = _prelude(fn, param, grad, lr, clipvalue, grad_scale, weight_decay, ema,
                        ema_momentum, velocity=velocity)
    if velocity is None:
        param -= lr * grad
    else:
        velocity *= momentum
        velocity -= lr * grad
        param += momentum * velocity - lr * grad if nesterov else velocity
    _ema(param, ema, em)


def rmsprop_update(param, grad, velocity, momentum_buf=None, average_grad=None,
                   learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, *,
                   clipvalue=None, grad_scale=1.0, weight_decay=None, ema=None, ema_momentum=0.0):
    # Keras' RMSprop; momentum > 0 needs momentum_buf, centered needs average_grad.
    fn = "rmsprop_update"
    lr = _lr(fn, learning_rate)
    rho = real_number(rho, "rho", fn, low=0, high=1)
    momentum = real_number(momentum, "momentum", fn, low=0, high=1)
    eps = real_number(epsilon, "epsilon", fn, low=0)
    centered = flag(centered, "centered", fn)
    if momentum > 0 and momentum_buf is None:
        raise ValueError(f"{fn}: momentum={momentum} needs a momentum_buf array")
    if centered and average_grad is None:
        raise ValueError(f"{fn}: centered=True needs an average_grad array")
    grad, em = _prelude(fn, param, grad, lr, clipvalue, grad_scale, weight_decay, ema,
                        ema_momentum, velocity=velocity, momentum_buf=momentum_buf,
                        average_grad=average_grad)
    velocity[...] = rho * velocity + (1 - rho) * grad * grad
    if centered:
        average_grad[...] = rho * average_grad + (1 - rho) * grad
        denominator = velocity - average_grad ** 2 + eps
    else:
        denominator = velocity + eps
    increment = lr * grad / np.sqrt(denominator)
    if momentum > 0:
        momentum_buf[...] = momentum * momentum_buf + increment
        param -= momentum_buf
    else:
        param -= increment
    _ema(param, ema, em)


def _betas(fn, beta_1, beta_2, epsilon):
    return (real_number(beta_1, "beta_1", fn, low=0, high=1, include_high=False),
            real_number(beta_2, "beta_2", fn, low=0, high=1, include_high=False),
            real_number(epsilon, "epsilon", fn, low=0))


def adam_update(param, grad, m, v, step, learning_rate=0.001, beta_1=0.9, beta_2=0.999,
                epsilon=1e-7, velocity_hat=None, *, clipvalue=None, grad_scale=1.0,
                weight_decay=None, ema=None, ema_momentum=0.0):
    # Keras 3's Adam (amsgrad when velocity_hat is given; AdamW is this with weight_decay);
    # step is the 1-based number of this update.
    fn = "adam_update"
    step = positive_int(step, "step", fn)
    lr = _lr(fn, learning_rate)
    b1, b2, eps = _betas(fn, beta_1, beta_2, epsilon)
    grad, em = _prelude(fn, param, grad, lr, clipvalue, grad_scale, weight_decay, ema,
                        ema_momentum, m=m, v=v, velocity_hat=velocity_hat)
    alpha = lr * math.sqrt(1 - b2**step) / (1 - b1**step)
    m += (grad - m) * (1 - b1)
    v += (grad * grad - v) * (1 - b2)
    if velocity_hat is not None:
        np.maximum(velocity_hat, v, out=velocity_hat)
        v = velocity_hat
    param -= alpha * m / (np.sqrt(v) + eps)
    _ema(param, ema, em)


def adagrad_update(param, grad, accumulator, learning_rate=0.001, epsilon=1e-7, *,
                   clipvalue=None, grad_scale=1.0, weight_decay=None, ema=None, ema_momentum=0.0):
    # Keras' Adagrad; the accumulator starts at initial_accumulator_value.
    fn = "adagrad_update"
    lr = _lr(fn, learning_rate)
    eps = real_number(epsilon, "epsilon", fn, low=0)
    grad, em = _prelude(fn, param, grad, lr, clipvalue, grad_scale, weight_decay, ema,
                        ema_momentum, accumulator=accumulator)
    accumulator += grad * grad
    param -= lr * grad / np.sqrt(accumulator + eps)
    _ema(param, ema, em)


def nadam_update(param, grad, m, v, step, u_product=1.0, learning_rate=0.001, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-7, *, clipvalue=None, grad_scale=1.0,
                 weight_decay=None, ema=None, ema_momentum=0.0):
    # Keras' Nadam. u_product is the product of the momentum schedule over the steps before
    # this one (1.0 before the first); returns it updated, for the next call.
    fn = "nadam_update"
    step = positive_int(step, "step", fn)
    lr = _lr(fn, learning_rate)
    b1, b2, eps = _betas(fn, beta_1, beta_2, epsilon)
    u_product = real_number(u_product, "u_product", fn, low=0, high=1)
    grad, em = _prelude(fn, param, grad, lr, clipvalue, grad_scale, weight_decay, ema,
                        ema_momentum, m=m, v=v)
    m_coef, g_coef, v_divisor, u_product = nadam_scalars(b1, b2, step, u_product)
    m += (grad - m) * (1 - b1)
    v += (grad * grad - v) * (1 - b2)
    param -= (m_coef * m + g_coef * grad) * lr / (np.sqrt(v / v_divisor) + eps)
    _ema(param, ema, em)
    return u_product


def adamax_update(param, grad, m, norm, step, learning_rate=0.001, beta_1=0.9, beta_2=0.999,
                  epsilon=1e-7, *, clipvalue=None, grad_scale=1.0, weight_decay=None, ema=None,
                  ema_momentum=0.0):
    # Keras' Adamax: norm is the exponentially weighted infinity norm.
    fn = "adamax_update"
    step = positive_int(step, "step", fn)
    lr = _lr(fn, learning_rate)
    b1, b2, eps = _betas(fn, beta_1, beta_2, epsilon)
    grad, em = _prelude(fn, param, grad, lr, clipvalue, grad_scale, weight_decay, ema,
                        ema_momentum, m=m, norm=norm)
    m += (grad - m) * (1 - b1)
    np.maximum(b2 * norm, np.abs(grad), out=norm)
    param -= lr * m / ((1 - b1**step) * (norm + eps))
    _ema(param, ema, em)


def sum_squares(arrays):
    """Sum of the squares of every value of the arrays, in float64."""
    return float(sum(np.sum(np.square(np.asarray(a, np.float64))) for a in arrays))
