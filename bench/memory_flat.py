"""Memory over a thousand training steps of the CIFAR-10 classifier (issue #6).

Prints the process's resident set (and what tracemalloc sees of Python and NumPy) every 100 steps
of train_on_batch on random CIFAR-shaped batches: after the first steps have made the layers'
buffers, both should stay flat. Linux only (reads /proc/self/statm).

    python bench/memory_flat.py [--steps 1000] [--batch-size 64] [--threads N]
"""
import argparse
import tracemalloc

import numpy as np

import cnnkit
from cnnkit.applications import classic_cnn
from cnnkit.utils import set_random_seed


def resident_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=cnnkit.get_num_threads())
    args = p.parse_args()
    cnnkit.set_num_threads(args.threads)
    set_random_seed(0)
    model = classic_cnn()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.random((args.batch_size, 32, 32, 3), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, args.batch_size)]
    tracemalloc.start()
    print(f"{'step':>6} {'resident MB':>12} {'traced KB':>10}")
    print(f"{0:>6} {resident_mb():>12.2f} {tracemalloc.get_traced_memory()[0] / 1024:>10.1f}")
    for step in range(1, args.steps + 1):
        model.train_on_batch(x, y)
        if step % 100 == 0 or step in (1, 10):
            print(f"{step:>6} {resident_mb():>12.2f} "
                  f"{tracemalloc.get_traced_memory()[0] / 1024:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
