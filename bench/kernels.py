"""Times every cnnkit kernel, forward and backward, against its NumPy reference at the shapes of
the classic Keras CIFAR-10 CNN (batch 64), and the machine's float32 matmul rate in the same run.

    python bench/kernels.py [--batch 64] [--repeats 5] [--threads N] [--markdown]

Contenders alternate within each repetition (the machines are shared and noisy); each time is the
median over the repetitions. GFLOP/s counts 2 flops per multiply-add of the convolutions and
dense layers (backward: the input and weight gradients).
"""

import os

# OpenBLAS's idle threads spin for about 2^28 cycles (a tenth of a second) after each NumPy
# matmul; on a 2-core machine they would take the cores from the cnnkit kernel timed next.
# A short spin (2^4 cycles) lets the contenders alternate fairly. It must be set before NumPy loads.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import cnnkit  # noqa: E402
from cnnkit import _core, ops, reference  # noqa: E402


def median_times(contenders, repeats):
    """Runs each callable once to warm up, then `repeats` rounds alternating them; medians (s)."""
    for run in contenders:
        run()
    samples = [[] for _ in contenders]
    for _ in range(repeats):
        for run, times in zip(contenders, samples):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    return [statistics.median(t) for t in samples]


def matmul_gflops(repeats, size=1024):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(np.float32)
    b = rng.standard_normal((size, size)).astype(np.float32)
    (t,) = median_times([lambda: a @ b], repeats)
    return 2 * size**3 / t / 1e9


