"""Data-parallel training speed: N MPI ranks x T threads against other splits of the same
cores, for the seed CIFAR-10 CNN and ResNet-20, on random CIFAR-shaped data.

    python bench/distributed.py [--models cnn,resnet] [--configs 1x2,2x1] [--batch 64]
                                [--steps 30] [--repeats 3] [--markdown]

A config RxT runs R ranks (under this environment's mpiexec when R > 1) of T threads each; the
global batch is --batch whatever R is, so every config does the same work per step. Each run is
a separate process (or job), the configs alternating round by round; a run times --steps
training steps after 5 warm-up steps, from rank 0, and prints images per second and the share
of that time rank 0 spent waiting on collectives (the gradient sums the backward pass did not
hide, and the other rank's lateness). The table has
the median of the rounds and each config's speed relative to the first config.

Needs mpi4py and mpiexec (pip install 'cnnkit[mpi]') for R > 1.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _tables import print_table  # noqa: E402

WARMUP = 5


def child(args):
    import numpy as np

    import cnnkit
    from cnnkit import distribute
    from cnnkit.callbacks import Callback
    from _models import resnet20

    if distribute.size() == 1:
        cnnkit.set_num_threads(args.threads)
    strategy = distribute.DataParallel(bucket_bytes=args.bucket_bytes)
    with strategy.scope():
        if args.child == "cnn":
            model = cnnkit.applications.classic_cnn()
        else:
            model = resnet20(cnnkit)
            model.compile(optimizer="adam", loss="categorical_crossentropy",
                          metrics=["accuracy"])
    n = args.batch * (WARMUP + args.steps)
    rng = np.random.default_rng(0)
    x = rng.random((n, 32, 32, 3), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]

    class Timer(Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == WARMUP:
                self.start = time.perf_counter()
                self.waited = getattr(strategy.world, "wait_seconds", 0.0)

        def on_train_end(self, logs=None):
            self.seconds = time.perf_counter() - self.start
            self.waited = getattr(strategy.world, "wait_seconds", 0.0) - self.waited
    timer = Timer()
    model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0, shuffle=False,
              callbacks=[timer])
    if distribute.rank() == 0:
        print(json.dumps({"images_per_s": args.steps * args.batch / timer.seconds,
                          "waiting": timer.waited / timer.seconds,
                          "threads": cnnkit.get_num_threads(), "ranks": distribute.size()}))


def run(model, ranks, threads, args):
    command = [sys.executable, os.path.abspath(__file__), "--child", model, "--threads",
               str(threads), "--batch", str(args.batch), "--steps", str(args.steps),
               "--bucket-bytes", str(args.bucket_bytes)]
    if ranks > 1:
        mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        command = [mpiexec if os.path.exists(mpiexec) else shutil.which("mpiexec"), "-n",
                   str(ranks), *command]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ranks"] == ranks and result["threads"] == threads, result
    return result["images_per_s"], result["waiting"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", choices=["cnn", "resnet"], help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--models", default="cnn,resnet")
    parser.add_argument("--configs", default="1x2,2x1",
                        help="RANKSxTHREADS, comma-separated (default 1x2,2x1)")
    parser.add_argument("--batch", type=int, default=64, help="the global batch (default 64)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bucket-bytes", type=int, default=512 * 1024,
                        help="DataParallel's bucket size (default 512 KiB; a size larger than "
                             "the model makes one bucket, summed after the backward pass)")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if args.child:
        return child(args)
    configs = [tuple(int(v) for v in c.split("x")) for c in args.configs.split(",")]
    models = args.models.split(",")
    speeds = {(m, c): [] for m in models for c in configs}
    waits = {(m, c): [] for m in models for c in configs}
    start = time.time()
    for round_ in range(args.repeats):
        for model in models:
            for ranks, threads in configs:
                speed, waiting = run(model, ranks, threads, args)
                speeds[model, (ranks, threads)].append(speed)
                waits[model, (ranks, threads)].append(waiting)
                print(f"round {round_ + 1}: {model} {ranks} rank(s) x {threads} thread(s): "
                      f"{speed:.0f} images/s, {waiting:.1%} of the time waiting on "
                      "collectives", file=sys.stderr)
    names = {"cnn": "seed CNN", "resnet": "ResNet-20"}
    header = ["model", "ranks x threads", "images/s (median)", "range", "vs " +
              "x".join(map(str, configs[0])), "rank 0 waiting on collectives"]
    rows = []
    for model in models:
        base = statistics.median(speeds[model, configs[0]])
        for config in configs:
            values = speeds[model, config]
            median = statistics.median(values)
            rows.append([names[model], f"{config[0]} x {config[1]}", f"{median:.0f}",
                         f"{min(values):.0f}-{max(values):.0f}", f"{median / base:.2f}",
                         f"{statistics.median(waits[model, config]):.1%}"])
    print_table(header, rows, args.markdown, numeric_from=2)
    print(f"(global batch {args.batch}, buckets of {args.bucket_bytes} bytes, {args.steps} "
          f"timed steps a run, {args.repeats} rounds, "
          f"{time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
