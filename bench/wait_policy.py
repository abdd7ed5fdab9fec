"""Inference of the Keras file of compare.py's keras_infer (ResNet-20, batch 64) under libgomp's
wait policies: passive (cnnkit's default, python/cnnkit/__init__.py), a short spin
(GOMP_SPINCOUNT) and active. Each round runs one child process per policy, alternating, each
timing predict_on_batch in a loop for --seconds (bench/_predict_loop.py), the batch whole, its
kernels on all threads (not split into a slice per thread, predict's default: see
bench/split_inference.py); the table gives each policy's median ms per predict over the rounds.
On an idle machine it shows what waking sleeping threads costs a predict's parallel regions;
bench/busy_machine.py shows what spinning costs beside busy ones.

    python bench/wait_policy.py [--threads 2] [--rounds 6] [--seconds 3] [--spin 3000]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

from compare import make_keras_file

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_predict_loop.py")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--spin", type=int, default=3000, help="GOMP_SPINCOUNT of the short spin")
    args = parser.parse_args()
    policies = {"passive": {"OMP_WAIT_POLICY": "passive"},
                f"GOMP_SPINCOUNT={args.spin}": {"GOMP_SPINCOUNT": str(args.spin)},
                "active": {"OMP_WAIT_POLICY": "active"}}
    with tempfile.TemporaryDirectory() as folder:
        path = make_keras_file(folder)
        times = {name: [] for name in policies}
        for _ in range(args.rounds):
            for name, policy in policies.items():
                env = {k: v for k, v in os.environ.items()
                       if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
                env.update(policy)
                # The whole batch: the wait policies matter where a pass's kernels share threads.
                out = subprocess.run([sys.executable, CHILD, path, str(args.threads),
                                      str(args.seconds), "64", "whole"], env=env,
                                     capture_output=True, text=True, check=True)
                times[name].append(float(out.stdout.split()[-1]))
    print(f"ResNet-20 from a .keras file, predict_on_batch of 64 images, {args.threads} threads, "
          f"median over {args.rounds} rounds of {args.seconds:g} s")
    for name, t in times.items():
        print(f"{name:>24}: {statistics.median(t) * 1e3:6.1f} ms  "
              f"(rounds: {', '.join(f'{v * 1e3:.1f}' for v in t)})")


if __name__ == "__main__":
    main()
