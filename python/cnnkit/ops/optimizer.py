"""cnnkit.ops: Keras 3's optimizer updates (in place), checked, over the fused C++ kernels.

Each call is one pass over the parameter: clip the gradient (clipvalue, or grad_scale, the
factor of clipnorm / global_clipnorm computed from sum_squares), decoupled weight decay
p -= p * weight_decay * lr, the optimizer's step, then ema = m * ema + (1 - m) * p when an ema
array is given. The arrays are float32, C-contiguous and writeable; nothing is converted (a
copy would be updated and lost). cnnkit.reference has the same functions in NumPy."""
from .. import _args, _core
from .._optimizer_args import common_options, nadam_scalars

__all__ = ["sgd_update", "rmsprop_update", "adam_update", "adagrad_update", "nadam_update",
           "adamax_update", "sum_squares"]


def _checked(fn, param, grad, learning_rate, clipvalue, grad_scale, weight_decay, ema,
             ema_momentum, **slots):
    """(grad as float32, the keyword arguments every kernel shares)."""
    grad = _args.float_array(grad, "grad", fn=fn)
    arrays = {"param": param, **{k: v for k, v in slots.items() if v is not None}}
    if ema is not None:
        arrays["ema"] = ema
    _args.inplace_arrays(grad.shape, fn=fn, **arrays)
    clipvalue, grad_scale, weight_decay, ema_momentum = common_options(
        fn, clipvalue, grad_scale, weight_decay, ema_momentum)
    lr = _args.real_number(learning_rate, "learning_rate", fn, low=0.0)
    return grad, dict(learning_rate=lr, clipvalue=clipvalue, grad_scale=grad_scale,
                      weight_decay=weight_decay, ema=ema, ema_momentum=ema_momentum)


def _betas(fn, beta_1, beta_2, epsilon):
    return (_args.real_number(beta_1, "beta_1", fn, low=0.0, high=1.0, include_high=False),
            _args.real_number(beta_2, "beta_2", fn, low=0.0, high=1.0, include_high=False),
            _args.real_number(epsilon, "epsilon", fn, low=0.0))


def sgd_update(param, grad, velocity=None, learning_rate=0.01, momentum=0.0, nesterov=False, *,
               clipvalue=None, grad_scale=1.0, weight_decay=None, ema=None, ema_momentum=0.0):
    """One Keras SGD step in place; with momentum > 0 it needs a velocity array."""
    fn = "sgd_update"
    momentum = _args.real_number(momentum, "momentum", fn, low=0.0, high=1.0)
    nesterov = _args.flag(nesterov, "nesterov", fn)
    if momentum > 0 and velocity is None:
        raise ValueError(f"{fn}: momentum={momentum} needs a velocity array (zeros to start)")
    grad, common = _checked(fn, param, grad, learning_rate, clipvalue, grad_scale, weight_decay,
                            ema, ema_momentum, velocity=velocity)
    _core.sgd_update(param, grad, velocity if momentum > 0 else None, momentum=momentum,
                     nesterov=nesterov, **common)


def rmsprop_update(param, grad, velocity, momentum_buf=None, average_grad=None,
                   learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, *,
                   clipvalue=None, grad_scale=1.0, weight_decay=None, ema=None, ema_momentum=0.0):
    """One Keras RMSprop step; momentum > 0 needs momentum_buf, centered=True average_grad."""
    fn = "rmsprop_update"
    rho = _args.real_number(rho, "rho", fn, low=0.0, high=1.0)
    momentum = _args.real_number(momentum, "momentum", fn, low=0.0, high=1.0)
    epsilon = _args.real_number(epsilon, "epsilon", fn, low=0.0)
    centered = _args.flag(centered, "centered", fn)
    if momentum > 0 and momentum_buf is None:
        raise ValueError(f"{fn}: momentum={momentum} needs a momentum_buf array (zeros to start)")
    if centered and average_grad is None:
        raise ValueError(f"{fn}: centered=True needs an average_grad array (zeros to start)")
    grad, common = _checked(fn, param, grad, learning_rate, clipvalue, grad_scale, weight_decay,
                            ema, ema_momentum, velocity=velocity, momentum_buf=momentum_buf,
                            average_grad=average_grad)
    _core.rmsprop_update(param, grad, velocity, momentum_buf if momentum > 0 else None,
                         average_grad if centered else None, rho=rho, momentum=momentum,
                         epsilon=epsilon, **common)


