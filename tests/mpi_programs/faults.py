"""A fault on rank 1 of an mpiexec job, for tests/test_distribute_mpi.py: each rank prints
'rank R: <exception type>: <message> [after S s]' (or 'rank R: done [after S s]')."""
import os
import signal
import sys
import time

import numpy as np

import cnnkit
from cnnkit import distribute
from cnnkit import layers as L
from cnnkit.callbacks import Callback
from cnnkit.utils import PyDataset

kind = sys.argv[1]
rank = distribute.rank()
if kind == "other-version" and rank == 1:
    cnnkit.__version__ = "0.0.0-other"
strategy = distribute.DataParallel(timeout=float(os.environ.get("CNNKIT_TEST_TIMEOUT", "3")))
with strategy.scope():
    width = 5 if kind == "other-model" and rank == 1 else 4
    model = cnnkit.Sequential([cnnkit.Input((8, 8, 3)), L.Conv2D(width, 3, activation="relu"),
                               L.Flatten(), L.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
x = np.random.default_rng(1).normal(size=(200, 8, 8, 3)).astype(np.float32)
y = np.eye(3, dtype=np.float32)[np.arange(200) % 3]


class Fail(Callback):
    def on_train_batch_end(self, batch, logs=None):
        if rank == 1 and batch == 3:
            if kind == "raise":
                raise RuntimeError("failed on purpose")
            if kind == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if kind == "hang":
                time.sleep(600)


class Batches(PyDataset):
    def __len__(self):
        return 20 - (5 if kind == "data-other" and rank == 1 else 0)

    def __getitem__(self, i):
        if kind == "data-lost" and rank == 1 and i == 4:
            raise FileNotFoundError("batch 4's file is gone")
        return x[i * 10:(i + 1) * 10], y[i * 10:(i + 1) * 10]


def batches():
    """A generator (its length unknown to fit): rank 1's runs out after 15 of 20 batches."""
    for i in range(15 if rank == 1 else 20):
        yield x[i * 10:(i + 1) * 10], y[i * 10:(i + 1) * 10]


data = (Batches(),) if kind in ("data-lost", "data-other") else (
    (batches(),) if kind == "data-short" else (x, y))
start = time.monotonic()
try:
    validation = (x[:30], y[:30]) if kind == "other-validation" and rank == 1 else (
        x[:20], y[:20])
    model.fit(*data, batch_size=None if kind.startswith("data") else 10, epochs=1, verbose=0,
              callbacks=[Fail()], validation_data=validation)
    print(f"rank {rank}: done [after {time.monotonic() - start:.1f} s]", flush=True)
except Exception as error:
    print(f"rank {rank}: {type(error).__name__}: {error} "
          f"[after {time.monotonic() - start:.1f} s]", flush=True)
    raise
