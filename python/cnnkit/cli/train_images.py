"""`python -m cnnkit train-images DIR`: train an image classifier on your own folder of images.

    python -m cnnkit train-images DIR [--image-size 180] [--batch-size 32] [--epochs 10]
        [--validation-split 0.2] [--seed 1337] [--save model.cnnkit | --no-save]
        [--plot FILE.png] [--threads N] [--verbose 0|1|2]

DIR holds one sub-folder per class (DIR/cat/*.jpg, DIR/dog/*.jpg, ...), read with
cnnkit.utils.image_dataset_from_directory and split into training and validation subsets by
`--validation-split` and `--seed`. The model is the small CNN of keras.io's "Image classification
from scratch" (augmentation, rescaling, Conv2D/SeparableConv2D-BatchNormalization-ReLU blocks,
global average pooling, dropout) with a 1-unit sigmoid output for two classes and a softmax
otherwise. The class names are saved beside the model in a sidecar `MODEL.classes.json` (the
model file's format has no place for them), which `python -m cnnkit predict` reads.
"""
import json
import os
import sys
import tempfile

from cnnkit.cli.train_cifar10 import EpochTimer, _positive

DEFAULT_SAVE = "model.cnnkit"
CLASSES_SUFFIX = ".classes.json"


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "train-images", help="train an image classifier on a folder with one sub-folder per class",
        description="Train a small CNN (keras.io's 'Image classification from scratch') on DIR, "
                    "which holds one sub-folder of images per class; print the validation "
                    "accuracy and save the model with its class names.")
    parser.add_argument("directory", metavar="DIR", help="folder with one sub-folder of images per class")
    parser.add_argument("--image-size", type=_positive, default=180, metavar="N",
                        help="images are resized to N x N pixels (default 180)")
    parser.add_argument("--batch-size", type=_positive, default=32, help="images per step (default 32)")
    parser.add_argument("--epochs", type=_positive, default=10, help="passes over the training set (default 10)")
    parser.add_argument("--validation-split", type=_fraction, default=0.2, metavar="F",
                        help="fraction of the images kept for validation, in (0, 1) (default 0.2)")
    parser.add_argument("--seed", type=int, default=1337,
                        help="random seed of the split, the weights and the shuffling (default 1337)")
    save = parser.add_mutually_exclusive_group()
    save.add_argument("--save", metavar="FILE", default=DEFAULT_SAVE,
                      help=f"where to save the trained model (default {DEFAULT_SAVE}); its class "
                           f"names go to FILE{CLASSES_SUFFIX}")
    save.add_argument("--no-save", action="store_true", help="do not save the model")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="write training curves and the validation confusion matrix (needs matplotlib)")
    parser.add_argument("--threads", type=_positive, help="OpenMP threads (default: all cores)")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                        help="0 silent, 1 progress bar, 2 one line per epoch (Keras' fit); default 1")
    parser.set_defaults(run=run)
    return parser


def _fraction(text):
    value = float(text)
    if not 0 < value < 1:
        raise ValueError(text)  # argparse turns this into "invalid _fraction value"
    return value


def image_classifier(image_size, channels, num_classes):
    """keras.io's "Image classification from scratch" model, slimmed so that it trains on a CPU:
    augmentation and rescaling inside the model (so `predict` feeds raw 0..255 pixels), a strided
    entry convolution, then SeparableConv2D blocks (cheap: depthwise + 1x1), global average
    pooling, dropout, and one sigmoid unit for two classes or a softmax over the classes."""
    import cnnkit
    from cnnkit import layers

    def block(filters, separable=True):
        conv = layers.SeparableConv2D if separable else layers.Conv2D
        return [conv(filters, 3, padding="same", use_bias=False), normalization(), layers.Activation("relu")]

    def normalization():
        # momentum 0.9, not Keras' 0.99: the moving statistics that validation and predict use
        # settle within tens of steps, so that small folders (a few batches an epoch) work too.
        return layers.BatchNormalization(momentum=0.9)

    binary = num_classes == 2
    return cnnkit.Sequential(
        [cnnkit.Input((image_size, image_size, channels)),
         layers.RandomFlip("horizontal"), layers.RandomRotation(0.1), layers.Rescaling(1.0 / 255),
         layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False), normalization(),
         layers.Activation("relu"),
         *block(64, separable=False), layers.MaxPooling2D(3, strides=2, padding="same"),
         *block(128), layers.MaxPooling2D(3, strides=2, padding="same"),
         *block(256),
         layers.GlobalAveragePooling2D(), layers.Dropout(0.25),
         layers.Dense(1 if binary else num_classes, activation="sigmoid" if binary else "softmax")],
        name="image_classifier")


