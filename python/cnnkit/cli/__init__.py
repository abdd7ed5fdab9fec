"""cnnkit's command line: `python -m cnnkit COMMAND [options]`.

Commands (`python -m cnnkit COMMAND --help` for their options):
  train-cifar10      train the classic Keras CIFAR-10 CNN, report test accuracy, save the model
  train-autoencoder  train a convolutional autoencoder on CIFAR-10, report test MSE and PSNR
  train-images       train an image classifier on a folder with one sub-folder per class
  speedrun-cifar10   the airbench94 recipe: CIFAR-10 to about 91% (this copy) in minutes
  predict            classify image files with a saved model (top classes, probabilities)
  export             write a saved model (cnnkit, .keras or .h5) as an ONNX file

A command is a module here with `add_parser(subparsers)`, which registers its options and sets
`run` (a function of the parsed arguments returning the exit status) as the parser's default;
adding one (train-autoencoder, ...) means one new module and one line in COMMANDS.
"""
import argparse

from . import export, predict, speedrun_cifar10, train_autoencoder, train_cifar10, train_images

COMMANDS = [train_cifar10, train_autoencoder, train_images, speedrun_cifar10, predict, export]


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m cnnkit",
                                     description="Convolutional networks on the CPU, with Keras' interface.")
    subparsers = parser.add_subparsers(title="commands", dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv=None):
    """Parses `argv` (default sys.argv[1:]), runs the command and returns its exit status.
    Started by an MPI launcher (mpiexec -n N python -m cnnkit ...), the command runs
    data-parallel on the N ranks (cnnkit.distribute), rank 0 alone printing and saving."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from ..distribute import _launch
    if _launch.launched_size() == 1:
        return args.run(args, parser)
    return _run_distributed(args, parser)


def _run_distributed(args, parser):
    import contextlib
    import os
    import sys

    from .. import distribute
    strategy = distribute.DataParallel()
    with contextlib.ExitStack() as stack:
        if strategy.rank != 0:  # rank 0 reports and writes; the others' errors reach stderr
            quiet = stack.enter_context(open(os.devnull, "w"))
            stack.enter_context(contextlib.redirect_stdout(quiet))
            args.no_save = True
            for option in ("plot", "samples"):
                if getattr(args, option, None):
                    setattr(args, option, None)
        else:
            print(f"Distributed over {strategy.num_replicas_in_sync} MPI ranks "
                  "(cnnkit.distribute); the batch size is the global batch", file=sys.stdout)
        with strategy.scope():
            return args.run(args, parser)
