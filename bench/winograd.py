"""Winograd's F(2x2, 3x3) and F(4x4, 3x3) against the direct convolution paths (the packed GEMM,
the few-channel kernels), forward and backward, at the 3x3 stride-1 shapes of airbench94 (batch
256 by default), ResNet-20 and the classic Keras CIFAR-10 CNN (batch 64). F(4x4) runs twice:
through the packed GEMMs, and unpacked (conv2d_winograd_fused.cpp, "F(4x4) unp."), at the shapes
its rule takes (conv2d_winograd.cpp's fused_rule; on AVX2 only): elsewhere the packed one runs in
both columns.

    python bench/winograd.py [--batch 256] [--repeats 5] [--threads N] [--forward-only] [--markdown]

The four run in one process, alternating within each repetition (cnnkit._core.set_winograd,
set_winograd_tile and set_winograd_fused switch between them, each tile size forced onto every
shape); each time is the median over the repetitions. "F2x", "F4x" and "F4ux" are the direct
path's time over each one's. The unpacked driver runs only the forward pass (and the input
gradient, a forward pass of the turned kernel); the two give bit-identical outputs.
The backward pass's input gradient is the forward pass of the turned kernel, so it takes the
forced tile size too; the weight gradient is F(2x2)'s or the direct one by its own rule.
GFLOP/s counts the direct convolution's 2 flops per multiply-add (backward: the input and
weight gradients), whichever path ran, so it is an effective rate.
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


PATHS = (("direct", False, 0, False), ("F(2x2)", True, 2, False), ("F(4x4)", True, 4, False),
         ("F(4x4) unpacked", True, 4, True))


def timed(fn, winograd, tile, fused):
    def run():
        _core.set_winograd(winograd)
        _core.set_winograd_tile(tile)
        _core.set_winograd_fused(fused)
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    return run


def compare(fn, repeats):
    """Median seconds of fn on each of PATHS, alternating."""
    runs = [timed(fn, on, tile, fused) for _, on, tile, fused in PATHS]
    for run in runs:
        run()  # warm: buffers grown, pages touched
    times = [[] for _ in runs]
    for _ in range(repeats):
        for run, t in zip(runs, times):
            t.append(run())
    return [statistics.median(t) for t in times]


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--forward-only", action="store_true")
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
        parts = [("forward", lambda: ops.conv2d_forward(x, k, b, padding=padding), 2 * macs)]
        if not args.forward_only:
            parts.append(("backward", lambda: ops.conv2d_backward(dy, x, k, padding=padding),
                          4 * macs))
        for part, fn, flops in parts:
            direct, f2, f4, f4u = compare(fn, args.repeats)
            rows.append([f"{name} (N={n})", part, f"{direct * 1e3:.1f}", f"{f2 * 1e3:.1f}",
                         f"{f4 * 1e3:.1f}", f"{f4u * 1e3:.1f}", f"{direct / f2:.2f}x",
                         f"{direct / f4:.2f}x", f"{direct / f4u:.2f}x",
                         f"{flops / direct / 1e9:.0f}", f"{flops / min(f2, f4, f4u) / 1e9:.0f}"])
    _core.set_winograd(True)
    _core.set_winograd_tile(0)
    _core.set_winograd_fused(True)
    print(f"CPU: {cpu_name()}; ISA {_core.simd_isa()}; {cnnkit.get_num_threads()} threads; "
          f"median of {args.repeats}")
    print_table(["shape", "pass", "direct ms", "F(2x2) ms", "F(4x4) ms", "F(4x4) unp. ms", "F2x",
                 "F4x", "F4ux",
                 "direct GFLOP/s", "best Winograd eff. GFLOP/s"], rows, args.markdown,
                numeric_from=2)


if __name__ == "__main__":
    main()
