"""`python -m cnnkit speedrun-cifar10`: the airbench94 recipe on CIFAR-10 (applications/
speedrun.py): per-epoch training time and test accuracy, then the test accuracy with
test-time augmentation, and the accuracy on the test rows whose pixels are the official ones.

    python -m cnnkit speedrun-cifar10 [--seed 0] [--threads N] [--epochs 9.9] [--data DIR]
        [--plot FILE.png] [--limit N] [--json]

--limit N trains on the first N training images and tests on the first N test images (quick
trials, not figures). --json prints a last line with the whole report as JSON.
"""
import json
import os
import sys


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "speedrun-cifar10", help="train airbench94's CIFAR-10 recipe (fast, ~91-94%%)",
        description="Train the airbench94 CIFAR-10 recipe and report time and accuracy.")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--threads", type=_positive, help="OpenMP threads (default: all cores)")
    parser.add_argument("--epochs", type=_positive_float, default=9.9,
                        help="epochs, possibly fractional (default 9.9)")
    parser.add_argument("--data", metavar="DIR", help="folder holding cifar-10-batches-py/ "
                        "(default: $CNNKIT_DATA, then ~/.cnnkit/datasets, then download)")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="write the test accuracy per epoch (needs matplotlib)")
    parser.add_argument("--limit", type=_positive, metavar="N",
                        help="use only the first N training and N test images")
    parser.add_argument("--json", action="store_true", help="print the report as JSON last")
    parser.set_defaults(run=run)
    return parser


def _positive(text):
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def _positive_float(text):
    value = float(text)
    if not value > 0:
        raise ValueError(text)
    return value


def bitexact_rows(data_dir):
    """How many leading test rows hold the official pixels (BITEXACT_ROWS.json beside this
    project's copy of CIFAR-10), or None where the file is absent."""
    for folder in filter(None, [data_dir, os.environ.get("CNNKIT_DATA")]):
        path = os.path.join(folder, "cifar-10-batches-py", "BITEXACT_ROWS.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                return int(json.load(f)["bitexact_leading_rows"]["test_batch"])
    return None


def run(args, parser):
    from cnnkit.cli import plots
    if args.plot:
        problem = plots.require_matplotlib()
        if problem:
            parser.error(problem)
    import cnnkit
    from cnnkit.applications.airbench import predict_with_tta
    from cnnkit.applications.speedrun import accuracy_of, normalise, speedrun
    from cnnkit.datasets import DatasetNotFoundError, cifar10

    if args.threads:
        cnnkit.set_num_threads(args.threads)
    try:
        (x_train, y_train), (x_test, y_test) = cifar10.load_data(args.data)
    except (DatasetNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.limit:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
        x_test, y_test = x_test[:args.limit], y_test[:args.limit]
    print(f"airbench94 on CIFAR-10: {len(x_train)} training and {len(x_test)} test images, "
          f"{args.epochs:g} epochs, seed {args.seed}, {cnnkit.get_num_threads()} thread(s)")
    try:
        model, report = speedrun(x_train, y_train, x_test, y_test, epochs=args.epochs,
                                 seed=args.seed, say=lambda text: print(text, flush=True))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    exact = bitexact_rows(args.data)
    if exact:
        rows = slice(0, min(exact, len(x_test)))
        labels = y_test.ravel()[rows]
        images = normalise(x_test[rows])
        report["bitexact_test_rows"] = rows.stop
        report["bitexact_accuracy"] = accuracy_of(model.predict(images, verbose=0), labels)
        report["bitexact_accuracy_tta"] = accuracy_of(predict_with_tta(model, images), labels)
    print(f"whitening {report['whiten_seconds']:.2f} s, training {report['train_seconds']:.1f} "
          f"s, TTA {report['tta_seconds']:.1f} s, total {report['total_seconds']:.1f} s")
    print(f"Test accuracy: {report['test_accuracy_tta']:.4f} with TTA, "
          f"{report['test_accuracy']:.4f} without")
    if exact:
        print(f"On the {report['bitexact_test_rows']} test rows with the official pixels: "
              f"{report['bitexact_accuracy_tta']:.4f} with TTA, "
              f"{report['bitexact_accuracy']:.4f} without")
    if args.plot:
        _plot(args.plot, report)
        print(f"Wrote the accuracy curve to {args.plot}")
    if args.json:
        print(json.dumps({"seed": args.seed, "threads": cnnkit.get_num_threads(),
                          "epochs": args.epochs, **report}))
    return 0


def _plot(path, report):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axis = plt.subplots(figsize=(6, 4))
    epochs = range(1, len(report["epoch_test_accuracy"]) + 1)
    axis.plot(epochs, report["epoch_test_accuracy"], marker="o", label="test accuracy")
    axis.axhline(report["test_accuracy_tta"], color="gray", linestyle="--",
                 label=f"with TTA: {report['test_accuracy_tta']:.4f}")
    axis.set_xlabel("epoch")
    axis.set_ylabel("accuracy")
    axis.set_title(f"cnnkit airbench94: {report['total_seconds']:.0f} s in all")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
