"""cnnkit against PyTorch and TensorFlow (Keras 3) on the CPU: training and inference speed of the
classic Keras CIFAR-10 CNN, of a CIFAR ResNet-20 and of a small MobileNet (bench/_models.py), and
training speed of cnnkit's conv autoencoder, at one thread and at all cores, peak memory of a
training run, and what a warm cnnkit training step allocates.

    python bench/compare.py [--repeats 3] [--steps 15] [--threads 1,2] [--only cnnkit,torch,tf]
                            [--warmup 3] [--batch 64] [--alloc-steps 200] [--markdown]
                            [--workloads cnn_train,cnn_infer,ae_train,resnet_train,...]

Each framework runs in its own process (bench/_peers.py; see there how each one runs the models),
so that no two runtimes' thread pools compete for the cores and ru_maxrss is that framework's.
The processes alternate in rounds (NumPy, cnnkit, PyTorch, TensorFlow, at each thread count,
then again), each timing `--steps` steps after `--warmup` steps; figures are medians over the
`--repeats` rounds, and ratios compare medians of the same run. The data are one batch of random
float32 images in [0, 1) and random one-hot labels, the same for every framework and step (speed
does not depend on the pixels). The peers are optional: `pip install cnnkit[bench]`, or
`pip install torch==2.13.0 tensorflow-cpu==2.21.0`; a framework that is not importable is skipped.

FLOP convention: 2 flops per multiply-add of the convolutions and dense layers, counted from the
layer shapes of the cnnkit models (padding zeros included, as the frameworks compute them); bias
additions, activations, pooling, upsampling, loss and optimizer are not counted. A training step
is 3 times the forward pass (forward, input gradient, weight gradient), less the input gradient
of the first layer, which none of them computes (the model's input needs no gradient: cnnkit
skips it, PyTorch's input does not require grad, TF prunes it from the train step's graph). The
matmul rate is NumPy's float32 1024^3 matmul at the same thread count, measured in every round.
On 2 cores, the first three workloads took 120 s with the defaults; the four ResNet-20 and
MobileNet ones took 520 s with --steps 10 (so all seven with the defaults take some 12 minutes;
--workloads picks some).
"""
import os

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # see bench/kernels.py; before NumPy loads

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_peers.py")
FRAMEWORKS = {"cnnkit": "cnnkit", "torch": "PyTorch", "tf": "TensorFlow", "ort": "ONNX Runtime"}
MODULES = {"cnnkit": "cnnkit", "torch": "torch", "tf": "tensorflow", "ort": "onnxruntime"}
INSTALL = {"cnnkit": "pip install .", "torch": "pip install torch==2.13.0 (the CPU wheel)",
           "tf": "pip install tensorflow-cpu==2.21.0", "ort": "pip install onnx onnxruntime"}
WORKLOADS = {"cnn_train": "CNN train", "cnn_infer": "CNN infer", "ae_train": "AE train",
             "resnet_train": "ResNet-20 train", "resnet_infer": "ResNet-20 infer",
             "mobile_train": "MobileNet train", "mobile_infer": "MobileNet infer",
             "keras_infer": "Keras file infer"}
DESCRIPTIONS = {"cnn_train": "the CIFAR-10 CNN's training step", "cnn_infer": "its inference",
                "ae_train": "the conv autoencoder's training step",
                "resnet_train": "ResNet-20's training step", "resnet_infer": "its inference",
                "mobile_train": "the small MobileNet's training step",
                "mobile_infer": "its inference",
                "keras_infer": "a Keras 3 .keras file of ResNet-20, loaded and run forward"}
# The .keras file of keras_infer: ResNet-20 (bench/_models.py) built and saved by Keras 3 itself
# (its moving statistics set away from 0 and 1, so that BatchNormalization matters), then
# exported to ONNX by cnnkit beside it (.onnx), for ONNX Runtime.
MAKE_KERAS_FILE = """
import sys
import numpy as np
import keras
from _models import resnet20
model = resnet20(keras)
rng = np.random.default_rng(0)
for layer in model.layers:
    if type(layer).__name__ == "BatchNormalization":
        gamma, beta, mean, var = layer.get_weights()
        layer.set_weights([rng.uniform(0.8, 1.2, gamma.shape), rng.normal(0, 0.1, beta.shape),
                           rng.normal(0, 0.2, mean.shape), rng.uniform(0.5, 2.0, var.shape)])
model.save(sys.argv[1])
"""
EXPORT_ONNX = """
import sys
import cnnkit
from cnnkit import onnx
onnx.export(cnnkit.models.load_model(sys.argv[1], compile=False), sys.argv[2])
"""


