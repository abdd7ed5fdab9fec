"""`python -m cnnkit predict MODEL IMAGE...`: classify images with a saved model.

    python -m cnnkit predict MODEL IMAGE... [--top 3]

Loads MODEL (cnnkit.models.load_model) and its class names from MODEL.classes.json (written by
train-images; without it the classes print as their indices), reads each image at the model's
input size with the color mode of its input channels (1 grayscale, 3 rgb, 4 rgba), and prints
the top classes with their probabilities. A 1-unit (sigmoid) output gives p for class 1 and
1 - p for class 0. Raw 0..255 pixels are fed: train-images models rescale inside themselves.
A missing or unreadable model or image is a message naming the file and exit status 1.
"""
import sys

from cnnkit.cli.train_cifar10 import _positive

COLOR_MODES = {1: "grayscale", 3: "rgb", 4: "rgba"}


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "predict", help="classify images with a saved model",
        description="Print the most probable classes of each IMAGE under the saved MODEL "
                    "(class names from MODEL.classes.json, written by train-images).")
    parser.add_argument("model", metavar="MODEL", help="a model saved by model.save / train-images")
    parser.add_argument("images", metavar="IMAGE", nargs="+", help="image files to classify")
    parser.add_argument("--top", type=_positive, default=3, help="how many classes to print per image (default 3)")
    parser.set_defaults(run=run)
    return parser


def _error(message):
    print(f"error: {message}", file=sys.stderr)


def load_classifier(path):
    """(model, class names or None, (height, width), color mode); raises ValueError/OSError
    with a message naming the file."""
    from cnnkit.cli.train_images import load_class_names
    from cnnkit.models import load_model

    model = load_model(path, compile=False)
    input_shape, output_shape = tuple(model.input_shape), tuple(model.output_shape)
    if len(input_shape) != 4 or input_shape[3] not in COLOR_MODES or None in input_shape[1:3]:
        raise ValueError(f"{path}: the model takes inputs of shape {input_shape}, not images "
                         "(batch, height, width, 1, 3 or 4 channels) of a fixed size")
    if len(output_shape) != 2:
        raise ValueError(f"{path}: the model's output has shape {output_shape}, not (batch, classes)")
    units = output_shape[1]
    names = load_class_names(path)
    expected = 2 if units == 1 else units
    if names is not None and len(names) != expected:
        _error(f"{path}: its class names list {len(names)} classes but the model predicts "
               f"{expected}; printing class indices")
        names = None
    return model, names, input_shape[1:3], COLOR_MODES[input_shape[3]]


def class_probabilities(scores):
    """Per class probabilities of one image's output: a 1-unit output is p(class 1)."""
    import numpy as np

    scores = np.asarray(scores, dtype=np.float64).ravel()
    if scores.size == 1:
        return np.array([1.0 - scores[0], scores[0]])
    return scores


def run(args, parser):
    import numpy as np

    from cnnkit.utils import img_to_array, load_img

    try:
        model, names, size, color_mode = load_classifier(args.model)
    except (OSError, ValueError) as error:
        # cnnkit's loader names the file first; an OSError only names it at the end.
        _error(error if str(error).startswith(args.model) else f"cannot load the model {args.model}: {error}")
        return 1
    if names is None:
        _error(f"{args.model}: no class names (no {args.model}.classes.json); printing class indices")

    status = 0
    for path in args.images:
        try:
            image = img_to_array(load_img(path, color_mode=color_mode, target_size=size,
                                          interpolation="bilinear"))
        except ImportError as error:  # Pillow missing: the message says how to install it
            _error(error)
            return 1
        except Exception as error:  # Pillow raises many kinds for a damaged file
            _error(f"cannot read the image {path}: {type(error).__name__}: {error}")
            status = 1
            continue
        probabilities = class_probabilities(model.predict(image[np.newaxis], verbose=0)[0])
        order = np.argsort(-probabilities, kind="stable")[:args.top]
        print(f"{path}:")
        for index in order:
            label = names[index] if names is not None else f"class {index}"
            print(f"  {label}: {probabilities[index]:.4f}")
    return status
