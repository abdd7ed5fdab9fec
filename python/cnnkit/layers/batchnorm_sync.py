"""Synchronized BatchNormalization (Keras' synchronized=True, PyTorch's SyncBatchNorm): in
distributed training, the statistics of the global batch, summed over the ranks, instead of
each rank's own.

Forward: each rank sums its values per channel, the sums are added over the ranks (with the
count) to give the global mean; then the squared deviations from it, likewise, to give the
global (biased) variance; the C++ inference kernel then normalises with them, and the moving
statistics are updated as the training kernel would.

Backward: the training gradient of x needs the global batch's sums of dy and dy * xhat. The
inference-mode kernel gives dx = dy * gamma * invstd and this rank's sums (its dbeta and
dgamma); those sums, scaled by the rank's share s of the global batch (the step's loss is the
global mean: see distribute/gradient_buckets.py), are added over the ranks, and
    dx -= gamma * invstd / (s * M) * (sum dy + xhat * sum dy * xhat)
with M the global count. dgamma and dbeta stay the rank's own: the gradient buckets sum them.

A rank with no samples in a step calls idle() instead, adding zeros, so that the collectives
meet. Float64 sums; this path allocates (it is an option, not the default).
"""
import numpy as np

from .. import _core

__all__ = ["forward", "backward", "idle"]


def _view(x, axis):
    """x as (outer, C, inner)."""
    shape = x.shape
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    return x.reshape(outer, shape[axis], inner)


def _global_statistics(layer, xv, world):
    """(mean, biased variance, count) of each channel over every rank's batch (float64);
    xv None: this rank has no samples (it adds zeros)."""
    c = layer.moving_mean.shape[0]
    sums = np.zeros(c + 1, np.float64)
    if xv is not None:
        sums[:c] = xv.sum(axis=(0, 2), dtype=np.float64)
        sums[c] = xv.shape[0] * xv.shape[2]
    world.allreduce(sums, f'BatchNormalization "{layer.name}": the batch mean')
    count = sums[c]
    mean = sums[:c] / max(count, 1.0)
    squares = np.zeros(c, np.float64)
    if xv is not None and xv.size:
        deviations = xv - mean[None, :, None]
        squares = np.einsum("ocI,ocI->c", deviations, deviations, dtype=np.float64)
    world.allreduce(squares, f'BatchNormalization "{layer.name}": the batch variance')
    return mean, squares / max(count, 1.0), count


def _update_moving(layer, mean, var):
    """moving = moving * momentum + batch * (1 - momentum), in float32 as the C++ kernel."""
    momentum = np.float32(layer.momentum)
    for moving, batch in ((layer.moving_mean, mean), (layer.moving_variance, var)):
        moving *= momentum
        moving += np.asarray(batch, np.float32) * (np.float32(1) - momentum)


def forward(layer, call, x, buffers, relu, parallel):
    axis = layer._axis
    c = layer.moving_mean.shape[0]
    mean, var, call.count = _global_statistics(layer, _view(x, axis), parallel.world)
    call.mean = buffers("mean", (c,))
    call.mean[...] = mean
    var32 = buffers("var", (c,))
    var32[...] = var
    y, call.invstd = _core.batchnorm_forward_infer(
        x, layer.gamma, layer.beta, call.mean, var32, axis, layer.epsilon, relu,
        out=buffers("y", x.shape), invstd_out=buffers("invstd", (c,)))
    _update_moving(layer, call.mean, var32)
    return y


def backward(layer, call, dy, need_dx, parallel):
    x, axis = call.x, layer._axis
    c = layer.moving_mean.shape[0]
    grads = call.grad_buffers()
    dx, dgamma, dbeta = _core.batchnorm_backward(
        dy, x, call.mean, call.invstd, layer.gamma, axis, False, call.relu_y,
        need_dx=need_dx, dx_out=call.buf("dx", x.shape) if need_dx else None,
        dgamma_out=grads("gamma", (c,)), dbeta_out=grads("beta", (c,)))
    if need_dx:
        scale = parallel.scale
        sums = np.empty(2 * c, np.float64)
        sums[:c], sums[c:] = dbeta, dgamma
        sums *= scale
        parallel.world.allreduce(sums, f'BatchNormalization "{layer.name}": the gradient sums')
        invstd = call.invstd.astype(np.float64)
        gamma = np.ones(c) if layer.gamma is None else layer.gamma.astype(np.float64)
        factor = gamma * invstd / (scale * call.count)
        xhat = (_view(x, axis) - call.mean[None, :, None]) * invstd[None, :, None]
        correction = factor[None, :, None] * (sums[None, :c, None] + xhat * sums[None, c:, None])
        dxv = _view(dx, axis)
        dxv -= correction.astype(np.float32)
    return dx, dgamma, dbeta


def idle(layer, parallel, phase):
    """A rank without samples: zeros to the sums, and the moving statistics updated with the
    global ones as on every other rank."""
    if phase == "forward":
        mean, var, _ = _global_statistics(layer, None, parallel.world)
        _update_moving(layer, mean, var)
    else:
        c = layer.moving_mean.shape[0]
        parallel.world.allreduce(np.zeros(2 * c),
                                 f'BatchNormalization "{layer.name}": the gradient sums')
