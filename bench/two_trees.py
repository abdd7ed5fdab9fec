"""cnnkit against another cnnkit: the same workloads of bench/_peers.py, run from two source
trees in alternating processes, to tell whether a change made training or inference slower.

    python bench/two_trees.py OLD_TREE NEW_TREE [--rounds 8] [--threads 2] [--batch 64]
                              [--steps 15] [--workloads cnn_train,cnn_infer,ae_train]

A tree is a folder holding cnnkit's package (`python/cnnkit`, with its compiled `_core` module
in it, e.g. a symlink to the installed one) or a checkout whose `python/` holds it; each worker
process runs NEW_TREE's bench/_peers.py with PYTHONPATH pointing at that tree's package, so
that only the Python side differs when both share the `_core` module. Rounds alternate the
trees (old, new, then new, old, ...), so that a slow spell of a shared machine hits both; the
table gives medians over rounds and the ratio of the medians (new over old: above 1, the new
tree is faster).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_peers.py")


def worker(tree):
    own = os.path.join(tree, "bench", "_peers.py")
    return own if os.path.isfile(own) else WORKER


def package_root(tree):
    """The folder to put on PYTHONPATH for a tree: TREE/python if it holds cnnkit, else TREE."""
    for candidate in (os.path.join(tree, "python"), tree):
        if os.path.isfile(os.path.join(candidate, "cnnkit", "__init__.py")):
            return os.path.abspath(candidate)
    raise SystemExit(f"{tree}: no cnnkit package there (looked for python/cnnkit and cnnkit)")


def run(root, script, args):
    env = dict(os.environ, PYTHONPATH=root, OMP_NUM_THREADS=str(args.threads),
               OPENBLAS_NUM_THREADS=str(args.threads))
    command = [sys.executable, script, "--framework", "cnnkit", "--threads", str(args.threads),
               "--steps", str(args.steps), "--batch", str(args.batch),
               "--workloads", args.workloads]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{script} with PYTHONPATH={root} failed:\n{done.stderr}")
    out = done.stdout
    line = next(l for l in out.splitlines() if l.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])["workloads"]
    return {w: r["steps"] * args.batch / r["seconds"] for w, r in result.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--workloads", default="cnn_train,cnn_infer,ae_train")
    args = parser.parse_args()
    roots = {"old": package_root(args.old), "new": package_root(args.new)}
    scripts = {"old": worker(args.old), "new": worker(args.new)}
    rates = {"old": [], "new": []}
    for r in range(args.rounds):
        for which in (("old", "new") if r % 2 == 0 else ("new", "old")):
            rates[which].append(run(roots[which], scripts[which], args))
        print(f"  round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    print(f"batch {args.batch}, {args.threads} thread(s), {args.rounds} rounds of "
          f"{args.steps} steps; old = {roots['old']}, new = {roots['new']}")
    print("| workload | old img/s | new img/s | new / old | old spread | new spread |")
    print("|---|--:|--:|--:|--:|--:|")
    for workload in rates["old"][0]:
        old = [r[workload] for r in rates["old"]]
        new = [r[workload] for r in rates["new"]]
        mo, mn = statistics.median(old), statistics.median(new)
        print(f"| {workload} | {mo:,.0f} | {mn:,.0f} | {mn / mo:.3f} | "
              f"{(max(old) - min(old)) / mo:.0%} | {(max(new) - min(new)) / mn:.0%} |")


if __name__ == "__main__":
    main()