# ------------------------------------------------------------------ FLOP counts
def weight_layers(model):
    """Each layer of the model that multiplies by weights, in call order, nested models
    included (every layer is built, so its input and output shapes are known)."""
    for layer in model.layers:
        if hasattr(layer, "layers") and not isinstance(layer, type):
            yield from weight_layers(layer)
        elif type(layer).__name__ in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D",
                                      "Conv2DTranspose", "Dense"):
            yield layer


def multiply_adds(layer):
    kind, out = type(layer).__name__, layer.output_shape
    if kind == "Dense":
        rows = 1
        for size in layer.input_shape[1:-1]:
            rows *= size
        return rows * layer.input_shape[-1] * out[-1]
    (_, h, w, cin), (kh, kw) = layer.input_shape, layer.kernel_size
    if kind == "Conv2D":  # each output value: kh * kw * cin / groups multiply-adds
        return out[1] * out[2] * out[3] * kh * kw * cin // getattr(layer, "groups", 1)
    if kind == "Conv2DTranspose":  # each input value reaches kh * kw * filters outputs
        return h * w * cin * kh * kw * out[3]
    depthwise = out[1] * out[2] * cin * layer.depth_multiplier * kh * kw
    if kind == "DepthwiseConv2D":
        return depthwise
    return depthwise + out[1] * out[2] * cin * layer.depth_multiplier * out[3]  # + pointwise


def workload_models(workloads):
    """{model name: a built cnnkit model} for the workloads asked for."""
    import cnnkit
    from _models import KERAS_BUILDERS
    from cnnkit.applications import classic_cnn
    from cnnkit.models import conv_autoencoder
    makers = {"cnn": classic_cnn, "ae": lambda: conv_autoencoder()[0],
              "keras": lambda: KERAS_BUILDERS["resnet"](cnnkit),
              **{name: (lambda build=build: build(cnnkit)) for name, build in KERAS_BUILDERS.items()}}
    models = {}
    for workload in workloads:
        name = workload.partition("_")[0]
        if name not in models:
            models[name] = makers[name]()
            models[name].build((None, 32, 32, 3))
    return models


def flops_per_image(workloads):
    """{workload: flops per image} under the convention of the module docstring."""
    counts = {}
    for name, model in workload_models(workloads).items():
        macs = [multiply_adds(layer) for layer in weight_layers(model)]
        counts[name + "_infer"] = 2 * sum(macs)
        counts[name + "_train"] = 2 * (3 * sum(macs) - macs[0])
    return counts


# ------------------------------------------------------------------ child processes
class ChildFailed(RuntimeError):
    pass


def thread_env(threads):
    """The environment of a child process held to `threads` threads in every runtime."""
    threads = str(threads)
    return dict(os.environ, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads,
                MKL_NUM_THREADS=threads, OPENBLAS_THREAD_TIMEOUT="4", TF_CPP_MIN_LOG_LEVEL="2")


def child_result(command, env):
    """Runs a child process; its result is the JSON of its last 'RESULT ' line."""
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    results = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not results:
        tail = "\n    ".join((proc.stderr or proc.stdout).strip().splitlines()[-6:])
        raise ChildFailed(f"exit status {proc.returncode}:\n    {tail}")
    return json.loads(results[-1][len("RESULT "):])


def importable(module):
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def run_child(framework, threads, args, alloc_steps=0, workloads=None):
    env = thread_env(threads)
    command = [sys.executable, WORKER, "--framework", framework, "--threads", str(threads),
               "--steps", str(args.steps), "--warmup", str(args.warmup), "--batch", str(args.batch),
               "--alloc-steps", str(alloc_steps)]
    workloads = workloads or getattr(args, "workloads", None)
    if workloads:
        command += ["--workloads", ",".join(workloads)]
    if getattr(args, "keras_file", None):
        command += ["--keras-file", args.keras_file]
    return child_result(command, env)


