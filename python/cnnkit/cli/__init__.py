"""cnnkit's command line: `python -m cnnkit COMMAND [options]`.

Commands (`python -m cnnkit COMMAND --help` for their options):
  train-cifar10      train the classic Keras CIFAR-10 CNN, report test accuracy, save the model
  train-autoencoder  train a convolutional autoencoder on CIFAR-10, report test MSE and PSNR
  train-images       train an image classifier on a folder with one sub-folder per class
  predict            classify image files with a saved model (top classes, probabilities)

A command is a module here with `add_parser(subparsers)`, which registers its options and sets
`run` (a function of the parsed arguments returning the exit status) as the parser's default;
adding one (train-autoencoder, ...) means one new module and one line in COMMANDS.
"""
import argparse

from . import predict, train_autoencoder, train_cifar10, train_images

COMMANDS = [train_cifar10, train_autoencoder, train_images, predict]


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m cnnkit",
                                     description="Convolutional networks on the CPU, with Keras' interface.")
    subparsers = parser.add_subparsers(title="commands", dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv=None):
    """Parses `argv` (default sys.argv[1:]), runs the command and returns its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.run(args, parser)
