"""Training speed of cnnkit's convolutional autoencoder (cnnkit.models.conv_autoencoder on
32x32x3 images, code 256): images per second through model.fit (forward, backward and Adam
update; no validation), at one or more thread counts.

    python bench/train_autoencoder.py [--steps 40] [--batch-size 64] [--repeats 3] [--threads 1,2]
                                      [--code-size 256] [--data DIR | --synthetic] [--epoch]

Timed as bench/train_cifar10.py times the classic CNN: each repetition runs `--steps` optimizer
steps per contender (thread count), contenders alternating so that noise from a shared machine
hits them alike; the figure is the median over repetitions, the best one beside it. --epoch
times one full pass over the 50,000 training images instead (once per contender). Real CIFAR-10
when load_data finds it; --synthetic uses random images (speed does not depend on the pixels).
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
from cnnkit.cli.train_cifar10 import prepared_data
from cnnkit.datasets import DatasetNotFoundError
from cnnkit.models import conv_autoencoder
from cnnkit.utils import set_random_seed


def training_images(args, images):
    if args.synthetic:
        return np.random.default_rng(0).random((images, 32, 32, 3), dtype=np.float32), "synthetic"
    try:
        (x, _), _ = prepared_data(args.data, limit=images)
    except DatasetNotFoundError as error:
        sys.exit(f"{error}\n\nOr run with --synthetic to time random images of the same shape.")
    return x, "CIFAR-10"


def timed_fit(model, x, batch_size, threads):
    cnnkit.set_num_threads(threads)
    start = time.perf_counter()
    model.fit(x, x, epochs=1, batch_size=batch_size, verbose=0, shuffle=False)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per timing (default 40)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--code-size", type=int, default=256)
    parser.add_argument("--threads", default=str(cnnkit.get_num_threads()),
                        help="comma-separated thread counts to compare (default: all cores)")
    parser.add_argument("--data", metavar="DIR", help="folder with CIFAR-10 (default: $CNNKIT_DATA, cache)")
    parser.add_argument("--synthetic", action="store_true", help="random images instead of CIFAR-10")
    parser.add_argument("--epoch", action="store_true", help="time one full epoch (50,000 images) per contender")
    args = parser.parse_args()
    thread_counts = [int(t) for t in args.threads.split(",")]
    x, source = training_images(args, 50000 if args.epoch else args.steps * args.batch_size)
    images = len(x)

    print(f"cnnkit {cnnkit.__version__}, {platform.machine()}, {os.cpu_count()} cores, "
          f"OpenMP {'on' if cnnkit.openmp_enabled() else 'off'}; {source}, {images} images per timing, "
          f"batch {args.batch_size}, code {args.code_size}")
    set_random_seed(0)
    models = {threads: conv_autoencoder(code_size=args.code_size)[0] for threads in thread_counts}
    for threads, model in models.items():  # warm-up: first-call allocations, page faults
        timed_fit(model, x[:4 * args.batch_size], args.batch_size, threads)

    repeats = 1 if args.epoch else args.repeats
    seconds = {threads: [] for threads in thread_counts}
    for _ in range(repeats):
        for threads, model in models.items():
            seconds[threads].append(timed_fit(model, x, args.batch_size, threads))

    print(f"{'threads':>7}  {'images/s (median)':>17}  {'images/s (best)':>15}  {'s per 50k epoch':>15}")
    for threads, times in seconds.items():
        median, best = statistics.median(times), min(times)
        print(f"{threads:>7}  {images / median:>17.0f}  {images / best:>15.0f}  {50000 * median / images:>15.1f}")


if __name__ == "__main__":
    main()