def adam_update(param, grad, m, v, step, learning_rate=0.001, beta_1=0.9, beta_2=0.999,
                epsilon=1e-7, velocity_hat=None, *, clipvalue=None, grad_scale=1.0,
                weight_decay=None, ema=None, ema_momentum=0.0):
    """One Keras Adam step on param, m and v in place (AMSGrad when velocity_hat is given;
    AdamW with weight_decay). step is the 1-based number of this update."""
    fn = "adam_update"
    step = _args.positive_int(step, "step", fn)
    b1, b2, eps = _betas(fn, beta_1, beta_2, epsilon)
    grad, common = _checked(fn, param, grad, learning_rate, clipvalue, grad_scale, weight_decay,
                            ema, ema_momentum, m=m, v=v, velocity_hat=velocity_hat)
    _core.adam_update(param, grad, m, v, velocity_hat, step=step, beta_1=b1, beta_2=b2,
                      epsilon=eps, **common)


def adagrad_update(param, grad, accumulator, learning_rate=0.001, epsilon=1e-7, *,
                   clipvalue=None, grad_scale=1.0, weight_decay=None, ema=None, ema_momentum=0.0):
    """One Keras Adagrad step (accumulator starts at initial_accumulator_value)."""
    fn = "adagrad_update"
    eps = _args.real_number(epsilon, "epsilon", fn, low=0.0)
    grad, common = _checked(fn, param, grad, learning_rate, clipvalue, grad_scale, weight_decay,
                            ema, ema_momentum, accumulator=accumulator)
    _core.adagrad_update(param, grad, accumulator, epsilon=eps, **common)


def nadam_update(param, grad, m, v, step, u_product=1.0, learning_rate=0.001, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-7, *, clipvalue=None, grad_scale=1.0,
                 weight_decay=None, ema=None, ema_momentum=0.0):
    """One Keras Nadam step. u_product: the product of the momentum schedule over the steps
    before this one (1.0 before the first). Returns it updated, for the next step."""
    fn = "nadam_update"
    step = _args.positive_int(step, "step", fn)
    b1, b2, eps = _betas(fn, beta_1, beta_2, epsilon)
    u_product = _args.real_number(u_product, "u_product", fn, low=0.0, high=1.0)
    grad, common = _checked(fn, param, grad, learning_rate, clipvalue, grad_scale, weight_decay,
                            ema, ema_momentum, m=m, v=v)
    m_coef, g_coef, v_divisor, u_product = nadam_scalars(b1, b2, step, u_product)
    _core.nadam_update(param, grad, m, v, beta_1=b1, beta_2=b2, epsilon=eps, m_coef=m_coef,
                       g_coef=g_coef, v_divisor=v_divisor, **common)
    return u_product


def adamax_update(param, grad, m, norm, step, learning_rate=0.001, beta_1=0.9, beta_2=0.999,
                  epsilon=1e-7, *, clipvalue=None, grad_scale=1.0, weight_decay=None, ema=None,
                  ema_momentum=0.0):
    """One Keras Adamax step; norm is the exponentially weighted infinity norm."""
    fn = "adamax_update"
    step = _args.positive_int(step, "step", fn)
    b1, b2, eps = _betas(fn, beta_1, beta_2, epsilon)
    grad, common = _checked(fn, param, grad, learning_rate, clipvalue, grad_scale, weight_decay,
                            ema, ema_momentum, m=m, norm=norm)
    _core.adamax_update(param, grad, m, norm, step=step, beta_1=b1, beta_2=b2, epsilon=eps,
                        **common)


def sum_squares(arrays):
    """Sum of the squares of every value of these arrays (float64 result; the norm behind
    clipnorm and global_clipnorm), the same for any number of threads."""
    return _core.sum_squares([_args.float_array(a, f"arrays[{i}]", fn="sum_squares")
                              for i, a in enumerate(arrays)])
