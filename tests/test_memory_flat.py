"""Issue #6: a thousand training steps leave the process's memory flat. The layers reuse their
buffers from step to step (test_step_allocations.py bounds one step); this test runs many and
watches both what Python and NumPy hold (tracemalloc) and what the process holds (its resident
set, which would also show a leak in the C++ kernels). bench/memory_flat.py does the same for
the CIFAR-10 classifier."""
import sys
import tracemalloc

import numpy as np
import pytest

import cnnkit
from cnnkit import layers, models
from cnnkit.utils import set_random_seed


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


# one_thread (conftest.py): tiny steps run faster on one thread, and are immune to a busy core.
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_a_thousand_training_steps_leave_memory_flat(one_thread):
    set_random_seed(0)
    model = models.Sequential([layers.Input((16, 16, 3)), layers.Conv2D(8, 3, activation="relu"),
                               layers.MaxPooling2D(), layers.Dropout(0.2), layers.Flatten(),
                               layers.Dense(10, activation="softmax")])
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.random((24, 16, 16, 3), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 24)]
    x7, y7 = x[:7], y[:7]  # a second batch size, as an epoch's last, partial batch

    def steps(n):
        for _ in range(n):
            model.train_on_batch(x, y)
            model.train_on_batch(x7, y7)
        model.predict_on_batch(x7)  # its outputs belong to the caller: kept by nothing

    tracemalloc.start()  # before warming, so that what a step frees is traced as well
    try:
        steps(50)  # warm: buffers, the allocator's pools
        traced_before, rss_before = tracemalloc.get_traced_memory()[0], resident_bytes()
        steps(500)  # 1000 training steps
        traced_after, rss_after = tracemalloc.get_traced_memory()[0], resident_bytes()
    finally:
        tracemalloc.stop()
    print(f"traced +{traced_after - traced_before} B, resident +{rss_after - rss_before} B")
    assert traced_after - traced_before < 16 * 1024
    assert rss_after - rss_before < 2 * 1024 * 1024
