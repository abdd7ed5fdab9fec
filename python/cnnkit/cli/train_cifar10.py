"""`python -m cnnkit train-cifar10`: the classic Keras CIFAR-10 CNN, end to end.

    python -m cnnkit train-cifar10 [--epochs 10] [--batch-size 64] [--data DIR]
        [--save FILE | --no-save] [--plot FILE.png] [--seed N] [--threads N] [--verbose 0|1|2]
        [--limit N]

Loads CIFAR-10 (cnnkit.datasets.cifar10: --data DIR, else $CNNKIT_DATA, else ~/.cnnkit/datasets,
else a download), scales pixels to [0, 1], trains Conv32-Pool-Conv64-Pool-Dense128-Dense10 with
Adam and categorical cross-entropy, with the test set as validation data so that every epoch
reports test loss and accuracy, then prints the test accuracy and saves the model
(default cifar10_cnn.cnnkit in the current folder; load it with cnnkit.models.load_model).
--plot FILE.png also writes the loss and accuracy curves and the test confusion matrix (needs
matplotlib: pip install 'cnnkit[plot]'; checked before anything is trained).
--limit N trains on the first N training images and tests on the first N test images: for quick
trials and tests, not for figures worth reporting.
"""
import sys
import time

import numpy as np

from cnnkit.applications import classic_cnn  # noqa: F401 (re-exported: the CLI's model)
from cnnkit.callbacks import Callback, ProgbarLogger

DEFAULT_SAVE = "cifar10_cnn.cnnkit"


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "train-cifar10", help="train the classic Keras CIFAR-10 CNN",
        description="Train the classic Keras CIFAR-10 CNN (Conv32-Pool-Conv64-Pool-Dense128-Dense10, "
                    "Adam, categorical cross-entropy), print test accuracy and save the model.")
    add_training_options(parser, DEFAULT_SAVE)
    parser.add_argument("--plot", metavar="FILE.png",
                        help="write training curves and the test confusion matrix (needs matplotlib)")
    parser.set_defaults(run=run)
    return parser


def add_training_options(parser, default_save):
    """The options every CIFAR-10 training command takes (prepare_run reads most of them)."""
    parser.add_argument("--epochs", type=_positive, default=10, help="passes over the training set (default 10)")
    parser.add_argument("--batch-size", type=_positive, default=64, help="images per step (default 64)")
    parser.add_argument("--data", metavar="DIR", help="folder holding cifar-10-batches-py/ or cifar-10-python.tar.gz "
                        "(default: $CNNKIT_DATA, then ~/.cnnkit/datasets, then download)")
    save = parser.add_mutually_exclusive_group()
    save.add_argument("--save", metavar="FILE", default=default_save,
                      help=f"where to save the trained model (default {default_save})")
    save.add_argument("--no-save", action="store_true", help="do not save the model")
    parser.add_argument("--seed", type=int, help="random seed, for a repeatable run (default: unseeded)")
    parser.add_argument("--threads", type=_positive, help="OpenMP threads (default: all cores)")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                        help="0 silent, 1 progress bar, 2 one line per epoch (Keras' fit); default 1")
    parser.add_argument("--limit", type=_positive, metavar="N",
                        help="use only the first N training and N test images (quick trials)")


def _positive(text):
    value = int(text)
    if value < 1:
        raise ValueError(text)  # argparse turns this into "invalid _positive value"
    return value


def prepared_data(data_dir=None, limit=None):
    """CIFAR-10 as float32 images in [0, 1] and one-hot labels: (x_train, y_train), (x_test, y_test).

    float32 directly: `x / 255.0` would first make a float64 copy four times the uint8 size."""
    from cnnkit.datasets import cifar10
    from cnnkit.utils import to_categorical

    (x_train, y_train), (x_test, y_test) = cifar10.load_data(data_dir)
    if limit:
        x_train, y_train, x_test, y_test = x_train[:limit], y_train[:limit], x_test[:limit], y_test[:limit]

    def scaled(images):
        out = images.astype(np.float32)
        out *= np.float32(1 / 255)
        return out
    return ((scaled(x_train), to_categorical(y_train, cifar10.NUM_CLASSES)),
            (scaled(x_test), to_categorical(y_test, cifar10.NUM_CLASSES)))


def prepare_run(args):
    """What every training command does first: threads, seed, and CIFAR-10 as float32 in [0, 1].
    Returns ((x_train, y_train), (x_test, y_test)), or None after printing why the data could
    not be read (not found or damaged: the loader's message says it all)."""
    import cnnkit
    from cnnkit.datasets import DatasetNotFoundError
    from cnnkit.utils import set_random_seed

    if args.threads:
        cnnkit.set_num_threads(args.threads)
    if args.seed is not None:
        set_random_seed(args.seed)
    try:
        return prepared_data(args.data, args.limit)
    except (DatasetNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return None


def run(args, parser):
    from cnnkit.cli import plots

    if args.plot:  # fail now, not after the training
        problem = plots.require_matplotlib()
        if problem:
            parser.error(problem)

    import cnnkit
    from cnnkit.datasets import cifar10

    data = prepare_run(args)
    if data is None:
        return 1
    (x_train, y_train), (x_test, y_test) = data
    say = print if args.verbose else (lambda *a, **k: None)
    say(f"CIFAR-10: {len(x_train)} training and {len(x_test)} test images; "
        f"{cnnkit.get_num_threads()} thread(s)")

    model = classic_cnn()
    timer = EpochTimer(len(x_train), say)
    # The progress bar first, so that each epoch's time prints under its bar, not above it.
    history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                        validation_data=(x_test, y_test), callbacks=[ProgbarLogger(), timer],
                        verbose=args.verbose)
    # The last validation pass already evaluated the final weights on the whole test set.
    loss, accuracy = history.history["val_loss"][-1], history.history["val_accuracy"][-1]
    print(f"Test loss: {loss:.4f}")
    print(f"Test accuracy: {accuracy:.4f}")
    say(f"Training took {sum(timer.seconds):.1f} s, {np.mean(timer.seconds):.1f} s per epoch")

    if not args.no_save:
        model.save(args.save)
        print(f"Saved the model to {args.save}")
    if args.plot:
        predicted = model.predict(x_test, batch_size=args.batch_size, verbose=0).argmax(axis=1)
        confusion = plots.confusion_matrix(y_test.argmax(axis=1), predicted, cifar10.NUM_CLASSES)
        plots.save_training_report(args.plot, history.history, confusion, cifar10.CLASS_NAMES,
                                   title=f"cnnkit, classic CIFAR-10 CNN: {len(x_train)} training images, "
                                         f"batch {args.batch_size}, test accuracy {accuracy:.3f}")
        print(f"Wrote the training report to {args.plot}")
    return 0


class EpochTimer(Callback):
    """Times each epoch (training and its validation pass) and prints it under Keras' line."""

    def __init__(self, images, say):
        super().__init__()
        self.images, self.say, self.seconds = images, say, []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)
        self.say(f"Epoch {epoch + 1} took {self.seconds[-1]:.1f} s "
                 f"({self.images / self.seconds[-1]:.0f} training images/s, validation included)")
