"""Argument checks shared by cnnkit.ops.optimizer, cnnkit.reference.optimizer and the
optimizer classes, so that all three accept and refuse the same values: the options every
update shares (clipvalue, grad_scale, weight_decay, ema, ema_momentum) and the Nadam scalars."""
import math

from ._args import _prefix, real_number


def common_options(fn, clipvalue=None, grad_scale=1.0, weight_decay=None, ema_momentum=0.0):
    """(clipvalue, grad_scale, weight_decay, ema_momentum) as the kernels take them: 0 for
    no clipping and no decay."""
    clipvalue = 0.0 if clipvalue is None else real_number(clipvalue, "clipvalue", fn, low=0.0)
    if not isinstance(grad_scale, (int, float)) or isinstance(grad_scale, bool):
        raise TypeError(f"{_prefix(fn)}grad_scale must be a real number, got {grad_scale!r}")
    if not grad_scale >= 0 and not math.isnan(grad_scale):
        raise ValueError(f"{_prefix(fn)}grad_scale must be >= 0, got {grad_scale!r}")
    weight_decay = 0.0 if weight_decay is None else real_number(weight_decay, "weight_decay", fn, low=0.0)
    ema_momentum = real_number(ema_momentum, "ema_momentum", fn, low=0.0, high=1.0)
    return clipvalue, float(grad_scale), weight_decay, ema_momentum


def nadam_u(beta_1, step):
    """Nadam's momentum schedule u_t = beta_1 * (1 - 0.5 * 0.96^t) (Keras)."""
    return beta_1 * (1.0 - 0.5 * 0.96 ** step)


def nadam_scalars(beta_1, beta_2, step, u_product):
    """(m_coef, g_coef, v_divisor, new u_product) of Nadam's step `step` (1-based), given the
    product of u_1..u_{step-1} (1.0 before the first step), as Keras' Nadam computes them:
    m_hat = u_{t+1} m / (1 - prod_{t+1}) + (1 - u_t) g / (1 - prod_t), v_hat = v / (1 - beta_2^t)."""
    u_t, u_next = nadam_u(beta_1, step), nadam_u(beta_1, step + 1)
    product = u_product * u_t
    return (u_next / (1.0 - product * u_next), (1.0 - u_t) / (1.0 - product),
            1.0 - beta_2 ** step, product)


def nadam_u_product(beta_1, steps):
    """The product of u_1..u_steps: Nadam's state after `steps` updates (recomputed on load)."""
    product = 1.0
    for t in range(1, int(steps) + 1):
        product *= nadam_u(beta_1, t)
    return product


def clipnorm_scale(sum_of_squares, clipnorm):
    """Keras' clip by norm as one factor: g * clipnorm / max(||g||, clipnorm)."""
    return clipnorm / max(math.sqrt(sum_of_squares), clipnorm)


def global_clipnorm_scale(sum_of_squares, clipnorm):
    """Keras' clip_by_global_norm as one factor: clipnorm * min(1/norm, 1/clipnorm), NaN when
    the norm is not finite (Keras adds norm - norm)."""
    norm = math.sqrt(sum_of_squares)
    if not math.isfinite(norm):
        return math.nan
    inverse = math.inf if norm == 0 else 1.0 / norm
    return clipnorm * min(inverse, 1.0 / clipnorm)
