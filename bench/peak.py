"""How near the machine's limits cnnkit runs (issue 15): the float32 FMA peak and the copy
bandwidth measured here, and every convolution, dense layer, memory-bound kernel and whole
training step of the benchmark models against them.

    python bench/peak.py [--threads 1,2] [--batch 64] [--repeats 5] [--steps 5]
                         [--models cnn,ae,resnet,mobile] [--markdown]

1. Peak: cnnkit._core.fma_probe, a loop of independent vector FMAs on registers only (12
   chains with AVX2, 16 otherwise), for each
   instruction set the CPU runs (generic: what the compiler makes of scalar multiply-adds; avx2:
   ymm; avx512: zmm), at each --threads; best of --repeats (a peak is a maximum).
2. Copy bandwidth: cnnkit._core.copy_probe, a STREAM copy of 64 MiB over the kernel threads,
   counted as STREAM does (bytes read + bytes written); best of --repeats.
3. Layers: each distinct Conv2D, DepthwiseConv2D and Dense of the models at batch --batch,
   forward and backward (input and weight gradients) through cnnkit.ops, at the largest
   --threads and the active instruction set (CNNKIT_ISA lowers it); median of --repeats.
   GFLOP/s (2 flops per multiply-add) and its share of that instruction set's peak at those
   threads. Issue 15's target: the larger convolutions at 85% or more.
4. Memory-bound kernels at the models' shapes, as training runs them: the bytes they must move
   (inputs read once, outputs written once) per second, against the copy bandwidth at the same
   threads. Target: 70% or more (or fused away into a neighbour: the table says which are).
   The copy runs over 64 MiB, from memory; these kernels' arrays (2-8 MB) sit partly in the
   last-level cache, so a share above 100% says the kernel runs at cache speed.
5. Training steps: train_on_batch of each model (Adam; batch --batch; median of --steps after a
   warm-up), GFLOP/s under bench/compare.py's FLOP convention and its share of the peak
   (target: 60% or more), and the share of the step spent outside the convolution and dense
   kernels (cProfile over --steps steps: the time in every other call).

All in one process, cnnkit alone (the peers' speeds are bench/compare.py's job). Say which CPU
the figures came from: the first line prints what the machine reports.
"""
import os

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # see bench/kernels.py; before NumPy loads

import argparse  # noqa: E402
import cProfile  # noqa: E402
import pstats  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import cnnkit  # noqa: E402
from cnnkit import _core, ops  # noqa: E402
from compare import flops_per_image, table, weight_layers, workload_models  # noqa: E402
from input_pipeline import cpu_description  # noqa: E402

ISAS = ("generic", "avx2", "avx512")
COPY_FLOATS = 16 * 2**20  # 64 MiB per array: far beyond any last-level cache of 2 cores
# The _core calls that are convolution or dense GEMMs (what "outside GEMMs" leaves out).
GEMM_CALLS = ("conv2d", "depthwise", "dense_forward", "dense_backward")


def runnable_isas():
    available = []
    for isa in ISAS:
        try:
            _core.fma_probe(isa, 1)
        except ValueError:
            continue
        available.append(isa)
    return available


def fma_peak(isa, repeats, seconds=0.2):
    """GFLOP/s of the FMA loop at the current thread count: the best of `repeats` runs of
    about `seconds` each."""
    iterations = 1000
    while True:  # size the run: the loop's rate does not depend on its length
        result = _core.fma_probe(isa, iterations)
        if result["seconds"] > seconds / 10:
            break
        iterations *= 4
    iterations = max(1, int(iterations * seconds / result["seconds"]))
    best = 0.0
    for _ in range(repeats):
        result = _core.fma_probe(isa, iterations)
        best = max(best, result["flops"] / result["seconds"] / 1e9)
    return best


def copy_bandwidth(repeats):
    """GB/s of a 64 MiB copy at the current thread count (read + written bytes), best of
    `repeats`."""
    src = np.ones(COPY_FLOATS, np.float32)
    dst = np.zeros_like(src)
    _core.copy_probe(dst, src)  # map the pages
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        _core.copy_probe(dst, src)
        best = min(best, time.perf_counter() - start)
    return 2 * src.nbytes / best / 1e9


