"""Inference of the Keras file of compare.py's keras_infer (ResNet-20) with the batch split into
a slice per thread (python/cnnkit/engine/split_inference.py, the default) and whole (every
kernel on all threads). Each round runs one child process per way and batch size, alternating,
each timing predict_on_batch in a loop for --seconds (bench/_predict_loop.py); the table gives
each way's median images/s over the rounds, and their ratio.

    python bench/split_inference.py [--threads 2] [--batches 16,32,64,256] [--rounds 6]
                                    [--seconds 3]
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
WAYS = ("split", "whole")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", default="16,32,64,256")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    speeds = {(b, way): [] for b in batches for way in WAYS}
    with tempfile.TemporaryDirectory() as folder:
        path = make_keras_file(folder)
        for round_ in range(args.rounds):
            for b in batches:
                for way in WAYS:
                    out = subprocess.run([sys.executable, CHILD, path, str(args.threads),
                                          str(args.seconds), str(b), way],
                                         capture_output=True, text=True, check=True)
                    speeds[b, way].append(b / float(out.stdout.split()[-1]))
            print(f"  round {round_ + 1}/{args.rounds}", file=sys.stderr, flush=True)
    print(f"CPU: {cpu_name()}; ResNet-20 from a .keras file, predict_on_batch, {args.threads} "
          f"threads; median images/s over {args.rounds} rounds of {args.seconds:g} s")
    rows = []
    for b in batches:
        split, whole = (statistics.median(speeds[b, w]) for w in WAYS)
        rows.append([str(b), f"{split:,.0f}", f"{whole:,.0f}", f"{split / whole:.2f}x",
                     " ".join(f"{v:.0f}" for v in speeds[b, "split"]),
                     " ".join(f"{v:.0f}" for v in speeds[b, "whole"])])
    print_table(["batch", "split img/s", "whole img/s", "split / whole", "split rounds",
                 "whole rounds"], rows, args.markdown)


if __name__ == "__main__":
    main()
