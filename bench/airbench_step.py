"""Seconds per training step of airbench94 (batch 1024 by default) and per TTA batch on the
direct paths, on Winograd's F(2x2, 3x3) alone, and on cnnkit's measured choice of tile sizes
(F(4x4, 3x3) where it measured faster), alternating in one process.

    python bench/airbench_step.py [--batch 1024] [--steps 3] [--repeats 3] [--threads N]

Each repetition times --steps training steps (train_on_batch on random images, after one warm
step), then a predict of the same batch, with cnnkit._core.set_winograd(False), then
set_winograd_tile(2) (F(2x2) wherever a 3x3 stride-1 convolution has a 2x2 output or more), then
the default, set_winograd_tile(0). Prints the medians and their ratios to the direct paths'.
"""
import argparse
import statistics
import time

import numpy as np

import cnnkit
from cnnkit import _core, losses, optimizers
from cnnkit.applications import airbench94, patch_whitening_kernel
from _machine import cpu_name


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    if args.threads:
        cnnkit.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 32, 32, 3), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, args.batch)]
    model = airbench94()
    whiten = model.get_layer("whiten")
    whiten.kernel[...] = patch_whitening_kernel(x[:512])  # as the recipe does: finite steps
    model.compile(optimizer=optimizers.SGD(0.01, momentum=0.85, nesterov=True),
                  loss=losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2))
    model.train_on_batch(x, y)  # warm: buffers grown

    paths = {"direct": (False, 0), "F(2x2)": (True, 2), "measured choice": (True, 0)}

    def run(winograd, tile):
        _core.set_winograd(winograd)
        _core.set_winograd_tile(tile)
        start = time.perf_counter()
        for _ in range(args.steps):
            model.train_on_batch(x, y)
        step = (time.perf_counter() - start) / args.steps
        start = time.perf_counter()
        model.predict(x, batch_size=args.batch, verbose=0)
        return step, time.perf_counter() - start

    times = {name: [] for name in paths}
    for name in paths:
        run(*paths[name])  # warm each path's buffers
    for _ in range(args.repeats):
        for name, path in paths.items():
            times[name].append(run(*path))
    _core.set_winograd(True)
    _core.set_winograd_tile(0)
    print(f"CPU: {cpu_name()}; ISA {_core.simd_isa()}; {cnnkit.get_num_threads()} threads; "
          f"batch {args.batch}; median of {args.repeats}")
    med = {name: [statistics.median(t[i] for t in times[name]) for i in (0, 1)] for name in times}
    for i, what in enumerate(("training step", "predict")):
        direct = med["direct"][i]
        print(f"{what}: " + ", ".join(
            f"{name} {med[name][i]:.2f} s" + ("" if name == "direct" else
                                              f" ({direct / med[name][i]:.2f}x)")
            for name in paths))


if __name__ == "__main__":
    main()
