"""`python -m cnnkit export MODEL OUT.onnx`: a saved model as an ONNX file.

    python -m cnnkit export MODEL OUT.onnx [--opset 17]

Loads MODEL (cnnkit.models.load_model: a cnnkit file, a Keras .keras archive or a legacy .h5)
and writes its inference graph with cnnkit.onnx.export: the model's NHWC input with a dynamic
batch axis, BatchNormalization folded. Needs the onnx package. A missing or unreadable model, or
a layer export does not cover, is a message naming it and exit status 1.
"""
import sys

from cnnkit.cli.train_cifar10 import _positive


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "export", help="write a saved model as an ONNX file",
        description="Write the inference graph of the saved MODEL to OUT as ONNX (NHWC input, "
                    "dynamic batch axis, batch normalization folded).")
    parser.add_argument("model", metavar="MODEL", help="a model file (cnnkit, .keras or .h5)")
    parser.add_argument("output", metavar="OUT", help="the ONNX file to write")
    parser.add_argument("--opset", type=_positive, default=17, help="ONNX opset (default 17)")
    parser.set_defaults(run=run)
    return parser


def run(args, parser):
    from cnnkit import onnx as cnnkit_onnx
    from cnnkit.models import load_model
    try:
        model = load_model(args.model, compile=False)
        cnnkit_onnx.export(model, args.output, opset=args.opset)
    except (OSError, ValueError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Wrote {args.output}: {type(model).__name__} \"{model.name}\", input "
          f"{tuple(model.input_shape)}, output {tuple(model.output_shape)}, opset {args.opset}")
    return 0
