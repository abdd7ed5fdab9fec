"""optimizer.set_learning_rate_multiplier: per-parameter learning rates (a PyTorch parameter
group's lr; airbench's 64x rate on batch-norm biases), checked against the plain optimizer run
with the multiplied rate."""
import numpy as np
import pytest

from cnnkit import optimizers


def _params(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(4,)).astype(np.float32)]


def _run(make, params, steps=3, setup=None):
    opt = make()
    if setup:
        setup(opt, params)
    rng = np.random.default_rng(1)
    for _ in range(steps):
        opt.apply([rng.normal(size=p.shape).astype(np.float32) for p in params], params)
    return params


@pytest.mark.parametrize("make, scaled", [
    (lambda lr=0.1: optimizers.SGD(lr, momentum=0.85, nesterov=True, weight_decay=0.05),
     lambda: optimizers.SGD(0.4, momentum=0.85, nesterov=True, weight_decay=0.05)),
    (lambda lr=0.1: optimizers.Adam(lr, weight_decay=0.05),
     lambda: optimizers.Adam(0.4, weight_decay=0.05))])
def test_a_multiplier_is_the_rate_times_it_for_those_parameters(make, scaled):
    with_multiplier = _run(make, _params(), setup=lambda opt, ps:
                           opt.set_learning_rate_multiplier([ps[1]], 4.0))
    plain = _run(make, _params())
    fast = _run(scaled, _params())
    np.testing.assert_allclose(with_multiplier[0], plain[0], rtol=1e-6)  # the others: as ever
    np.testing.assert_allclose(with_multiplier[1], fast[1], rtol=1e-5, atol=1e-7)


def test_keep_weight_decay_keeps_the_decay_step():
    # gradients of zero: the only change is the decoupled decay, lr x weight_decay
    params = _params()
    before = params[1].copy()
    opt = optimizers.SGD(0.1, weight_decay=0.5)
    opt.set_learning_rate_multiplier([params[1]], 64.0, keep_weight_decay=True)
    opt.apply([np.zeros_like(p) for p in params], params)
    np.testing.assert_allclose(params[1], before * (1 - 0.1 * 0.5), rtol=1e-6)
    other = _params()
    opt = optimizers.SGD(0.1, weight_decay=0.5)
    opt.set_learning_rate_multiplier([other[1]], 2.0)
    opt.apply([np.zeros_like(p) for p in other], other)
    np.testing.assert_allclose(other[1], before * (1 - 0.2 * 0.5), rtol=1e-6)


def test_arguments_are_checked():
    opt = optimizers.SGD()
    with pytest.raises(ValueError, match="multiplier"):
        opt.set_learning_rate_multiplier([np.zeros(2, np.float32)], -1)
    with pytest.raises(TypeError, match="weight arrays"):
        opt.set_learning_rate_multiplier(["bias"], 2.0)
    with pytest.raises(ValueError, match="needs a multiplier > 0"):
        opt.set_learning_rate_multiplier([np.zeros(2, np.float32)], 0.0, keep_weight_decay=True)


@pytest.mark.parametrize("make", [
    lambda: optimizers.SGD(0.1, momentum=0.9),
    lambda: optimizers.Adagrad(0.1, initial_accumulator_value=0.3),
    lambda: optimizers.Adam(0.1, use_ema=True)])
def test_reset_slots_starts_those_parameters_afresh(make):
    """After reset_slots, a parameter's next steps are those of a fresh optimizer (the others
    keep their state)."""
    params = _params()
    opt = make()
    rng = np.random.default_rng(2)
    for _ in range(3):
        opt.apply([rng.normal(size=p.shape).astype(np.float32) for p in params], params)
    kept = [s.copy() for s in opt._slots[0]]
    opt.reset_slots([params[1]])
    fresh = make()
    fresh.build([params[1]])
    for a, b in zip(opt._slots[1], fresh._slots[0]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(opt._slots[0], kept):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match="weight arrays"):
        opt.reset_slots(["bias"])
