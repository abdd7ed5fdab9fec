"""What image augmentation adds to a training step: the classic Keras CIFAR-10 CNN's Adam step
without and with RandomFlip("horizontal") and RandomTranslation(0.1, 0.1) (reflect fill,
bilinear) in front of it, in cnnkit and in TensorFlow (Keras 3, its own layers of those names).

    python bench/augment_overhead.py [--repeats 5] [--steps 30] [--warmup 5] [--threads N]
                                     [--batch 64] [--only cnnkit,tf] [--markdown]

Each framework runs in its own process (bench/_peers.py, workloads cnn_train and cnn_aug_train;
see there how each one runs them: Keras' train_on_batch, whose tf.function holds the
augmentation ops too), started by compare.py's run_child with the same thread settings; the
processes alternate in `--repeats` rounds (cnnkit, TensorFlow, then again), each timing
`--steps` steps of each workload after `--warmup` steps, the two workloads in turn (the order
swapped every other round, so that neither always runs second). Both workloads of a round run
in the same process at the same time, so the overhead is the median over rounds of that
round's ratio (augmented step time / plain step time - 1), which the load of other processes
moves less than it moves either time; step times are medians over rounds. PyTorch has no such
layers without torchvision and is not run. TensorFlow is optional (pip install
tensorflow-cpu==2.21.0); not importable, it is skipped. Same data as compare.py: one batch of
random float32 images in [0, 1) and random one-hot labels (speed does not depend on the pixels).
Defaults take about a minute on 2 cores (estimated, not timed: a smoke run here took some 6 s
per round for TensorFlow's start-up and tracing and under 1 s for cnnkit's, and the 2 x 35 steps
per round then take some 2 s in cnnkit and 4 s in TensorFlow, at 27 and 50 ms a step).
"""
import os

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # see bench/kernels.py; before NumPy loads

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from compare import FRAMEWORKS, ChildFailed, run_child, selected_frameworks, table  # noqa: E402

PLAIN, AUGMENTED = "cnn_train", "cnn_aug_train"
CHOICES = ("cnnkit", "tf")


def run_rounds(frameworks, args):
    """{framework: {"plain": [s/step per round], "aug": [...], "version": str}}; a framework
    whose process fails is reported and dropped."""
    frameworks, runs = list(frameworks), {}
    for round_ in range(args.repeats):
        order = (PLAIN, AUGMENTED) if round_ % 2 == 0 else (AUGMENTED, PLAIN)
        progress = []
        for fw in list(frameworks):
            start = time.perf_counter()
            try:
                result = run_child(fw, args.threads, args, workloads=order)
                if result.get("skipped"):
                    raise ChildFailed(f"skipped {result['skipped']}")
            except ChildFailed as error:
                print(f"{FRAMEWORKS[fw]} failed, dropped: {error}")
                frameworks.remove(fw)
                runs.pop(fw, None)
                continue
            progress.append(f"{FRAMEWORKS[fw]} {time.perf_counter() - start:.1f} s")
            run = runs.setdefault(fw, {"plain": [], "aug": [], "params": set()})
            run["version"] = result["version"]
            for key, workload in (("plain", PLAIN), ("aug", AUGMENTED)):
                w = result["workloads"][workload]
                run[key].append(w["seconds"] / w["steps"])
                run["params"].add(w["params"])
        print(f"  round {round_ + 1}/{args.repeats} ({', '.join(order)}): " + ", ".join(progress),
              file=sys.stderr, flush=True)
    return runs


def report(runs, args):
    rows, summary = [], {}
    for fw, run in runs.items():
        plain, aug = statistics.median(run["plain"]), statistics.median(run["aug"])
        ratios = [a / p - 1 for p, a in zip(run["plain"], run["aug"])]
        overhead = summary[fw] = statistics.median(ratios)
        rows.append([FRAMEWORKS[fw], f"{plain * 1e3:.1f}", f"{aug * 1e3:.1f}",
                     f"{(aug - plain) * 1e3:+.1f}", f"{overhead:+.1%}",
                     f"{min(ratios):+.1%} .. {max(ratios):+.1%}",
                     f"{args.batch / plain:,.0f}", f"{args.batch / aug:,.0f}"])
        if len(run["params"]) > 1:
            print(f"WARNING: {FRAMEWORKS[fw]}'s parameter counts differ: {sorted(run['params'])}")
    print()
    print(table(["framework", "ms/step", "ms/step, augmented", "added ms", "overhead",
                 "overhead, rounds", "img/s", "img/s, augmented"], rows, args.markdown,
                text_columns=1))
    print("(ms/step: median over rounds; added ms: difference of those medians; overhead: median "
          "over rounds of that round's augmented / plain step time - 1; rounds: its lowest and "
          "highest; img/s from the medians)")
    if "cnnkit" in runs:
        run = runs["cnnkit"]
        plain, aug = statistics.median(run["plain"]), statistics.median(run["aug"])
        print(f"\ncnnkit: {plain * 1e3:.2f} ms per training step without augmentation, "
              f"{aug * 1e3:.2f} ms with it; flip plus translation add {(aug - plain) * 1e3:.2f} ms "
              f"per batch of {args.batch} ({(aug - plain) / args.batch * 1e6:.1f} us per image), "
              f"{summary['cnnkit']:+.1%} of the step (median of the rounds' ratios)")
    if "cnnkit" in runs and "tf" in runs:
        ours, theirs = (statistics.median(runs[fw]["aug"]) for fw in ("cnnkit", "tf"))
        print(f"TensorFlow's augmented step takes {theirs / ours:.2f}x cnnkit's; its augmentation "
              f"adds {summary['tf']:+.1%} of its step")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cores = os.cpu_count() or 1
    parser.add_argument("--repeats", type=int, default=5,
                        help="rounds; figures are medians (default 5)")
    parser.add_argument("--steps", type=int, default=30,
                        help="timed steps per workload and round (default 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    parser.add_argument("--threads", type=int, default=cores,
                        help=f"threads (default {cores}, all cores)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--only", default=",".join(CHOICES), help="frameworks, in running order")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args()
    frameworks = selected_frameworks(parser, args.only, CHOICES)

    print(f"{platform.processor() or platform.machine()}, {cores} cores, Python "
          f"{platform.python_version()}; {args.threads} thread{'s' * (args.threads > 1)}, batch "
          f"{args.batch}, {args.steps} timed steps after {args.warmup} warm-up steps, "
          f"{args.repeats} rounds; random float32 images, one-hot labels")
    started, load = time.perf_counter(), os.getloadavg()[0]
    runs = run_rounds(frameworks, args)
    if not runs:
        sys.exit("no framework ran")
    print("Versions: " + "; ".join(run["version"] for run in runs.values())
          + f"; run took {time.perf_counter() - started:.0f} s; load average {load:.1f} before it, "
          f"{os.getloadavg()[0]:.1f} after")
    report(runs, args)


if __name__ == "__main__":
    main()