def classes_path(model_path):
    return os.fspath(model_path) + CLASSES_SUFFIX


def save_class_names(model_path, class_names):
    """Writes MODEL.classes.json atomically (a temporary file then os.replace), as the model."""
    path = classes_path(model_path)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp",
                               dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"class_names": list(class_names)}, f, ensure_ascii=False, indent=1)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_class_names(model_path):
    """The class names saved beside a model, or None when there is no sidecar file. A sidecar
    that cannot be read is a ValueError naming it."""
    path = classes_path(model_path)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            names = json.load(f)["class_names"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise TypeError("class_names is not a list of strings")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: cannot read the class names ({type(error).__name__}: {error})") from None
    return names


def run(args, parser):
    from cnnkit.cli import plots

    if args.plot:  # fail now, not after the training
        problem = plots.require_matplotlib()
        if problem:
            parser.error(problem)

    import numpy as np

    import cnnkit
    from cnnkit.callbacks import ProgbarLogger
    from cnnkit.utils import image_dataset_from_directory, set_random_seed

    if args.threads:
        cnnkit.set_num_threads(args.threads)
    set_random_seed(args.seed)
    say = print if args.verbose else (lambda *a, **k: None)
    try:
        # Count the classes first: their number decides the labels (binary or int).
        class_names = sorted(entry.name for entry in os.scandir(args.directory) if entry.is_dir())
        if len(class_names) < 2:
            raise ValueError(f"{args.directory} must hold one sub-folder of images per class, "
                             f"at least two; found {len(class_names)}")
        binary = len(class_names) == 2
        train_ds, val_ds = image_dataset_from_directory(
            args.directory, label_mode="binary" if binary else "int", validation_split=args.validation_split,
            subset="both", seed=args.seed, image_size=(args.image_size, args.image_size),
            batch_size=args.batch_size, verbose=bool(args.verbose))
    except (OSError, ValueError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    class_names = list(train_ds.class_names)

    model = image_classifier(args.image_size, 3, len(class_names))
    model.compile(optimizer=cnnkit.optimizers.Adam(3e-4),
                  loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    say(f"Classes: {', '.join(class_names)}; {cnnkit.get_num_threads()} thread(s)")
    timer = EpochTimer(len(train_ds) * args.batch_size, say)  # images/s is approximate: last batch
    history = model.fit(train_ds, epochs=args.epochs, validation_data=val_ds,
                        callbacks=[ProgbarLogger(), timer], verbose=args.verbose,
                        shuffle=False)  # the dataset shuffles itself
    logs = history.history
    if "val_accuracy" in logs:
        print(f"Validation loss: {logs['val_loss'][-1]:.4f}")
        print(f"Validation accuracy: {logs['val_accuracy'][-1]:.4f}")
    else:
        print("No validation images: the split left none")

    if not args.no_save:
        model.save(args.save)
        sidecar = save_class_names(args.save, class_names)
        print(f"Saved the model to {args.save} and its class names to {sidecar}")
    if args.plot:
        true, predicted = [], []
        for images, labels in val_ds:
            scores = model.predict(images, verbose=0)
            predicted.append((scores[:, 0] > 0.5).astype(int) if binary else scores.argmax(axis=1))
            true.append(np.asarray(labels).reshape(len(images), -1)[:, 0].astype(int))
        true = np.concatenate(true) if true else np.zeros(0, int)
        predicted = np.concatenate(predicted) if predicted else np.zeros(0, int)
        confusion = plots.confusion_matrix(true, predicted, len(class_names))
        accuracy = np.trace(confusion) / max(confusion.sum(), 1)
        plots.save_training_report(args.plot, logs, confusion, class_names, held_out="validation",
                                   title=f"cnnkit, {args.directory}: {len(class_names)} classes, "
                                         f"{args.image_size}x{args.image_size}, validation accuracy {accuracy:.3f}")
        print(f"Wrote the training report to {args.plot}")
    return 0
