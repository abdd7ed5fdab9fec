"""Training speed when another process keeps the cores busy: libgomp's wait policies compared.

After each parallel region libgomp's idle threads wait for the next one, by spinning (its
default: GOMP_SPINCOUNT=300000 spins, then sleep) or by sleeping at once (OMP_WAIT_POLICY=passive,
which cnnkit sets while it loads libgomp, unless the user chose; python/cnnkit/__init__.py).
A spinning thread holds a core; when another process wants that core too, every parallel
region ends up waiting for the scheduler. This times train_on_batch of the classic CIFAR-10 CNN
(batch --batch, random data) in a child process per policy, on an idle machine and with --busy
processes spinning in pure Python beside it, the contenders alternating in --repeats rounds.

    python bench/busy_machine.py [--threads N] [--busy 0,1,2] [--batch 64] [--steps 30]
                                 [--repeats 3]

About a minute on 2 cores with the defaults.
"""
import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys

import cnnkit

POLICIES = {"passive (cnnkit's default)": {},
            "spinning (libgomp's default)": {"GOMP_SPINCOUNT": "300000"}}

CHILD = """
import sys, time
import numpy as np
import cnnkit
from cnnkit.applications import classic_cnn
cnnkit.set_num_threads(int(sys.argv[1]))
steps, batch = int(sys.argv[2]), int(sys.argv[3])
model = classic_cnn()
rng = np.random.default_rng(0)
x = rng.random((batch, 32, 32, 3), dtype=np.float32)
y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, batch)]
for _ in range(3):
    model.train_on_batch(x, y)
start = time.perf_counter()
for _ in range(steps):
    model.train_on_batch(x, y)
print((time.perf_counter() - start) / steps)
"""


def spin():
    while True:
        pass


def step_seconds(policy_env, threads, steps, batch):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(policy_env)
    out = subprocess.run([sys.executable, "-c", CHILD, str(threads), str(steps), str(batch)], env=env,
                         capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=cnnkit.get_num_threads())
    p.add_argument("--busy", default="0,1,2", help="comma-separated counts of busy processes")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch", type=int, default=64)
    args = p.parse_args()
    print(f"{os.cpu_count()} cores, cnnkit on {args.threads} thread(s), train_on_batch of the "
          f"classic CNN (batch {args.batch}), median of {args.repeats} rounds of {args.steps} steps")
    print(f"{'busy processes':>15}  " + "  ".join(f"{name:>30}" for name in POLICIES)
          + "  spinning / passive")
    for busy in (int(b) for b in args.busy.split(",")):
        spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(busy)]
        for s in spinners:
            s.start()
        try:
            times = {name: [] for name in POLICIES}
            for _ in range(args.repeats):
                for name, env in POLICIES.items():
                    times[name].append(step_seconds(env, args.threads, args.steps, args.batch))
        finally:
            for s in spinners:
                s.terminate()
        medians = {name: statistics.median(t) for name, t in times.items()}
        passive, spinning = medians.values()
        print(f"{busy:>15}  " + "  ".join(f"{1e3 * m:>24.1f} ms/step" for m in medians.values())
              + f"  {spinning / passive:>17.2f}x", flush=True)


if __name__ == "__main__":
    main()
