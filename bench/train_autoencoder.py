"""Training speed of cnnkit's convolutional autoencoder (cnnkit.models.conv_autoencoder on
32x32x3 images): images per second through model.fit (forward, backward and Adam update; no
validation), at one or more thread counts.

    python bench/train_autoencoder.py [--steps 40] [--batch-size 64] [--repeats 3] [--threads 1,2]
                                      [--code-size 256] [--data DIR | --synthetic] [--epoch]

Timed as bench/train_cifar10.py times the classic CNN (bench/_fit_timing.py), each image its own
target. Defaults take about a minute on 2 cores.
"""
from _fit_timing import compare_threads, parser, training_data

from cnnkit.models import conv_autoencoder


def main():
    p = parser(__doc__.split("\n\n")[0], steps=40)
    p.add_argument("--code-size", type=int, default=256)
    args = p.parse_args()
    x, _, source = training_data(args)
    compare_threads(lambda: conv_autoencoder(code_size=args.code_size)[0], x, x, source, args,
                    what=f", code {args.code_size}")


if __name__ == "__main__":
    main()
