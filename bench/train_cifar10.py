"""Training speed of the classic Keras CIFAR-10 CNN in cnnkit: images per second through
model.fit (forward, backward and Adam update; no validation), at one or more thread counts.

    python bench/train_cifar10.py [--steps 60] [--batch-size 64] [--repeats 3] [--threads 1,2]
                                  [--data DIR | --synthetic] [--epoch]

Real CIFAR-10 is used when load_data finds it (--data DIR, $CNNKIT_DATA, ~/.cnnkit/datasets);
--synthetic uses random images of the same shape. How contenders alternate: bench/_fit_timing.py.
Defaults take about a minute on 2 cores.
"""
from _fit_timing import compare_threads, parser, training_data

from cnnkit.applications import classic_cnn


def main():
    args = parser(__doc__.split("\n\n")[0], steps=60).parse_args()
    x, y, source = training_data(args)
    compare_threads(classic_cnn, x, y, source, args)


if __name__ == "__main__":
    main()