def kernel_cases(batch, rng):
    """(name, shape text, flops or None, cnnkit call, reference call) at the CIFAR-10 CNN's shapes."""
    def f32(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    cases = []
    for h, c, oc in [(32, 3, 32), (15, 32, 64)]:
        x, w, b = f32(batch, h, h, c), f32(3, 3, c, oc), f32(oc)
        dy = f32(batch, h - 2, h - 2, oc)
        macs = batch * (h - 2) ** 2 * 9 * c * oc
        shape = f"{batch}x{h}x{h}x{c} * 3x3x{c}x{oc}"
        cases.append(("conv2d_forward", shape, 2 * macs,
                      lambda x=x, w=w, b=b: ops.conv2d_forward(x, w, b),
                      lambda x=x, w=w, b=b: reference.conv2d_forward(x, w, b)))
        cases.append(("conv2d_backward", shape, 4 * macs,
                      lambda dy=dy, x=x, w=w: ops.conv2d_backward(dy, x, w),
                      lambda dy=dy, x=x, w=w: reference.conv2d_backward(dy, x, w)))
    for h, c in [(30, 32), (13, 64)]:
        x = f32(batch, h, h, c)
        dy = f32(batch, h // 2, h // 2, c)
        shape = f"{batch}x{h}x{h}x{c}, 2x2"
        cases.append(("maxpool2d_forward", shape, None, lambda x=x: ops.maxpool2d_forward(x),
                      lambda x=x: reference.maxpool2d_forward(x)))
        cases.append(("maxpool2d_backward", shape, None, lambda dy=dy, x=x: ops.maxpool2d_backward(dy, x),
                      lambda dy=dy, x=x: reference.maxpool2d_backward(dy, x)))
    for fin, fout in [(2304, 128), (128, 10)]:
        x, w, b, dy = f32(batch, fin), f32(fin, fout), f32(fout), f32(batch, fout)
        shape = f"{batch}x{fin} * {fin}x{fout}"
        macs = batch * fin * fout
        cases.append(("dense_forward", shape, 2 * macs, lambda x=x, w=w, b=b: ops.dense_forward(x, w, b),
                      lambda x=x, w=w, b=b: reference.dense_forward(x, w, b)))
        cases.append(("dense_backward", shape, 4 * macs, lambda dy=dy, x=x, w=w: ops.dense_backward(dy, x, w),
                      lambda dy=dy, x=x, w=w: reference.dense_backward(dy, x, w)))
    a = f32(batch, 30, 30, 32)
    cases.append(("relu_forward", f"{batch}x30x30x32", None, lambda: ops.relu_forward(a),
                  lambda: reference.relu_forward(a)))
    ya = ops.relu_forward(a)
    cases.append(("relu_backward", f"{batch}x30x30x32", None, lambda: ops.relu_backward(a, ya),
                  lambda: reference.relu_backward(a, ya)))
    logits, labels = f32(batch, 10), rng.integers(0, 10, batch)
    cases.append(("softmax_cross_entropy", f"{batch}x10", None,
                  lambda: ops.softmax_cross_entropy(labels, logits),
                  lambda: reference.softmax_cross_entropy(labels, logits)))
    p, g = f32(3, 3, 32, 64), f32(3, 3, 32, 64)
    m, v = np.zeros_like(p), np.zeros_like(p)
    pr, mr, vr = p.copy(), m.copy(), v.copy()
    cases.append(("adam_update", "3x3x32x64", None, lambda: ops.adam_update(p, g, m, v, 1),
                  lambda: reference.adam_update(pr, g, mr, vr, 1)))
    # Augmentation, on the CNN's input batch: a random flag per image, RandomTranslation(0.1,
    # 0.1)'s matrices (shifts of up to 3.2 pixels, bilinear, reflect), and a small rotation.
    images = rng.random((batch, 32, 32, 3), dtype=np.float32)
    flips = rng.random(batch) < 0.5
    shifts = np.zeros((batch, 6), np.float32)
    shifts[:, 0] = shifts[:, 4] = 1
    shifts[:, 2], shifts[:, 5] = rng.uniform(-3.2, 3.2, (2, batch))
    angle = rng.uniform(-0.6, 0.6, batch)
    cos, sin = np.cos(angle), np.sin(angle)
    turns = np.stack([cos, -sin, 15.5 - 15.5 * cos + 15.5 * sin,
                      sin, cos, 15.5 - 15.5 * sin - 15.5 * cos], axis=1).astype(np.float32)
    shape = f"{batch}x32x32x3"
    cases.append(("flip_forward", shape, None, lambda: ops.flip_forward(images, flips),
                  lambda: reference.flip_forward(images, flips)))
    for name, matrices in (("translation", shifts), ("rotation", turns)):
        cases.append((f"affine_transform_forward ({name})", shape, None,
                      lambda m=matrices: ops.affine_transform_forward(images, m),
                      lambda m=matrices: reference.affine_transform_forward(images, m)))
    factors = rng.uniform(0.8, 1.2, batch).astype(np.float32)
    cases.append(("contrast_forward", shape, None,
                  lambda: ops.contrast_forward(images, factors, (0, 1)),
                  lambda: reference.contrast_forward(images, factors, (0, 1))))
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args()
    if args.threads:
        cnnkit.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    peak = matmul_gflops(args.repeats)
    print(f"cnnkit {cnnkit.__version__}, {cnnkit.get_num_threads()} threads, OpenMP "
          f"{'on' if cnnkit.openmp_enabled() else 'off'}, micro-kernels {_core.simd_isa()}, "
          f"{platform.processor() or platform.machine()}")
    print(f"NumPy float32 matmul (1024^3), same run: {peak:.1f} GFLOP/s")
    header = ["kernel", "shape", "cnnkit ms", "NumPy ms", "speed-up", "GFLOP/s", "% of matmul"]
    rows = []
    for name, shape, flops, ours, theirs in kernel_cases(args.batch, rng):
        t_ours, t_ref = median_times([ours, theirs], args.repeats)
        rate = flops / t_ours / 1e9 if flops else None
        rows.append([name, shape, f"{t_ours * 1e3:.3f}", f"{t_ref * 1e3:.3f}", f"{t_ref / t_ours:.1f}x",
                     f"{rate:.1f}" if rate else "-", f"{100 * rate / peak:.0f}%" if rate else "-"])
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
        for row in [header] + rows:
            print("  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))))


if __name__ == "__main__":
    main()
