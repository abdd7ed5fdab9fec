"""One thread and two threads give the same results, within float tolerance."""

import numpy as np
import pytest

import cnnkit
from cnnkit import ops


@pytest.fixture
def threads():
    before = cnnkit.get_num_threads()
    yield cnnkit.set_num_threads
    cnnkit.set_num_threads(before)


def run_everything(rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    x = rng.standard_normal((6, 15, 15, 32)).astype(np.float32)
    k = rng.standard_normal((3, 3, 32, 64)).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    y = ops.conv2d_forward(x, k, b)
    dx, dk, db = ops.conv2d_backward(y, x, k)
    p = ops.maxpool2d_forward(y, pool_size=3, strides=2)
    dp = ops.maxpool2d_backward(p, y, pool_size=3, strides=2)
    flat = p.reshape(p.shape[0], -1)
    w = rng.standard_normal((flat.shape[1], 10)).astype(np.float32)
    logits = ops.dense_forward(flat, w)
    ddx, ddw, ddb = ops.dense_backward(logits, flat, w)
    loss, dlogits = ops.softmax_cross_entropy(np.arange(6) % 10, logits)
    r = ops.relu_forward(np.tile(x, (20, 1, 1, 1)))  # large enough to run in parallel
    return [y, dx, dk, db, p, dp, logits, ddx, ddw, ddb, np.float32(loss), dlogits, r]


def test_thread_controls(threads):
    threads(1)
    assert cnnkit.get_num_threads() == 1
    if cnnkit.openmp_enabled():
        threads(2)
        assert cnnkit.get_num_threads() == 2
    with pytest.raises(ValueError, match="threads"):
        cnnkit.set_num_threads(0)


def test_one_and_two_threads_agree(threads):
    threads(1)
    one = run_everything()
    threads(2)
    two = run_everything()
    for a, b in zip(one, two):
        # Sums split between threads round differently, by an error that follows the size of
        # their terms: Winograd's F(4x4) weight gradient differs by 1.8e-6 of its largest value
        # (4.4e3 here), so near-zero entries get an absolute tolerance from that scale.
        scale = float(np.abs(np.asarray(b)).max())
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=max(1e-3, 1e-5 * scale))


def test_the_thread_count_holds_for_kernels_called_from_other_python_threads(threads):
    import threading

    threads(1)
    seen = []
    worker = threading.Thread(target=lambda: seen.append(cnnkit.get_num_threads()))
    worker.start()
    worker.join()
    assert seen == [1]
