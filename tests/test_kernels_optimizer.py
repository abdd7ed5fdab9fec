"""The fused optimizer kernels (cnnkit.ops) against the NumPy reference in float64, for every
optimizer and every shared option (clipvalue, grad_scale, weight decay, EMA), over several steps,
on 1 and 2 threads (bit-identical results), and the sum of squares behind clipnorm."""
import numpy as np
import pytest

import cnnkit
from cnnkit import ops, reference as R

from test_step_allocations import traced_growth

# (name, slot names, extra keyword arguments of both functions)
CASES = [
    ("sgd", ["velocity"], dict(learning_rate=0.1, momentum=0.0)),
    ("sgd", ["velocity"], dict(learning_rate=0.1, momentum=0.9)),
    ("sgd", ["velocity"], dict(learning_rate=0.1, momentum=0.9, nesterov=True)),
    ("rmsprop", ["velocity"], dict(learning_rate=0.01)),
    ("rmsprop", ["velocity", "momentum_buf"], dict(learning_rate=0.01, momentum=0.5)),
    ("rmsprop", ["velocity", "average_grad"], dict(learning_rate=0.01, centered=True)),
    ("rmsprop", ["velocity", "momentum_buf", "average_grad"],
     dict(learning_rate=0.01, momentum=0.5, centered=True, rho=0.8)),
    ("adam", ["m", "v"], dict(learning_rate=0.01)),
    ("adam", ["m", "v", "velocity_hat"], dict(learning_rate=0.01, beta_1=0.8)),
    ("adagrad", ["accumulator"], dict(learning_rate=0.1)),
    ("nadam", ["m", "v"], dict(learning_rate=0.01)),
    ("adamax", ["m", "norm"], dict(learning_rate=0.01, beta_2=0.99)),
]
COMMON = [
    {},
    dict(clipvalue=0.3),
    dict(grad_scale=0.5),
    dict(weight_decay=0.1),
    dict(ema_momentum=0.9),   # with an ema array
    dict(clipvalue=0.5, weight_decay=0.05, ema_momentum=0.5),
]


def _run(family, name, slot_names, kwargs, common, param, grads, dtype):
    """Steps of family.<name>_update from param; returns param and the slots (and the EMA)."""
    fn = getattr(family, f"{name}_update")
    param = param.astype(dtype)
    slots = {s: np.full_like(param, 0.1 if s == "accumulator" else 0.0) for s in slot_names}
    common = dict(common)
    ema = None
    if "ema_momentum" in common:
        ema = param.copy()
        common["ema"] = ema
    u_product = 1.0
    for step, grad in enumerate(grads, start=1):
        g = grad.astype(np.float32 if family is ops else dtype)
        if name == "sgd":
            fn(param, g, slots["velocity"] if kwargs["momentum"] else None, **kwargs, **common)
        elif name == "rmsprop":
            fn(param, g, slots["velocity"], slots.get("momentum_buf"), slots.get("average_grad"),
               **kwargs, **common)
        elif name == "adam":
            fn(param, g, slots["m"], slots["v"], step, velocity_hat=slots.get("velocity_hat"),
               **kwargs, **common)
        elif name == "adagrad":
            fn(param, g, slots["accumulator"], **kwargs, **common)
        elif name == "nadam":
            u_product = fn(param, g, slots["m"], slots["v"], step, u_product, **kwargs, **common)
        elif name == "adamax":
            fn(param, g, slots["m"], slots["norm"], step, **kwargs, **common)
    return [param] + list(slots.values()) + ([ema] if ema is not None else [])


def _data(shape=(7, 5), steps=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=shape).astype(np.float32), [
        rng.normal(size=shape).astype(np.float32) for _ in range(steps)]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{'-'.join(map(str, c[2].items()))}")
@pytest.mark.parametrize("common", COMMON, ids=lambda c: "-".join(c) or "plain")
def test_kernel_matches_reference(case, common):
    name, slot_names, kwargs = case
    param, grads = _data()
    got = _run(ops, name, slot_names, kwargs, common, param, grads, np.float32)
    want = _run(R, name, slot_names, kwargs, common, param, grads, np.float64)
    assert not np.array_equal(got[0], param)   # the step moved the parameter
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("case", [CASES[2], CASES[6], CASES[8], CASES[10]], ids=lambda c: c[0])
def test_large_arrays_do_not_depend_on_the_thread_count(case):
    # Past the parallel threshold (32768 values) OpenMP splits the loop; every element is
    # updated on its own, so 1 and 2 threads give the same bits.
    name, slot_names, kwargs = case
    param, grads = _data(shape=(300, 257), steps=2)
    common = dict(clipvalue=1.0, weight_decay=0.01, ema_momentum=0.9)
    old = cnnkit.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            cnnkit.set_num_threads(threads)
            results.append(_run(ops, name, slot_names, kwargs, common, param, grads, np.float32))
    finally:
        cnnkit.set_num_threads(old)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_sum_squares_matches_numpy_and_any_thread_count():
    rng = np.random.default_rng(1)
    arrays = [rng.normal(size=s).astype(np.float32) for s in [(3,), (200, 300), (5, 5, 7)]]
    want = R.sum_squares(arrays)
    old = cnnkit.get_num_threads()
    try:
        got = []
        for threads in (1, 2):
            cnnkit.set_num_threads(threads)
            got.append(ops.sum_squares(arrays))
    finally:
        cnnkit.set_num_threads(old)
    assert got[0] == got[1]
    assert got[0] == pytest.approx(want, rel=1e-12)