def make_keras_file(folder):
    """Writes keras_infer's resnet20.keras (Keras 3 itself) and resnet20.onnx (cnnkit's export
    of it) into folder; returns the .keras path."""
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(folder, "resnet20.keras")
    env = dict(os.environ, PYTHONPATH=here + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="2")
    for program, paths in ((MAKE_KERAS_FILE, [path]),
                           (EXPORT_ONNX, [path, path[: -len(".keras")] + ".onnx"])):
        proc = subprocess.run([sys.executable, "-c", program] + paths, env=env,
                              capture_output=True, text=True)
        if proc.returncode:
            raise ChildFailed(f"making the Keras file: {proc.stderr.strip().splitlines()[-3:]}")
    return path


def available(framework):
    return importable(MODULES[framework])


def selected_frameworks(parser, only, choices):
    """The frameworks of --only (comma-separated, in running order) that can be imported; an
    unknown name is a usage error, a missing one is skipped with how to install it."""
    frameworks = []
    for name in only.split(","):
        if name not in choices:
            parser.error(f"--only: unknown framework {name!r} (choose from {', '.join(choices)})")
        if available(name):
            frameworks.append(name)
        else:
            print(f"{FRAMEWORKS[name]}: not importable, skipped ({INSTALL[name]} to include it)")
    return frameworks


def run_rounds(frameworks, thread_counts, args):
    """The child processes, alternating: per round, per thread count, NumPy's matmul then each
    framework. A framework whose process fails is reported and dropped."""
    frameworks, most = list(frameworks), max(thread_counts)
    speeds = {}  # (framework, threads, workload) -> [images/s per round]
    matmul = {t: [] for t in thread_counts}
    versions, params, memory, alloc, outputs = {}, {}, {}, None, {}
    for round_ in range(args.repeats):
        for threads in thread_counts:
            matmul[threads].append(run_child("numpy", threads, args)["matmul_gflops"])
            progress = []
            for fw in list(frameworks):
                check = args.alloc_steps if fw == "cnnkit" and round_ == 0 and threads == most else 0
                start = time.perf_counter()
                try:
                    result = run_child(fw, threads, args, alloc_steps=check)
                except ChildFailed as error:
                    print(f"{FRAMEWORKS[fw]} failed, dropped: {error}")
                    frameworks.remove(fw)
                    versions.pop(fw, None)
                    continue
                progress.append(f"{FRAMEWORKS[fw]} {time.perf_counter() - start:.0f} s")
                versions[fw] = result["version"]
                for workload, w in result["workloads"].items():
                    speeds.setdefault((fw, threads, workload), []).append(
                        args.batch * w["steps"] / w["seconds"])
                    if "first" in w:
                        outputs.setdefault(fw, w["first"])
                    params.setdefault(workload, {})[fw] = w["params"]
                if round_ == 0 and threads == most:
                    memory[fw] = result
                alloc = result.get("alloc", alloc)
            print(f"  round {round_ + 1}/{args.repeats}, {threads} thread{'s' * (threads > 1)}: "
                  + ", ".join(progress), file=sys.stderr, flush=True)
    return {"speeds": speeds, "matmul": matmul, "versions": versions, "params": params,
            "memory": memory, "alloc": alloc, "outputs": outputs}


# ------------------------------------------------------------------ tables
def table(header, rows, markdown, text_columns=2):
    """Plain or Markdown; the first text_columns columns are left-aligned, the rest numbers."""
    cells = [header] + [[str(c) for c in row] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(row) + " |" for row in cells]
        lines.insert(1, "|" + "|".join("---" if i < text_columns else "--:"
                                       for i in range(len(header))) + "|")
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) if i < text_columns else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))) for row in cells)


def mb(nbytes):
    return f"{nbytes / 2**20:.0f}"


# ------------------------------------------------------------------ report
def print_speed(frameworks, thread_counts, speeds, peak, flops, args):
    """One table, a block of rows per workload and thread count."""
    rows = []
    for workload in args.workloads:
        title = WORKLOADS[workload]
        for threads in thread_counts:
            ours = speeds.get(("cnnkit", threads, workload))
            for fw in frameworks:
                samples = speeds.get((fw, threads, workload))
                if not samples:
                    continue
                rate = statistics.median(samples)
                gflops = rate * flops[workload] / 1e9
                spread = (max(samples) - min(samples)) / rate
                ratio = "" if fw == "cnnkit" or not ours else f"{statistics.median(ours) / rate:.2f}x"
                rows.append([title, FRAMEWORKS[fw], threads, f"{rate:,.0f}", f"{max(samples):,.0f}",
                             f"{spread:.0%}", f"{args.batch / rate * 1e3:.1f}", f"{gflops:.1f}",
                             f"{gflops / peak[threads]:.0%}", ratio])
    print()
    print(table(["workload", "framework", "threads", "img/s", "best", "spread", "ms/step", "GFLOP/s",
                 "of matmul", "cnnkit/it"], rows, args.markdown))
    print("(img/s: median over rounds, ms/step, GFLOP/s and the rest from it; best: the fastest "
          "round; spread: (best - slowest) / median, a spread beyond some 20% means another "
          "process took cores; cnnkit/it: cnnkit's img/s over this framework's, same thread count)")


