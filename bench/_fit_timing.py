"""What bench/train_cifar10.py and bench/train_autoencoder.py share: their command-line options,
the training images, and the timing of model.fit at several thread counts.

Each repetition runs `--steps` optimizer steps per contender (thread count), contenders
alternating so that noise from a shared machine hits them alike; the figure is the median over
repetitions, the best one beside it. --epoch times one full pass over the 50,000 training images
instead (once per contender).
"""
import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

import cnnkit
from cnnkit.cli.train_cifar10 import prepared_data
from cnnkit.datasets import DatasetNotFoundError
from cnnkit.utils import set_random_seed


def parser(description, steps):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--steps", type=int, default=steps, help=f"optimizer steps per timing (default {steps})")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", default=str(cnnkit.get_num_threads()),
                   help="comma-separated thread counts to compare (default: all cores)")
    p.add_argument("--data", metavar="DIR", help="folder with CIFAR-10 (default: $CNNKIT_DATA, cache)")
    p.add_argument("--synthetic", action="store_true", help="random images instead of CIFAR-10")
    p.add_argument("--epoch", action="store_true", help="time one full epoch (50,000 images) per contender")
    return p


def training_data(args):
    """(x, one-hot y, source name): real CIFAR-10 when load_data finds it, or random images of
    the same shape with --synthetic (speed does not depend on the pixels)."""
    images = 50000 if args.epoch else args.steps * args.batch_size
    if args.synthetic:
        rng = np.random.default_rng(0)
        x = rng.random((images, 32, 32, 3), dtype=np.float32)
        return x, np.eye(10, dtype=np.float32)[rng.integers(0, 10, images)], "synthetic"
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


def compare_threads(make_model, x, y, source, args, what=""):
    """Times model.fit on (x, y) for each thread count in args.threads and prints the table."""
    thread_counts = [int(t) for t in args.threads.split(",")]
    images = len(x)
    print(f"cnnkit {cnnkit.__version__}, {platform.machine()}, {os.cpu_count()} cores, "
          f"OpenMP {'on' if cnnkit.openmp_enabled() else 'off'}; {source}, {images} images per timing, "
          f"batch {args.batch_size}{what}")
    set_random_seed(0)
    models = {threads: make_model() for threads in thread_counts}
    warm = 4 * args.batch_size
    for threads, model in models.items():  # warm-up: first-call allocations, page faults
        timed_fit(model, x[:warm], y[:warm], args.batch_size, threads)

    seconds = {threads: [] for threads in thread_counts}
    for _ in range(1 if args.epoch else args.repeats):
        for threads, model in models.items():
            seconds[threads].append(timed_fit(model, x, y, args.batch_size, threads))

    print(f"{'threads':>7}  {'images/s (median)':>17}  {'images/s (best)':>15}  {'s per 50k epoch':>15}")
    for threads, times in seconds.items():
        median, best = statistics.median(times), min(times)
        print(f"{threads:>7}  {images / median:>17.0f}  {images / best:>15.0f}  {50000 * median / images:>15.1f}")
