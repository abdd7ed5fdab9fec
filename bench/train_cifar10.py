"""Training speed of the classic Keras CIFAR-10 CNN in cnnkit: images per second through
model.fit (forward, backward and Adam update; no validation), at one or more thread counts.

    python bench/train_cifar10.py [--steps 60] [--batch-size 64] [--repeats 3] [--threads 1,2]
                                  [--data DIR | --synthetic] [--epoch]

Each repetition runs `--steps` optimizer steps per contender (thread count), contenders
alternating within the repetition so that noise from a shared machine hits them alike; the
figure is the median over repetitions, the best one is shown beside it. --epoch times one full
pass over the 50,000 training images instead (once per contender). Real CIFAR-10 is used when
load_data finds it (--data DIR, $CNNKIT_DATA, ~/.cnnkit/datasets); --synthetic uses random
images of the same shape, for machines without the data (speed does not depend on the pixels).
Defaults take about a minute on 2 cores.
"""
import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

import cnnkit
from cnnkit.cli.train_cifar10 import classic_cnn, prepared_data
from cnnkit.datasets import DatasetNotFoundError
from cnnkit.utils import set_random_seed


def training_data(args, images):
    if args.synthetic:
        rng = np.random.default_rng(0)
        x = rng.random((images, 32, 32, 3), dtype=np.float32)
        y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, images)]
        return x, y, "synthetic"
    try:
        (x, y), _ = prepared_data(args.data, limit=images)
    except DatasetNotFoundError as error:
        sys.exit(f"{error}\n\nOr run with --synthetic to time random images of the same shape.")
    return x, y, "CIFAR-10"


def timed_fit(model, x, y, batch_size, threads):
    cnnkit.set_num_threads(threads)
    start = time.perf_counter()
    model.fit(x, y, epochs=1, batch_size=batch_size, verbose=0, shuffle=False)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps per timing (default 60)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", default=str(cnnkit.get_num_threads()),
                        help="comma-separated thread counts to compare (default: all cores)")
    parser.add_argument("--data", metavar="DIR", help="folder with CIFAR-10 (default: $CNNKIT_DATA, cache)")
    parser.add_argument("--synthetic", action="store_true", help="random images instead of CIFAR-10")
    parser.add_argument("--epoch", action="store_true", help="time one full epoch (50,000 images) per contender")
    args = parser.parse_args()
    thread_counts = [int(t) for t in args.threads.split(",")]
    images = 50000 if args.epoch else args.steps * args.batch_size
    x, y, source = training_data(args, images)
    images = len(x)

    print(f"cnnkit {cnnkit.__version__}, {platform.machine()}, {os.cpu_count()} cores, "
          f"OpenMP {'on' if cnnkit.openmp_enabled() else 'off'}; {source}, {images} images per timing, "
          f"batch {args.batch_size}")
    set_random_seed(0)
    models = {threads: classic_cnn() for threads in thread_counts}
    for threads, model in models.items():  # warm-up: first-call allocations, page faults
        timed_fit(model, x[:4 * args.batch_size], y[:4 * args.batch_size], args.batch_size, threads)

    repeats = 1 if args.epoch else args.repeats
    seconds = {threads: [] for threads in thread_counts}
    for _ in range(repeats):
        for threads, model in models.items():
            seconds[threads].append(timed_fit(model, x, y, args.batch_size, threads))

    print(f"{'threads':>7}  {'images/s (median)':>17}  {'images/s (best)':>15}  {'s per 50k epoch':>15}")
    for threads, times in seconds.items():
        median, best = statistics.median(times), min(times)
        print(f"{threads:>7}  {images / median:>17.0f}  {images / best:>15.0f}  {50000 * median / images:>15.1f}")


if __name__ == "__main__":
    main()