def test_clipvalue_clips_and_nan_passes():
    param = np.zeros(4, np.float32)
    ops.sgd_update(param, np.array([-5, -0.1, 0.1, 5], np.float32), learning_rate=1.0, clipvalue=1.0)
    np.testing.assert_array_equal(param, np.float32([1, 0.1, -0.1, -1]))
    ops.sgd_update(param, np.array([np.nan, 0, 0, 0], np.float32), learning_rate=1.0, clipvalue=1.0)
    assert np.isnan(param[0]) and np.isfinite(param[1:]).all()


def test_weight_decay_is_applied_before_the_step():
    # Keras: var -= var * wd * lr, then the update; with a zero gradient only the decay acts.
    param = np.array([2.0, -4.0], np.float32)
    ops.sgd_update(param, np.zeros(2, np.float32), learning_rate=0.5, weight_decay=0.1)
    np.testing.assert_allclose(param, [2.0 * 0.95, -4.0 * 0.95], rtol=1e-6)


def test_a_warm_update_allocates_no_array():
    param, grads = _data(shape=(64, 64), steps=1)
    m, v, ema = np.zeros_like(param), np.zeros_like(param), param.copy()
    grad = grads[0]

    def step():
        ops.adam_update(param, grad, m, v, 3, learning_rate=0.001, clipvalue=1.0,
                        weight_decay=0.01, ema=ema, ema_momentum=0.9)
    step()
    assert max(traced_growth(step)) < 4096


@pytest.mark.parametrize("call, error, words", [
    (lambda p, g: ops.adam_update(p, g, p.copy(), p.copy(), 1, clipvalue=-1), ValueError, ["clipvalue"]),
    (lambda p, g: ops.adam_update(p, g, p.copy(), p.copy(), 1, weight_decay=-1), ValueError, ["weight_decay"]),
    (lambda p, g: ops.adam_update(p, g, p.copy(), p.copy(), 1, ema=p.copy(), ema_momentum=2),
     ValueError, ["ema_momentum"]),
    (lambda p, g: ops.adam_update(p, g, p.copy(), p.copy(), 1, ema=np.zeros(5, np.float32)),
     ValueError, ["ema", "shape"]),
    (lambda p, g: ops.rmsprop_update(p, g, p.copy(), momentum=0.5), ValueError, ["momentum_buf"]),
    (lambda p, g: ops.rmsprop_update(p, g, p.copy(), centered=True), ValueError, ["average_grad"]),
    (lambda p, g: ops.rmsprop_update(p, g, p.copy(), rho=1.5), ValueError, ["rho"]),
    (lambda p, g: ops.adagrad_update(p, g, p.copy(), learning_rate=-0.1), ValueError, ["learning_rate"]),
    (lambda p, g: ops.nadam_update(p, g, p.copy(), p.copy(), 0), ValueError, ["step"]),
    (lambda p, g: ops.adamax_update(p, g, p.copy(), p.astype(np.float64), 1), TypeError, ["norm"]),
    (lambda p, g: ops.adam_update(p, g, p.copy(), p.copy(), 1,
                                  learning_rate=cnnkit.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)),
     TypeError, ["learning_rate"]),
])
def test_bad_arguments(call, error, words):
    p, g = np.zeros((2, 3), np.float32), np.ones((2, 3), np.float32)
    with pytest.raises(error) as info:
        call(p, g)
    assert all(w in str(info.value) for w in words), str(info.value)


def test_core_checks_shapes_itself():
    p = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="velocity_hat"):
        cnnkit._core.adam_update(p, p.copy(), p.copy(), p.copy(), np.zeros(4, np.float32), step=1,
                                 beta_1=0.9, beta_2=0.999, epsilon=1e-7, learning_rate=0.1)
    with pytest.raises(ValueError, match="learning_rate"):
        cnnkit._core.sgd_update(p, p.copy(), None, momentum=0.0, nesterov=False,
                                learning_rate=float("nan"))


@pytest.mark.parametrize("seed", range(4))
def test_fuzz_random_shapes_and_options(seed):
    rng = np.random.default_rng(100 + seed)
    shape = tuple(int(d) for d in rng.integers(1, 9, size=rng.integers(1, 4)))
    name, slot_names, kwargs = CASES[rng.integers(len(CASES))]
    common = COMMON[rng.integers(len(COMMON))]
    param, grads = _data(shape=shape, steps=3, seed=seed)
    got = _run(ops, name, slot_names, kwargs, common, param, grads, np.float32)
    want = _run(R, name, slot_names, kwargs, common, param, grads, np.float64)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6)
