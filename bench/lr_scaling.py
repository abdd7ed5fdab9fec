"""Which learning rate keeps the accuracy when 4 ranks train with a 4x larger global batch: the
seed CIFAR-10 CNN (Adam), one process at batch 64 against 4 ranks at global batch 256 with the
learning rate kept, scaled linearly (x4) with a warm-up, and scaled without one.

    python bench/lr_scaling.py [--epochs 6] [--data DIR] [--ranks 4] [--markdown]

Each config is one run (mpiexec -n RANKS for the 4-rank ones; on a 2-core machine the ranks
share the cores: the point is the accuracy, not the speed), seed 0, the CIFAR-10 test set as
validation. The warm-up (Goyal et al., 2017, "Accurate, Large Minibatch SGD") raises the rate
linearly from the base rate to the scaled one over the first epoch (cnnkit's CosineDecay with
warmup_target, decaying by nothing after it: alpha=1).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _tables import print_table  # noqa: E402

BASE_BATCH, BASE_RATE = 64, 1e-3
CONFIGS = [  # name, ranks (None: the --ranks value), global batch factor, rate factor, warm-up
    ("1 process, batch 64, rate 1e-3", 1, 1, 1, False),
    ("4 ranks, batch 256, rate 1e-3 (kept)", None, 4, 1, False),
    ("4 ranks, batch 256, rate 4e-3 (linear), no warm-up", None, 4, 4, False),
    ("4 ranks, batch 256, rate 4e-3 (linear), 1-epoch warm-up", None, 4, 4, True),
]


def child(args):
    import numpy as np

    import cnnkit
    from cnnkit import distribute
    from cnnkit.cli.train_cifar10 import prepared_data
    from cnnkit.optimizers import Adam
    from cnnkit.optimizers.schedules import CosineDecay
    from cnnkit.utils import set_random_seed

    batch, rate = BASE_BATCH * args.batch_factor, BASE_RATE * args.rate_factor
    (x, y), (x_test, y_test) = prepared_data(args.data)
    set_random_seed(0)
    steps = -(-len(x) // batch)
    if args.warmup:
        schedule = CosineDecay(BASE_RATE, decay_steps=args.epochs * steps, alpha=1.0,
                               warmup_target=rate, warmup_steps=steps)
    else:
        schedule = rate
    with distribute.DataParallel().scope():
        model = cnnkit.applications.classic_cnn()
        model.compile(optimizer=Adam(schedule), loss="categorical_crossentropy",
                      metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=batch, epochs=args.epochs, verbose=0,
                        validation_data=(x_test, y_test))
    if distribute.rank() == 0:
        print(json.dumps({"val_accuracy": history.history["val_accuracy"],
                          "seconds": time.perf_counter() - start,
                          "ranks": distribute.size(), "mean": float(np.mean(x))}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch-factor", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--rate-factor", type=float, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--data", default=os.environ.get("CNNKIT_DATA"))
    parser.add_argument("--ranks", type=int, default=4)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if args.child:
        return child(args)
    rows = []
    for name, ranks, batch_factor, rate_factor, warmup in CONFIGS:
        ranks = ranks or args.ranks
        command = [sys.executable, os.path.abspath(__file__), "--child", "--epochs",
                   str(args.epochs), "--batch-factor", str(batch_factor), "--rate-factor",
                   str(rate_factor), *(["--warmup"] if warmup else []),
                   *(["--data", args.data] if args.data else [])]
        if ranks > 1:
            mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
            command = [mpiexec if os.path.exists(mpiexec) else shutil.which("mpiexec"), "-n",
                       str(ranks), *command]
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // ranks))}
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append([name] + [f"{a:.4f}" for a in result["val_accuracy"]] +
                    [f"{result['seconds']:.0f}"])
        print(name, rows[-1][1:], file=sys.stderr)
    header = ["config"] + [f"epoch {e + 1}" for e in range(args.epochs)] + ["seconds"]
    print_table(header, rows, args.markdown, numeric_from=1)


if __name__ == "__main__":
    main()
