"""The airbench94 recipe on cnnkit and on PyTorch (bench/speedrun_torch.py), side by side:
each run in its own process, the two alternating, on the same data and threads.

    python bench/speedrun_compare.py [--rounds 2] [--seeds 0] [--epochs 9.9] [--limit N]
                                     [--threads N] [--reports FILE] [--markdown]

Each round runs, for each seed, PyTorch then cnnkit (each reads the same --data folder or
$CNNKIT_DATA). A row per run: training, TTA and total seconds, the test accuracy with and
without TTA, and with TTA on the leading test rows whose pixels are the official ones
(BITEXACT_ROWS.json); then, per round and seed, cnnkit's total time over PyTorch's. --limit N
trains on the first N images and tests on the first N (a quick timing; its accuracies mean
little).
--reports FILE appends each run's whole report (per-epoch times and accuracies) to FILE as a
line of JSON, as each run ends. PyTorch must be installed (it is not a cnnkit dependency).
"""
import argparse
import json
import os
import subprocess
import sys

from _machine import cpu_name
from _tables import print_table

HERE = os.path.dirname(os.path.abspath(__file__))


def run(framework, seed, args):
    if framework == "PyTorch":
        command = [sys.executable, os.path.join(HERE, "speedrun_torch.py")]
    else:
        command = [sys.executable, "-m", "cnnkit", "speedrun-cifar10"]
    command += ["--seed", str(seed), "--epochs", str(args.epochs), "--json"]
    if args.threads:
        command += ["--threads", str(args.threads)]
    if args.limit:
        command += ["--limit", str(args.limit)]
    if args.data:
        command += ["--data", args.data]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{framework} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=float, default=9.9)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--data", help="folder holding cifar-10-batches-py/ "
                                       "(default: $CNNKIT_DATA)")
    parser.add_argument("--reports", help="append each run's JSON report to this file")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    rows, ratios = [], []
    for round_ in range(args.rounds):
        for seed in args.seeds:
            reports = {}
            for framework in ("PyTorch", "cnnkit"):
                r = run(framework, seed, args)
                reports[framework] = r
                if args.reports:
                    with open(args.reports, "a") as f:
                        f.write(json.dumps({"round": round_ + 1, "framework": framework, **r}) + "\n")
                rows.append([str(round_ + 1), str(seed), framework, f"{r['train_seconds']:.1f}",
                             f"{r['tta_seconds']:.1f}", f"{r['total_seconds']:.1f}",
                             f"{100 * r['test_accuracy']:.2f}",
                             f"{100 * r['test_accuracy_tta']:.2f}",
                             f"{100 * r['bitexact_accuracy_tta']:.2f}"
                             if "bitexact_accuracy_tta" in r else "-"])
                print(" | ".join(rows[-1]), flush=True)
            ratios.append(reports["cnnkit"]["total_seconds"] / reports["PyTorch"]["total_seconds"])
    print(f"\nCPU: {cpu_name()}; epochs {args.epochs}; limit {args.limit or 'none'}; "
          f"threads {args.threads or 'all'}")
    print_table(["round", "seed", "framework", "train s", "TTA s", "total s", "test %",
                 "TTA test %", "TTA %, bit-exact rows"], rows, args.markdown, numeric_from=3)
    print("cnnkit's total time over PyTorch's: " + ", ".join(f"{r:.2f}" for r in ratios))


if __name__ == "__main__":
    main()
