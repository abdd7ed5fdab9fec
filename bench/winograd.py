"""Winograd's F(2x2, 3x3) against the direct convolution paths (the packed GEMM, the few-channel
kernels), forward and backward, at the 3x3 stride-1 shapes of airbench94 (batch 256 by default),
ResNet-20 and the classic Keras CIFAR-10 CNN (batch 64).

    python bench/winograd.py [--batch 256] [--repeats 5] [--threads N] [--markdown]

Both paths run in one process, alternating within each repetition (cnnkit._core.set_winograd
switches between them); each time is the median over the repetitions. "speed-up" is the direct
path's time over Winograd's. GFLOP/s counts the direct convolution's 2 flops per multiply-add
(backward: the input and weight gradients), whichever path ran, so it is an effective rate.
"""
import argparse
import statistics
import time

import numpy as np

import cnnkit
from cnnkit import _core, ops
from _machine import cpu_name
from _tables import print_table

# (name, batch scale, H, W, C, OC, padding): airbench94's convolutions after the whitening layer
# (its widths 64/256/256), then ResNet-20's and the seed CNN's 3x3 stride-1 layers.
SHAPES = [
    ("airbench g1a 24->64 31x31", 1.0, 31, 31, 24, 64, "same"),
    ("airbench g1b 64->64 15x15", 1.0, 15, 15, 64, 64, "same"),
    ("airbench g2a 64->256 15x15", 1.0, 15, 15, 64, 256, "same"),
    ("airbench g2b 256->256 7x7", 1.0, 7, 7, 256, 256, "same"),
    ("airbench g3a 256->256 7x7", 1.0, 7, 7, 256, 256, "same"),
    ("airbench g3b 256->256 3x3", 1.0, 3, 3, 256, 256, "same"),
    ("ResNet-20 16->16 32x32", 0.25, 32, 32, 16, 16, "same"),
    ("ResNet-20 32->32 16x16", 0.25, 16, 16, 32, 32, "same"),
    ("ResNet-20 64->64 8x8", 0.25, 8, 8, 64, 64, "same"),
    ("seed CNN 32->32 32x32 valid", 0.25, 32, 32, 32, 32, "valid"),
    ("seed CNN 64->64 15x15 valid", 0.25, 15, 15, 64, 64, "valid"),
]


def timed(fn, winograd):
    def run():
        _core.set_winograd(winograd)
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    return run


def compare(fn, repeats):
    """Median seconds of fn with Winograd off, then on, alternating."""
    off, on = timed(fn, False), timed(fn, True)
    off(), on()  # warm: buffers grown, pages touched
    t_off, t_on = [], []
    for _ in range(repeats):
        t_off.append(off())
        t_on.append(on())
    return statistics.median(t_off), statistics.median(t_on)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if args.threads:
        cnnkit.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []
    for name, scale, h, w, c, oc, padding in SHAPES:
        n = max(1, int(args.batch * scale))
        x = rng.standard_normal((n, h, w, c), dtype=np.float32)
        k = rng.standard_normal((3, 3, c, oc), dtype=np.float32) * 0.05
        b = np.zeros(oc, np.float32)
        y = ops.conv2d_forward(x, k, b, padding=padding)
        dy = rng.standard_normal(y.shape, dtype=np.float32)
        macs = y.size * 9 * c
        fwd = compare(lambda: ops.conv2d_forward(x, k, b, padding=padding), args.repeats)
        bwd = compare(lambda: ops.conv2d_backward(dy, x, k, padding=padding), args.repeats)
        for part, (t_off, t_on), flops in (("forward", fwd, 2 * macs), ("backward", bwd, 4 * macs)):
            rows.append([f"{name} (N={n})", part, f"{t_off * 1e3:.1f}", f"{t_on * 1e3:.1f}",
                         f"{t_off / t_on:.2f}x", f"{flops / t_off / 1e9:.0f}",
                         f"{flops / t_on / 1e9:.0f}"])
    _core.set_winograd(True)
    print(f"CPU: {cpu_name()}; ISA {_core.simd_isa()}; {cnnkit.get_num_threads()} threads; "
          f"median of {args.repeats}")
    print_table(["shape", "pass", "direct ms", "Winograd ms", "speed-up", "direct GFLOP/s",
                 "Winograd eff. GFLOP/s"], rows, args.markdown, numeric_from=2)


if __name__ == "__main__":
    main()