def median_seconds(run, repeats):
    run()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def layer_cases(models, batch, rng):
    """(model, description, multiply-adds, forward call, backward call) for each distinct
    weight layer of the models, first appearance first."""
    def f32(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    seen, cases = set(), []
    for model_name, model in models.items():
        for layer in weight_layers(model):
            kind = type(layer).__name__
            kernel = layer.get_weights()[0]
            x = f32(batch, *layer.input_shape[1:])
            dy = f32(batch, *layer.output_shape[1:])
            if kind == "Dense":
                key = (kind, x.shape, kernel.shape)
                macs = x.size // x.shape[-1] * kernel.shape[0] * kernel.shape[1]
                forward = (lambda x=x, w=kernel: ops.dense_forward(x, w))
                backward = (lambda dy=dy, x=x, w=kernel: ops.dense_backward(dy, x, w))
                text = f"{'x'.join(map(str, x.shape))} * {'x'.join(map(str, kernel.shape))}"
            else:
                options = dict(strides=layer.strides, padding=layer.padding,
                               dilation_rate=layer.dilation_rate)
                key = (kind, x.shape, kernel.shape, tuple(layer.strides), layer.padding)
                out = layer.output_shape
                if kind == "DepthwiseConv2D":
                    macs = batch * out[1] * out[2] * out[3] * kernel.shape[0] * kernel.shape[1]
                    forward = (lambda x=x, w=kernel, o=options: ops.depthwise_conv2d_forward(x, w, **o))
                    backward = (lambda dy=dy, x=x, w=kernel, o=options:
                                ops.depthwise_conv2d_backward(dy, x, w, **o))
                elif kind == "Conv2D":
                    macs = batch * out[1] * out[2] * out[3] * kernel.shape[0] * kernel.shape[1] \
                        * kernel.shape[2]
                    forward = (lambda x=x, w=kernel, o=options: ops.conv2d_forward(x, w, **o))
                    backward = (lambda dy=dy, x=x, w=kernel, o=options:
                                ops.conv2d_backward(dy, x, w, **o))
                else:
                    continue  # no such layer in the benchmark models today
                stride = "" if tuple(layer.strides) == (1, 1) else f" /{layer.strides[0]}"
                text = (f"{'x'.join(map(str, x.shape))} * {'x'.join(map(str, kernel.shape))}"
                        f" {layer.padding}{stride}")
            if key in seen:
                continue
            seen.add(key)
            cases.append((model_name, f"{kind} {text}", macs, forward, backward))
    return cases


def memory_cases(batch, rng):
    """(description, bytes moved, call, fused note) of the memory-bound kernels at the models'
    shapes. Bytes: every input read once and every output written once."""
    def f32(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    cases = []
    x = f32(batch, 30, 30, 32)  # the CIFAR CNN's first pooling, as MaxPooling2D runs it in fit:
    window = (2, 2, 2, 2, 0, 0, 15, 15)  # the forward records each window's winner, the
    shape = (batch, 15, 15, 32)  # backward routes the gradient there
    y, argmax = np.empty(shape, np.float32), np.empty(shape, np.int32)
    dy, dx = f32(*shape), np.empty_like(x)
    cases.append(("maxpool2d_forward 64x30x30x32 (training)", x.nbytes + y.nbytes + argmax.nbytes,
                  lambda: _core.maxpool2d_forward(x, *window, with_argmax=True, out=y,
                                                  argmax_out=argmax), ""))
    _core.maxpool2d_forward(x, *window, with_argmax=True, out=y, argmax_out=argmax)
    cases.append(("maxpool2d_backward 64x30x30x32 (training)",
                  dy.nbytes + argmax.nbytes + dx.nbytes,
                  lambda: _core.maxpool2d_backward_argmax(dy, argmax, 30, 30, *window[:6],
                                                          out=dx), ""))
    r = f32(batch, 32, 32, 32)
    cases.append(("relu_forward 64x32x32x32", 2 * r.nbytes, lambda: ops.relu_forward(r),
                  "fused into Conv2D/Dense (activation='relu')"))
    cases.append(("relu_backward 64x32x32x32", 3 * r.nbytes, lambda: ops.relu_backward(r, r),
                  "fused into the conv backward's first pass"))
    b = f32(batch, 32, 32, 16)  # ResNet-20's first stage
    gamma, beta = np.ones(16, np.float32), np.zeros(16, np.float32)
    mean, var = np.zeros(16, np.float32), np.ones(16, np.float32)

    def bn_train():
        return ops.batchnorm_forward_train(b, gamma, beta, moving_mean=mean.copy(),
                                           moving_variance=var.copy())
    # training forward: reads x twice (statistics, then normalise) and writes y
    cases.append(("batchnorm_forward_train 64x32x32x16", 3 * b.nbytes, bn_train,
                  "ReLU fused in (engine/fusion.py)"))
    cases.append(("batchnorm_backward 64x32x32x16", 4 * b.nbytes,
                  lambda: ops.batchnorm_backward(b, b, mean, var, gamma), ""))
    u = f32(batch, 16, 16, 32)  # the autoencoder's upsampling
    cases.append(("upsampling2d_forward 64x16x16x32, 2x2", u.nbytes * 5,
                  lambda: ops.upsampling2d_forward(u), ""))
    du = f32(batch, 32, 32, 32)
    cases.append(("upsampling2d_backward 64x32x32x32, 2x2", du.nbytes * 5 // 4,
                  lambda: ops.upsampling2d_backward(du), ""))
    w = f32(4096, 256)  # the autoencoder's largest weight
    g, m, v = f32(4096, 256), np.zeros((4096, 256), np.float32), np.zeros((4096, 256), np.float32)
    # Adam reads param, grad, m, v and writes param, m, v
    cases.append(("adam_update 4096x256", 7 * w.nbytes,
                  lambda: ops.adam_update(w, g, m, v, 1), ""))
    return cases


def training_steps(models, batch, steps, rng):
    """{model: (seconds per step, share outside the GEMM kernels)}."""
    results = {}
    for name, model in models.items():
        if name == "ae":
            model.compile(optimizer="adam", loss="mse")
            x = rng.random((batch, 32, 32, 3), dtype=np.float32)
            y = x
        else:
            model.compile(optimizer="adam", loss="categorical_crossentropy")
            x = rng.random((batch, 32, 32, 3), dtype=np.float32)
            y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, batch)]
        for _ in range(3):
            model.train_on_batch(x, y)
        samples = []
        for _ in range(steps):
            start = time.perf_counter()
            model.train_on_batch(x, y)
            samples.append(time.perf_counter() - start)
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(steps):
            model.train_on_batch(x, y)
        profile.disable()
        stats = pstats.Stats(profile).stats
        total = sum(entry[2] for entry in stats.values())  # every function's own time
        gemm = sum(entry[2] for (file, _, function), entry in stats.items()
                   if "_core." in function and any(k in function for k in GEMM_CALLS))
        results[name] = (statistics.median(samples), 1 - gemm / total)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default=None,
                        help="thread counts, comma-separated (default: 1 and all cores)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--models", default="cnn,ae,resnet,mobile")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    threads = ([int(t) for t in args.threads.split(",")] if args.threads
               else sorted({1, cores}))
    most = max(threads)
    isas = runnable_isas()
    active = _core.simd_isa()
    print(f"{cpu_description()}; cnnkit {cnnkit.__version__}, kernels on {active}")
    rng = np.random.default_rng(0)

    peaks, bandwidth = {}, {}
    for count in threads:
        cnnkit.set_num_threads(count)
        for isa in isas:
            peaks[isa, count] = fma_peak(isa, args.repeats)
        bandwidth[count] = copy_bandwidth(args.repeats)
    print()
    print(table(["yardstick", *[f"{t} thread{'s' * (t > 1)}" for t in threads]],
                [[f"FMA peak, {isa}, GFLOP/s", *[f"{peaks[isa, t]:.1f}" for t in threads]]
                 for isa in isas]
                + [["copy bandwidth, GB/s", *[f"{bandwidth[t]:.1f}" for t in threads]]],
                args.markdown, text_columns=1))

    cnnkit.set_num_threads(most)
    peak = peaks[active, most]
    names = args.models.split(",")
    models = workload_models([f"{name}_train" for name in names])
    rows = []
    for model_name, text, macs, forward, backward in layer_cases(models, args.batch, rng):
        fwd = median_seconds(forward, args.repeats)
        bwd = median_seconds(backward, args.repeats)
        fwd_rate, bwd_rate = 2 * macs / fwd / 1e9, 4 * macs / bwd / 1e9
        rows.append([model_name, text, f"{fwd * 1e3:.3f}", f"{fwd_rate:.1f}",
                     f"{fwd_rate / peak:.0%}", f"{bwd * 1e3:.3f}", f"{bwd_rate:.1f}",
                     f"{bwd_rate / peak:.0%}"])
    print(f"\nLayers at batch {args.batch}, {most} thread(s), {active} (peak {peak:.1f} GFLOP/s):")
    print(table(["model", "layer", "fwd ms", "fwd GFLOP/s", "fwd of peak", "bwd ms",
                 "bwd GFLOP/s", "bwd of peak"], rows, args.markdown))

    rows = []
    for text, nbytes, run, fused in memory_cases(args.batch, rng):
        seconds = median_seconds(run, args.repeats)
        rate = nbytes / seconds / 1e9
        rows.append([text, f"{seconds * 1e3:.3f}", f"{rate:.1f}",
                     f"{rate / bandwidth[most]:.0%}", fused or "-"])
    print(f"\nMemory-bound kernels, {most} thread(s) (copy bandwidth {bandwidth[most]:.1f} GB/s):")
    print(table(["kernel", "ms", "GB/s", "of copy", "fused"], rows, args.markdown,
                text_columns=1))

    flops = flops_per_image([f"{name}_train" for name in names])
    rows = []
    for name, (seconds, outside) in training_steps(models, args.batch, args.steps, rng).items():
        rate = flops[f"{name}_train"] * args.batch / seconds / 1e9
        rows.append([name, f"{seconds * 1e3:.1f}", f"{rate:.1f}", f"{rate / peak:.0%}",
                     f"{outside:.0%}"])
    print(f"\nTraining steps (train_on_batch, Adam), batch {args.batch}, {most} thread(s):")
    print(table(["model", "ms/step", "GFLOP/s", "of peak", "outside GEMMs"], rows,
                args.markdown, text_columns=1))


if __name__ == "__main__":
    main()
