"""`python -m cnnkit train-autoencoder`: a convolutional autoencoder on CIFAR-10, end to end.

    python -m cnnkit train-autoencoder [--epochs 10] [--code-size 256] [--batch-size 64]
        [--data DIR] [--save FILE | --no-save] [--samples FILE.png] [--seed N] [--threads N]
        [--verbose 0|1|2] [--limit N]

Loads CIFAR-10 as train-cifar10 does (--data DIR, else $CNNKIT_DATA, else ~/.cnnkit/datasets,
else a download), scales pixels to [0, 1] and trains cnnkit.models.conv_autoencoder (Adam 1e-3,
mean squared error) with each image as its own target. The test set is the validation data, so
every epoch prints test MSE and PSNR. PSNR is the mean over test images of each image's PSNR
(cnnkit.metrics.psnr, as tf.image.psnr); the PSNR of the mean test MSE, 10 log10(1 / MSE), is
printed beside it because other frameworks' scripts often report that one (it is lower).
Saves the model (default cifar10_autoencoder.cnnkit; load_model gives it back, and
`encoder, decoder = model.layers` its two halves). --samples FILE.png writes the first ten test
images above their reconstructions, with a small PNG writer of its own (zlib, no matplotlib).
--limit N trains on the first N training images and tests on the first N test images.
"""
import math
import struct
import zlib

import numpy as np

from cnnkit.callbacks import Callback, ProgbarLogger
from cnnkit.cli.train_cifar10 import EpochTimer, _positive, add_training_options, prepare_run

DEFAULT_SAVE = "cifar10_autoencoder.cnnkit"
SAMPLES = 10     # images in the --samples grid
SCALE = 3        # each pixel drawn as SCALE x SCALE: 32-pixel images are too small to judge


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "train-autoencoder", help="train a convolutional autoencoder on CIFAR-10",
        description="Train cnnkit.models.conv_autoencoder on CIFAR-10 (each image its own target, "
                    "Adam, mean squared error), print test MSE and PSNR each epoch, save the model "
                    "and optionally a PNG of test images above their reconstructions.")
    add_training_options(parser, DEFAULT_SAVE)
    parser.add_argument("--code-size", type=_positive, default=256, help="length of the code (default 256)")
    parser.add_argument("--samples", metavar="FILE.png",
                        help=f"write the first {SAMPLES} test images above their reconstructions")
    parser.set_defaults(run=run)
    return parser


def run(args, parser):
    import cnnkit
    from cnnkit.models import conv_autoencoder

    data = prepare_run(args)
    if data is None:
        return 1
    (x_train, _), (x_test, _) = data
    say = print if args.verbose else (lambda *a, **k: None)
    say(f"CIFAR-10: {len(x_train)} training and {len(x_test)} test images; code size "
        f"{args.code_size}; {cnnkit.get_num_threads()} thread(s)")

    autoencoder, _, _ = conv_autoencoder(x_train.shape[1:], args.code_size)
    timer = EpochTimer(len(x_train), say)
    # The progress bar first, so that the per-epoch lines print under its bar, not above it.
    history = autoencoder.fit(x_train, x_train, epochs=args.epochs, batch_size=args.batch_size,
                              validation_data=(x_test, x_test),
                              callbacks=[ProgbarLogger(), TestReport(say), timer],
                              verbose=args.verbose)
    # The last validation pass is a full test-set evaluation of the final weights.
    mse, psnr = history.history["val_mse"][-1], history.history["val_psnr"][-1]
    print(f"Test MSE: {mse:.5f}")
    print(f"Test PSNR: {psnr:.2f} dB (mean over images; of the mean MSE: {psnr_of(mse):.2f} dB)")
    say(f"Training took {sum(timer.seconds):.1f} s, {np.mean(timer.seconds):.1f} s per epoch")

    if not args.no_save:
        autoencoder.save(args.save)
        print(f"Saved the autoencoder to {args.save}")
    if args.samples:
        originals = x_test[:SAMPLES]
        write_png(args.samples, image_grid([originals, autoencoder.predict(originals, verbose=0)]))
        print(f"Wrote {len(originals)} test images and their reconstructions to {args.samples}")
    return 0


def psnr_of(mse, max_val=1.0):
    """10 log10(max_val**2 / mse): the PSNR of one mean squared error (inf for 0)."""
    return math.inf if mse <= 0 else 10 * math.log10(max_val * max_val / mse)


class TestReport(Callback):
    """Prints the epoch's test MSE and PSNR (fit's validation on the test set) on a line of its own."""

    def __init__(self, say):
        super().__init__()
        self.say = say

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if "val_mse" in logs:
            self.say(f"Epoch {epoch + 1}: test MSE {logs['val_mse']:.5f}, test PSNR "
                     f"{logs['val_psnr']:.2f} dB (of the mean MSE: {psnr_of(logs['val_mse']):.2f} dB)")


# ---------------------------------------------------------------- the sample grid as a PNG

def image_grid(rows, gap=2):
    """Rows of images (each (n, H, W, C), values in [0, 1]) -> one uint8 (H', W', C) picture:
    the images side by side, rows one above the other, `gap` white pixels between them, each
    pixel enlarged SCALE times."""
    n, h, w, c = rows[0].shape
    cell_h, cell_w = h * SCALE + gap, w * SCALE + gap
    grid = np.full((len(rows) * cell_h + gap, n * cell_w + gap, c), 255, np.uint8)
    for r, images in enumerate(rows):
        pixels = np.round(np.clip(images, 0, 1) * 255).astype(np.uint8)
        pixels = pixels.repeat(SCALE, axis=1).repeat(SCALE, axis=2)
        for i, image in enumerate(pixels):
            top, left = gap + r * cell_h, gap + i * cell_w
            grid[top:top + h * SCALE, left:left + w * SCALE] = image
    return grid


def write_png(file, image):
    """Writes a uint8 (H, W, 1 or 3) array as an 8-bit greyscale or RGB PNG: the signature, then
    the IHDR, IDAT (rows, each after a 0 'no filter' byte, deflated) and IEND chunks."""
    height, width, channels = image.shape
    color_type = {1: 0, 3: 2}[channels]  # PNG: 0 greyscale, 2 RGB

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rows = np.concatenate([np.zeros((height, 1), np.uint8), image.reshape(height, -1)], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    with open(file, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                + chunk(b"IDAT", zlib.compress(rows.tobytes(), 9)) + chunk(b"IEND", b""))