def print_scaling(frameworks, thread_counts, speeds, workloads, markdown):
    least, most = min(thread_counts), max(thread_counts)
    rows = []
    for fw in frameworks:
        for workload in workloads:
            title = WORKLOADS[workload]
            if any((fw, t, workload) not in speeds for t in thread_counts):
                continue
            rates = [statistics.median(speeds[(fw, t, workload)]) for t in thread_counts]
            rows.append([FRAMEWORKS[fw], title] + [f"{r:,.0f}" for r in rates]
                        + [f"{rates[thread_counts.index(most)] / rates[thread_counts.index(least)]:.2f}x"])
    print()
    print(table(["framework", "workload"] + [f"img/s, {t} thr" for t in thread_counts]
                + [f"{most} vs {least} threads"], rows, markdown))


def print_memory(frameworks, memory, most, workloads, markdown):
    """Peak memory after the first workload (a training one, the process's first) and after
    all of them, and page faults per step of each training workload."""
    first, last = workloads[0], workloads[-1]
    trains = [w for w in workloads if w.endswith("_train")]
    rows = []
    for fw in frameworks:
        result = memory.get(fw)
        if not result or first not in result["workloads"]:
            continue
        runs = result["workloads"]
        peak_first, peak_all = runs[first]["maxrss"], max(r["maxrss"] for r in runs.values())
        rows.append([FRAMEWORKS[fw], mb(result["rss_import"]), mb(peak_first),
                     mb(peak_first - result["rss_import"]), mb(peak_all)]
                    + [f"{runs[w]['faults'] / runs[w]['steps']:,.0f}" if w in runs else "-"
                       for w in trains])
    print()
    print(table(["framework", "RSS after import, MB", f"peak RSS, {WORKLOADS[first]}, MB",
                 "peak - import, MB", "peak RSS, all, MB"]
                + [f"page faults/step, {WORKLOADS[w]}" for w in trains], rows, markdown,
                text_columns=1))
    print(f"(at {most} thread{'s' * (most > 1)}; peak RSS: ru_maxrss after the warm-up and timed "
          f"steps of {WORKLOADS[first]}, the process's first workload; all: after {WORKLOADS[last]}, "
          "the last; a minor page fault is a fresh 4 KiB page, the mark of memory freed to the "
          "system and mapped again)")


