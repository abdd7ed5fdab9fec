"""cnnkit's one file format, for model.save / load_model and save_weights / load_weights.

A file is a NumPy .npz archive (a zip) holding:
  config      a JSON string: {"format_version", "kind" ("model" or "weights"), "model" (the
              architecture: class_name, config), "layers" (every layer with weights, in order,
              with its class and weight shapes), "compile" (optimizer, loss, metrics),
              "optimizer_iterations", "state" (generators of shuffling and dropout)}
  weight_NNNN the weights, in Keras' order and shapes (model.get_weights())
  opt_NNNN    the optimizer's per-parameter arrays (Adam: m then v of each parameter)
Nothing is pickled. A file is written to a temporary file in the same directory, then moved
over the old one (os.replace), so a crash mid-save never destroys the previous file.
"""
import json
import os
import tempfile
import warnings

import numpy as np

from . import __version__, losses, metrics, optimizers

FORMAT_VERSION = 1


def _weight_layers(model):
    """Leaf layers holding weights, in get_weights() order (nested models flattened)."""
    for layer in model.layers:
        if hasattr(layer, "layers"):
            yield from _weight_layers(layer)
        elif layer.weights:
            yield layer


def _layer_table(model):
    return [{"name": l.name, "class_name": type(l).__name__,
             "shapes": [list(w.shape) for w in l.weights]} for l in _weight_layers(model)]


def _write(filepath, config, arrays, overwrite):
    path = os.fspath(filepath)
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path} exists and overwrite=False")
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, config=np.array(json.dumps(config)), **arrays)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a saved model is not
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read(filepath):
    path = os.fspath(filepath)
    try:
        with np.load(path, allow_pickle=False) as archive:
            config = json.loads(str(archive["config"]))
            arrays = {key: archive[key] for key in archive.files if key != "config"}
    except FileNotFoundError:
        raise
    except Exception as error:
        raise ValueError(f"{path} is not a cnnkit model or weights file ({error})") from None
    version = config.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(f"{path} has format_version {version!r}; this cnnkit ({__version__}) "
                         f"reads versions up to {FORMAT_VERSION}")
    weights = [arrays[f"weight_{i:04d}"] for i in range(len(arrays)) if f"weight_{i:04d}" in arrays]
    slots = [arrays[f"opt_{i:04d}"] for i in range(len(arrays)) if f"opt_{i:04d}" in arrays]
    return config, weights, slots


def _base_config(model, kind):
    if not model.built:
        raise ValueError(f'Model "{model.name}" has not been built yet, so it has no weights to '
                         "save: build it or fit it first")
    return {"format_version": FORMAT_VERSION, "kind": kind, "cnnkit_version": __version__,
            "model": {"class_name": type(model).__name__, "config": model.get_config()},
            "layers": _layer_table(model)}


def _weights_arrays(model):
    return {f"weight_{i:04d}": w for i, w in enumerate(model.weights)}


def save_weights(model, filepath, overwrite=True):
    _write(filepath, _base_config(model, "weights"), _weights_arrays(model), overwrite)


def save_model(model, filepath, overwrite=True, include_optimizer=True):
    config = _base_config(model, "model")
    arrays = _weights_arrays(model)
    config["state"] = model.get_state()
    if model.compiled:
        config["compile"] = {
            "optimizer": optimizers.serialize(model.optimizer),
            "loss": None if model.loss is None else losses.serialize(model.loss),
            "metrics": [m if isinstance(m, str) else getattr(m, "name", getattr(m, "__name__", None))
                        for m in model._metric_ids]}
        if include_optimizer:
            iterations, slots = model.optimizer.get_state()
            config["optimizer_iterations"] = iterations
            arrays.update({f"opt_{i:04d}": a for i, a in enumerate(slots)})
    _write(filepath, config, arrays, overwrite)


def _set_weights(model, config, weights, path):
    """Checks the file's layers against the model's (class and shapes, in order; names may
    differ) before touching any weight."""
    ours, theirs = _layer_table(model), config.get("layers", [])
    def describe(table):
        return ", ".join(f"{t['name']} ({t['class_name']}): "
                         f"{[tuple(s) for s in t['shapes']]}" for t in table) or "no weights"
    same = len(ours) == len(theirs) and all(
        a["class_name"] == b["class_name"] and a["shapes"] == b["shapes"] for a, b in zip(ours, theirs))
    if not same or len(weights) != len(model.weights):
        raise ValueError(f'Cannot load {path} into model "{model.name}": the file was saved from a '
                         f"different architecture.\n  file:  {describe(theirs)}\n  model: "
                         f"{describe(ours)}")
    model.set_weights(weights)


def load_weights(model, filepath):
    config, weights, _ = _read(filepath)
    if not model.built:
        shape = config["model"]["config"].get("build_input_shape")
        if shape is None:
            raise ValueError(f'Model "{model.name}" must be built before load_weights')
        model.build(tuple(shape))
    _set_weights(model, config, weights, os.fspath(filepath))


def load_model(filepath, custom_objects=None, compile=True, model_classes=None):
    config, weights, slots = _read(filepath)
    path = os.fspath(filepath)
    if config.get("kind") != "model":
        raise ValueError(f"{path} holds weights only (save_weights): build the model and call "
                         "model.load_weights() instead")
    spec = config["model"]
    cls = {**(model_classes or {}), **(custom_objects or {})}.get(spec["class_name"])
    if cls is None:
        raise ValueError(f"{path}: unknown model class {spec['class_name']!r}")
    model = cls.from_config(spec["config"], custom_objects)
    _set_weights(model, config, weights, path)
    model.set_state(config.get("state", {}))
    compiled = config.get("compile")
    if compile and compiled:
        known = [m for m in compiled["metrics"] if m in ("accuracy", "acc") or m in metrics.FUNCTIONS]
        if len(known) != len(compiled["metrics"]):
            warnings.warn(f"{path}: custom metrics are not restored: "
                          f"{[m for m in compiled['metrics'] if m not in known]}", stacklevel=2)
        model.compile(optimizer=optimizers.get(compiled["optimizer"]),
                      loss=None if compiled["loss"] is None else losses.get(compiled["loss"]),
                      metrics=known)
        if "optimizer_iterations" in config:
            model.optimizer.set_state(config["optimizer_iterations"], slots, model.trainable_weights)
    return model
