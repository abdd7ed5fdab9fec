"""A tiny classifier trained by tests/test_distribute_mpi.py, on one process (--single) or
under mpiexec in a DataParallel scope. Rank 0 saves the final weights (.npy) and the history
(.json) to --out."""
import argparse
import json

import numpy as np

import cnnkit
from cnnkit import distribute
from cnnkit import layers as L
from cnnkit.callbacks import BackupAndRestore, Callback
from cnnkit.utils import PyDataset, set_random_seed

parser = argparse.ArgumentParser()
parser.add_argument("--single", action="store_true")
parser.add_argument("--bn", action="store_true")
parser.add_argument("--sync-bn", action="store_true")
parser.add_argument("--samples", type=int, default=103)
parser.add_argument("--batch", type=int, default=10)
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--stream", action="store_true", help="a PyDataset, not arrays")
parser.add_argument("--backup", help="a BackupAndRestore folder")
parser.add_argument("--interrupt-at-epoch", type=int, help="raise at the end of this epoch")
parser.add_argument("--out", required=True)
args = parser.parse_args()


def build():
    set_random_seed(0)
    model = cnnkit.Sequential([
        cnnkit.Input((8, 8, 3)), L.Conv2D(4, 3, activation="relu"),
        *([L.BatchNormalization()] if args.bn else []), L.MaxPooling2D(), L.Flatten(),
        L.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


rng = np.random.default_rng(1)
x = rng.normal(size=(args.samples, 8, 8, 3)).astype(np.float32)
y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, args.samples)]
if args.single:
    model = build()
else:
    with distribute.DataParallel(sync_batch_norm=args.sync_bn, bucket_bytes=256).scope():
        model = build()


class Batches(PyDataset):
    def __len__(self):
        return -(-args.samples // args.batch)

    def __getitem__(self, i):
        part = slice(i * args.batch, (i + 1) * args.batch)
        return x[part], y[part]


class Interrupt(Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == args.interrupt_at_epoch:
            raise KeyboardInterrupt("interrupted on purpose")


callbacks = [Interrupt()]
if args.backup:
    callbacks.insert(0, BackupAndRestore(args.backup, delete_checkpoint=False))
data = (Batches(),) if args.stream else (x, y)
try:
    history = model.fit(*data, batch_size=None if args.stream else args.batch,
                        epochs=args.epochs, verbose=0, callbacks=callbacks)
except KeyboardInterrupt:
    raise SystemExit(3)
weights = np.concatenate([w.ravel() for w in model.weights])
evaluated = model.evaluate(x, y, batch_size=args.batch, verbose=0, return_dict=True)
try:
    model.train_on_batch(x[:4], y[:4])
    refused = None
except NotImplementedError as error:
    refused = str(error)
if distribute.rank() == 0:
    np.save(args.out + ".npy", weights)
    with open(args.out + ".json", "w") as f:
        json.dump({"history": history.history, "size": distribute.size(),
                   "evaluate": evaluated, "train_on_batch": refused}, f)
