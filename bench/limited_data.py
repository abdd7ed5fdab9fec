"""Learning from little data: what augmentation gains (issue #7).

The classic Keras CIFAR-10 CNN (cnnkit.cli.train_cifar10.classic_cnn's layers), trained
  1. on the first --train-size (5,000) training images, without augmentation and with
     RandomFlip('horizontal') + RandomTranslation(0.1, 0.1) in front of it, --epochs each;
  2. on all 50,000 training images with the same augmentation for --full-epochs (20), and, with
     --full-baseline, without it for as many epochs, for comparison.
Every run starts from the same seed (the same initial weights), uses Adam and batch 64, and is
evaluated on all 10,000 test images after every epoch. The table gives the final and the best
test accuracy, the final training accuracy (the gap to the test accuracy is the overfitting)
and the time per epoch.

    python bench/limited_data.py [--train-size 5000] [--epochs 40] [--full-epochs 20]
                                 [--full-baseline] [--only small|full] [--seed 1]
                                 [--threads N] [--data DIR] [--markdown]

At 2 threads on 2 cores: about 4 minutes for part 1 and 5 for part 2 (10 with --full-baseline).
"""
import argparse
import platform
import time

import numpy as np

import cnnkit
from cnnkit.callbacks import Callback
from cnnkit.cli.train_cifar10 import prepared_data
from cnnkit.layers import (Conv2D, Dense, Flatten, Input, MaxPooling2D, RandomFlip,
                           RandomTranslation)
from cnnkit.models import Sequential
from cnnkit.utils import set_random_seed


def classic_cnn(augment, seed):
    """The classic CNN, with flip and translation in front when augment; the same initial
    weights either way (the augmentation layers hold none and draw from their own seed)."""
    set_random_seed(seed)
    front = [RandomFlip("horizontal", seed=seed), RandomTranslation(0.1, 0.1, seed=seed)] \
        if augment else []
    model = Sequential([Input((32, 32, 3))] + front + [
        Conv2D(32, (3, 3), activation="relu"), MaxPooling2D((2, 2)),
        Conv2D(64, (3, 3), activation="relu"), MaxPooling2D((2, 2)),
        Flatten(), Dense(128, activation="relu"), Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


class EpochClock(Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = getattr(self, "seconds", []) + [time.perf_counter() - self.start]
        print(f"    epoch {epoch + 1:>2}: loss {logs['loss']:.4f}, train acc "
              f"{logs['accuracy']:.4f}, test acc {logs['val_accuracy']:.4f} "
              f"({self.seconds[-1]:.1f} s)", flush=True)


def train(name, x, y, test, epochs, augment, seed):
    print(f"{name}: {len(x)} images, {epochs} epochs, "
          f"{'flip + translation' if augment else 'no augmentation'}", flush=True)
    model = classic_cnn(augment, seed)
    clock = EpochClock()
    history = model.fit(x, y, batch_size=64, epochs=epochs, validation_data=test,
                        callbacks=[clock], verbose=0).history
    test_acc = history["val_accuracy"]
    best = int(np.argmax(test_acc))
    return {"run": name, "images": len(x), "augmentation": "flip + translation" if augment
            else "none", "epochs": epochs, "final": test_acc[-1], "best": test_acc[best],
            "best_epoch": best + 1, "train": history["accuracy"][-1],
            "epoch_s": float(np.median(clock.seconds))}


def print_table(rows, markdown):
    header = ["run", "training images", "augmentation", "epochs", "final test acc",
              "best test acc (epoch)", "final train acc", "s per epoch"]
    lines = [[r["run"], f"{r['images']:,}", r["augmentation"], str(r["epochs"]),
              f"{100 * r['final']:.2f}%", f"{100 * r['best']:.2f}% ({r['best_epoch']})",
              f"{100 * r['train']:.2f}%", f"{r['epoch_s']:.1f}"] for r in rows]
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for line in lines:
            print("| " + " | ".join(line) + " |")
        return
    widths = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(header)]
    for line in [header] + lines:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train-size", type=int, default=5000)
    p.add_argument("--epochs", type=int, default=40, help="epochs of the small runs")
    p.add_argument("--full-epochs", type=int, default=20)
    p.add_argument("--full-baseline", action="store_true",
                   help="also train on the full set without augmentation")
    p.add_argument("--only", choices=("small", "full"))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=cnnkit.get_num_threads())
    p.add_argument("--data", metavar="DIR", help="folder with CIFAR-10 (default: $CNNKIT_DATA)")
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args()
    cnnkit.set_num_threads(args.threads)
    (x, y), test = prepared_data(args.data)
    print(f"cnnkit {cnnkit.__version__}, {platform.machine()}, {args.threads} thread(s), "
          f"seed {args.seed}", flush=True)
    rows = []
    if args.only != "full":
        small_x, small_y = x[:args.train_size], y[:args.train_size]
        for augment in (False, True):
            rows.append(train("small", small_x, small_y, test, args.epochs, augment, args.seed))
    if args.only != "small":
        for augment in ((False, True) if args.full_baseline else (True,)):
            rows.append(train("full", x, y, test, args.full_epochs, augment, args.seed))
    print()
    print_table(rows, args.markdown)


if __name__ == "__main__":
    main()