def print_alloc(alloc, most, batch):
    steps = alloc["steps"]
    print()
    print(f"cnnkit allocation check, a warm CIFAR-10 CNN training step ({most} threads, batch "
          f"{batch}):")
    print(f"  over {steps} steps: RSS {mb(alloc['rss_before'])} -> {mb(alloc['rss_after'])} MB "
          f"({(alloc['rss_after'] - alloc['rss_before']) / steps / 1024:+.1f} KiB/step), "
          f"{alloc['faults'] / steps:,.0f} minor page faults/step "
          f"({alloc['faults'] / steps * 4 / 1024:.1f} MiB of fresh pages/step)")
    print(f"  tracemalloc over {alloc['traced_steps']} steps: {alloc['transient_median'] / 2**20:.1f} MiB "
          f"allocated within a step and alive at once (median; max "
          f"{alloc['transient_max'] / 2**20:.1f}), {alloc['kept_median'] / 1024:+.1f} KiB kept per step; "
          f"{alloc['numpy_live_bytes'] / 2**20:.1f} MiB of NumPy buffers made by the last step "
          "and alive after it (held by the layers until the next step replaces them), by site:")
    for site, size, count in alloc["sites"]:
        site = site.replace(os.sep, "/").split("site-packages/")[-1]
        print(f"    {size / 2**20:7.2f} MiB in {count:3d} arrays  {site}")
    arrays = sum(count for _, _, count in alloc["sites"])
    least = max(alloc["transient_median"], alloc["numpy_live_bytes"])
    growth = (alloc["rss_after"] - alloc["rss_before"]) / alloc["steps"]
    rss = ("RSS stays flat: the allocator reuses or unmaps them, the page faults are the cost"
           if abs(growth) < 16 * 1024 else "RSS still moved: glibc adjusts its mmap threshold for "
           "a while after start, or something leaks; more warm-up (--steps) tells which")
    print(f"  so a warm step allocates at least {least / 2**20:.1f} MiB ({arrays}+ NumPy arrays); {rss}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cores = os.cpu_count() or 1
    parser.add_argument("--repeats", type=int, default=3, help="rounds; figures are medians (default 3)")
    parser.add_argument("--steps", type=int, default=15,
                        help="timed steps per workload and round (default 15)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", default=",".join(str(t) for t in sorted({1, cores})),
                        help=f"comma-separated thread counts (default 1,{cores})")
    parser.add_argument("--only", default="cnnkit,torch,tf,ort",
                        help="frameworks, in running order (ort: ONNX Runtime, keras_infer only)")
    parser.add_argument("--alloc-steps", type=int, default=200,
                        help="steps of cnnkit's allocation check (0 skips it; default 200)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help="comma-separated, from " + ", ".join(WORKLOADS) + " (default: all)")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    args = parser.parse_args()
    args.workloads = args.workloads.split(",")
    unknown = sorted(set(args.workloads) - set(WORKLOADS))
    if unknown:
        parser.error(f"--workloads: unknown {', '.join(unknown)} (choose from {', '.join(WORKLOADS)})")
    thread_counts = [int(t) for t in args.threads.split(",")]
    most = max(thread_counts)
    frameworks = selected_frameworks(parser, args.only, list(FRAMEWORKS))

    args.keras_file = None
    if "keras_infer" in args.workloads:
        import tempfile
        args.keras_file = make_keras_file(tempfile.mkdtemp(prefix="cnnkit-bench-"))
    flops = flops_per_image(args.workloads)
    print(f"{platform.processor() or platform.machine()}, {cores} cores, Python "
          f"{platform.python_version()}; batch {args.batch}, {args.steps} timed steps after "
          f"{args.warmup} warm-up steps, {args.repeats} rounds; random float32 images, one-hot labels")
    print("MFLOP per image (2 per multiply-add of conv/dense; training = 3x forward less the first "
          "layer's input gradient): "
          + ", ".join(f"{DESCRIPTIONS[w]} ({WORKLOADS[w]}) {flops[w] / 1e6:.2f}" for w in args.workloads))

    started, load = time.perf_counter(), os.getloadavg()[0]
    run = run_rounds(frameworks, thread_counts, args)
    frameworks = [fw for fw in frameworks if fw in run["versions"]]
    if not frameworks:
        sys.exit("no framework ran")
    speeds, matmul, memory, alloc = run["speeds"], run["matmul"], run["memory"], run["alloc"]
    print("Versions: " + "; ".join(run["versions"][fw] for fw in frameworks)
          + f"; run took {time.perf_counter() - started:.0f} s; load average {load:.1f} before it, "
          f"{os.getloadavg()[0]:.1f} after")
    for workload, counts in run["params"].items():
        # ONNX Runtime's file has BatchNormalization folded into the convolutions: fewer arrays.
        counts = {fw: n for fw, n in counts.items() if fw != "ort"}
        if len(set(counts.values())) > 1:
            print(f"WARNING: parameter counts differ for {workload}: {counts}")
    peak = {t: statistics.median(v) for t, v in matmul.items()}
    print("NumPy float32 matmul (1024^3), same run: "
          + ", ".join(f"{peak[t]:.1f} GFLOP/s at {t} thread{'s' * (t > 1)}" for t in thread_counts))

    if run["outputs"]:
        import numpy as np
        first = {fw: np.asarray(out) for fw, out in run["outputs"].items()}
        ours = first.get("cnnkit", next(iter(first.values())))
        print("keras_infer, the first image's outputs against cnnkit's: " + ", ".join(
            f"{FRAMEWORKS[fw]} max |difference| {np.abs(out - ours).max():.1e}"
            for fw, out in first.items() if fw != "cnnkit"))
    print_speed(frameworks, thread_counts, speeds, peak, flops, args)
    if len(thread_counts) > 1:
        print_scaling(frameworks, thread_counts, speeds, args.workloads, args.markdown)
    print_memory(frameworks, memory, most, args.workloads, args.markdown)
    if alloc:
        print_alloc(alloc, most, args.batch)

if __name__ == "__main__":
    main()
