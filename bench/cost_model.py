"""A cost model of data-parallel training on N machines: bytes summed per step, the ring
allreduce's time at 10, 25 and 100 Gb/s, and the scaling efficiency it predicts up to 64
machines, for the seed CIFAR-10 CNN and ResNet-20.

    python bench/cost_model.py [--images-per-s cnn=1234,resnet=567] [--batch 64]
                               [--latency-us 20] [--backward 0.6] [--markdown]

Weak scaling, as data-parallel training runs: each machine keeps a batch of --batch images, the
global batch grows with N. A step's compute time is --batch / (one machine's training images
per second): measured here (one process, all cores, 20 steps after 5 warm-up) unless given.
A ring allreduce of S bytes over N machines sends 2 (N - 1) / N * S bytes from each machine
and takes 2 (N - 1) latency-bound hops:
    t_comm = 2 (N - 1) / N * S / bandwidth + 2 (N - 1) * buckets * latency
(--latency-us per hop, default 20 us, TCP over Ethernet). cnnkit starts every bucket but the
last while the backward pass computes the layers before it (--backward: the backward pass's
share of a step, default 0.6), so the time a step waits is
    exposed = max(t_comm - backward * t_compute, t_last_bucket)
and the efficiency is t_compute / (t_compute + exposed) (without overlap: t_compute /
(t_compute + t_comm)). Nothing here is measured on a network: it is the model, from one
machine's compute speed and the bytes the step sends.
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _tables import print_table  # noqa: E402

BANDWIDTHS = (10, 25, 100)  # Gb/s
MACHINES = (2, 4, 8, 16, 32, 64)
BUCKET_BYTES = 512 * 1024   # DataParallel's default


def build(name):
    import cnnkit
    from _models import resnet20
    if name == "cnn":
        return cnnkit.applications.classic_cnn()
    model = resnet20(cnnkit)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def measured_speed(model, batch):
    import numpy as np
    from cnnkit.callbacks import Callback
    n = batch * 25
    rng = np.random.default_rng(0)
    x = rng.random((n, 32, 32, 3), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]

    class Timer(Callback):
        def on_train_batch_begin(self, step, logs=None):
            if step == 5:
                self.start = time.perf_counter()

        def on_train_end(self, logs=None):
            self.seconds = time.perf_counter() - self.start
    timer = Timer()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False, callbacks=[timer])
    return 20 * batch / timer.seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images-per-s", default="",
                        help="one machine's training speed per model, e.g. cnn=2000,resnet=600")
    parser.add_argument("--batch", type=int, default=64, help="images per machine per step")
    parser.add_argument("--latency-us", type=float, default=20.0)
    parser.add_argument("--backward", type=float, default=0.6)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    given = dict(item.split("=") for item in args.images_per_s.split(",") if item)
    names = {"cnn": "seed CNN", "resnet": "ResNet-20"}
    rows = []
    for key, name in names.items():
        model = build(key)
        params = sum(w.size for w in model.trainable_weights)
        size = 4 * (params + 1)  # float32 gradients and the loss slot
        buckets = max(1, -(-size // BUCKET_BYTES))
        speed = float(given[key]) if key in given else measured_speed(model, args.batch)
        compute = args.batch / speed
        last = min(size, BUCKET_BYTES)
        for gbps in BANDWIDTHS:
            bandwidth = gbps * 1e9 / 8
            cells = []
            for n in MACHINES:
                hops = 2 * (n - 1)
                comm = hops / n * size / bandwidth + hops * buckets * args.latency_us * 1e-6
                last_bucket = hops / n * last / bandwidth + hops * args.latency_us * 1e-6
                exposed = max(comm - args.backward * compute, last_bucket)
                cells.append(f"{comm * 1e3:.2f} ms, {compute / (compute + exposed):.0%} "
                             f"({compute / (compute + comm):.0%})")
            rows.append([name, f"{params:,}", f"{size / 1e6:.2f} MB", f"{compute * 1e3:.0f} ms",
                         f"{gbps} Gb/s"] + cells)
    header = ["model", "parameters", "allreduced per step", "compute per step", "network"] + \
        [f"N={n}" for n in MACHINES]
    print_table(header, rows, args.markdown, numeric_from=5)
    print(f"(each cell: allreduce time, predicted efficiency with overlap (without); batch "
          f"{args.batch} per machine, latency {args.latency_us:g} us per hop, backward "
          f"{args.backward:.0%} of a step)")


if __name__ == "__main__":
    main()
