"""Inference of the Keras file of compare.py's keras_infer (ResNet-20; or, with --model, the
classic CIFAR CNN or compare.py's MobileNet, built by cnnkit) by an inference plan
(python/cnnkit/engine/inference_plan.py, predict's default: the whole pass in one C++ call, a
few images at a time) against layer by layer (the plan off; at 2+ threads that is batch-split
inference, bench/split_inference.py). Each round runs one child process per thread count, batch
size and way (bench/_predict_loop.py), alternating, each timing predict_on_batch in a loop for
--seconds; the table gives each way's median images/s over the rounds and their ratio. With
several --pass-bytes, the plan runs at each (inference_plan.PASS_BYTES: the bytes of a pass's
largest activation, so its images).

    python bench/inference_plan.py [--model resnet20|cnn|mobilenet] [--threads 1,2]
                                   [--batches 8,64,256] [--rounds 5] [--seconds 3]
                                   [--pass-bytes 524288]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

from _machine import cpu_name
from _tables import print_table
from compare import make_keras_file

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_predict_loop.py")


def images_per_second(path, threads, seconds, batch, way, pass_bytes=None):
    command = [sys.executable, CHILD, path, str(threads), str(seconds), str(batch), way]
    if pass_bytes is not None:
        command.append(str(pass_bytes))
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return batch / float(out.stdout.split()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet20", choices=("resnet20", "cnn", "mobilenet"),
                        help="resnet20: keras_infer's .keras file (default)")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--batches", default="8,64,256")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--pass-bytes", default=None,
                        help="comma-separated PASS_BYTES values to run the plan at (default: "
                             "the module's)")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    sizes = [None] if args.pass_bytes is None else [int(p) for p in args.pass_bytes.split(",")]
    ways = [("split", None)] + [("plan", size) for size in sizes]
    speeds = {(t, b, w): [] for t in threads for b in batches for w in ways}
    with tempfile.TemporaryDirectory() as folder:
        path = make_keras_file(folder) if args.model == "resnet20" else args.model
        for round_ in range(args.rounds):
            for t in threads:
                for b in batches:
                    for way in ways:
                        speeds[t, b, way].append(
                            images_per_second(path, t, args.seconds, b, *way))
            print(f"  round {round_ + 1}/{args.rounds}", file=sys.stderr, flush=True)
    what = {"resnet20": "ResNet-20 from a .keras file", "cnn": "the classic CNN",
            "mobilenet": "MobileNet"}[args.model]
    print(f"CPU: {cpu_name()}; {what}, predict_on_batch; median images/s "
          f"over {args.rounds} rounds of {args.seconds:g} s")
    rows = []
    for t in threads:
        for b in batches:
            layered = statistics.median(speeds[t, b, ways[0]])
            for way in ways[1:]:
                plan = statistics.median(speeds[t, b, way])
                rows.append([str(t), str(b), "default" if way[1] is None else f"{way[1]:,}",
                             f"{plan:,.0f}", f"{layered:,.0f}", f"{plan / layered:.2f}x",
                             " ".join(f"{v:.0f}" for v in speeds[t, b, way]),
                             " ".join(f"{v:.0f}" for v in speeds[t, b, ways[0]])])
    print_table(["threads", "batch", "pass bytes", "plan img/s", "layer by layer img/s",
                 "plan / layers", "plan rounds", "layer rounds"], rows, args.markdown)


if __name__ == "__main__":
    main()
