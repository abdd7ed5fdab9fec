"""cnnkit's one file format, for model.save / load_model and save_weights / load_weights.

A file is a NumPy .npz archive (a zip) holding:
  config      a JSON string: {"format_version", "kind" ("model" or "weights"), "model" (the
              architecture: class_name, config), "layers" (every layer with weights, in order,
              with its class and weight shapes), "compile" (optimizer, loss, metrics),
              "optimizer_iterations", "state" (generators of shuffling and dropout)}
  weight_NNNN the weights, in Keras' order and shapes (model.get_weights())
  opt_NNNN    the optimizer's per-parameter arrays (Adam: m then v of each parameter, then its
              moving average with use_ema); a schedule is saved in the optimizer's config
Nothing is pickled. A file is written to a temporary file in the same directory, then moved
over the old one (os.replace), so a crash mid-save never destroys the previous file.
"""
import json
import os
import tempfile
import warnings
import zipfile

import numpy as np

from . import __version__, losses, metrics, optimizers

FORMAT_VERSION = 1


def _weight_layers(model):
    """Leaf layers holding weights, in get_weights() order (nested models flattened)."""
    return [layer for layer in model._flat_layers() if layer.weights]


def _layer_table(model):
    return [{"name": l.name, "class_name": type(l).__name__,
             "shapes": [list(w.shape) for w in l.weights]} for l in _weight_layers(model)]


def atomic_write(filepath, overwrite, write):
    """Calls write(f) on a temporary file in the destination's directory, then moves it over
    the destination (os.replace), so a crash mid-save never leaves a damaged or half file."""
    path = os.fspath(filepath)
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path} exists and overwrite=False")
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
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


def _write(filepath, config, arrays, overwrite):
    atomic_write(filepath, overwrite,
                 lambda f: np.savez(f, config=np.array(json.dumps(config)), **arrays))


def _read(filepath):
    """(config, weights, optimizer slots) of a cnnkit file; anything else - truncated,
    corrupted, another program's .npz, a newer format - is a ValueError naming the file."""
    path = os.fspath(filepath)
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not hasattr(archive, "files") or "config" not in archive.files:
                raise ValueError("it holds no cnnkit config")
            config = json.loads(str(archive["config"]))
            arrays = {key: archive[key] for key in archive.files if key != "config"}
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as error:  # zipfile, zlib, json, numpy: a damaged or foreign file
        raise ValueError(f"{path} is not a cnnkit model or weights file, or it is damaged "
                         f"({type(error).__name__}: {error})") from None
    _check_config(config, path)
    weights = _numbered(arrays, "weight", path)
    slots = _numbered(arrays, "opt", path)
    if len(weights) + len(slots) != len(arrays):
        extra = sorted(set(arrays) - {f"weight_{i:04d}" for i in range(len(weights))}
                       - {f"opt_{i:04d}" for i in range(len(slots))})
        raise ValueError(f"{path} holds arrays a cnnkit file does not: {extra[:5]}")
    return config, weights, slots


def _check_config(config, path):
    version = config.get("format_version") if isinstance(config, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"{path} is not a cnnkit model or weights file (no format_version)")
    if version > FORMAT_VERSION or version < 1:
        raise ValueError(f"{path} has format_version {version!r}; this cnnkit ({__version__}) "
                         f"reads versions 1 to {FORMAT_VERSION}")
    model = config.get("model")
    if (config.get("kind") not in ("model", "weights") or not isinstance(model, dict)
            or not isinstance(model.get("class_name"), str)
            or not isinstance(model.get("config"), dict)
            or not isinstance(config.get("layers"), list)):
        raise ValueError(f"{path}: the file's config is damaged (kind, model or layers missing)")


def _numbered(arrays, prefix, path):
    """arrays prefix_0000, prefix_0001, ... in order, each a real float array. Byte order is
    the file's own (np.load keeps it): set_weights converts, so a file written on a machine of
    the other endianness loads the same values."""
    found = []
    while f"{prefix}_{len(found):04d}" in arrays:
        array = arrays[f"{prefix}_{len(found):04d}"]
        if array.dtype.kind != "f":
            raise ValueError(f"{path}: {prefix}_{len(found):04d} has dtype {array.dtype}, "
                             "expected floating-point values")
        found.append(array)
    return found


def _base_config(model, kind):
    if not model.built:
        raise ValueError(f'Model "{model.name}" has not been built yet, so it has no weights to '
                         "save: build it or fit it first")
    return {"format_version": FORMAT_VERSION, "kind": kind, "cnnkit_version": __version__,
            "model": {"class_name": type(model).__name__, "config": model.get_config()},
            "build_shapes": [list(s) for s in model._build_shapes],
            "layers": _layer_table(model)}


def _weights_arrays(model):
    return {f"weight_{i:04d}": w for i, w in enumerate(model.weights)}


def _other_rank(model):
    """Whether this process is a distributed model's rank other than 0, which writes no file
    (cnnkit.distribute: rank 0 saves for all)."""
    from .distribute import training
    parallel = training.begin(model) if hasattr(model, "_distribution") else None
    return parallel is not None and not parallel.chief


def _keras_name(filepath, suffixes):
    return os.fspath(filepath).lower().endswith(suffixes)


def save_weights(model, filepath, overwrite=True):
    """cnnkit's format, or Keras 3's weights file for a name ending in .weights.h5."""
    if _other_rank(model):
        return
    if _keras_name(filepath, (".h5", ".hdf5")):
        from . import keras_files
        return keras_files.save_weights(model, filepath, overwrite=overwrite)
    _write(filepath, _base_config(model, "weights"), _weights_arrays(model), overwrite)


def save_model(model, filepath, overwrite=True, include_optimizer=True, format=None):
    """cnnkit's format, or a Keras 3 archive for a name ending in .keras (format="cnnkit"
    writes cnnkit's whatever the name)."""
    if _other_rank(model):
        return
    if format is None and _keras_name(filepath, (".keras",)):
        from . import keras_files
        return keras_files.save_model(model, filepath, overwrite=overwrite,
                                      include_optimizer=include_optimizer)
    if format is None and _keras_name(filepath, (".h5", ".hdf5")):
        raise ValueError(f"{os.fspath(filepath)}: cnnkit writes Keras 3's .keras archive, not "
                         "the legacy .h5 model format (Keras 3 deprecates it too); save to a "
                         "name ending in .keras")
    config = model_config(model)
    arrays = _weights_arrays(model)
    if model.compiled and include_optimizer:
        iterations, slots = model.optimizer.get_state()
        config["optimizer_iterations"] = iterations
        arrays.update({f"opt_{i:04d}": a for i, a in enumerate(slots)})
    _write(filepath, config, arrays, overwrite)


def model_config(model):
    """A model's whole cnnkit config: architecture, layers table, state and compile settings."""
    config = _base_config(model, "model")
    config["state"] = model.get_state()
    if model.compiled:
        config["compile"] = {
            "optimizer": optimizers.serialize(model.optimizer),
            "loss": _nested(model.loss, losses.serialize),
            "loss_weights": model._loss_weights,
            "metrics": _nested(model._metric_ids, _metric_entry),
            "weighted_metrics": _nested(model._weighted_metric_ids, _metric_entry)}
    return config


def _set_weights(model, config, weights, path):
    """Checks the file's layers against the model's (class and shapes, in order; names may
    differ) before touching any weight. A config without a table (a Keras file's, whose
    weights were found by their place in it) is checked by that reader instead."""
    if "layers" not in config:
        model.set_weights(weights)
        return
    ours, theirs = _layer_table(model), config.get("layers", [])
    if not all(isinstance(t, dict) and {"name", "class_name", "shapes"} <= set(t) for t in theirs):
        raise ValueError(f"{path}: the file's table of layers is damaged")

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


def _nested(value, fn):
    """A loss or metric, or a list or dict of them, with each leaf serialized by fn."""
    if value is None:
        return None
    if isinstance(value, dict) and "class_name" not in value:  # by output name
        return {k: _nested(v, fn) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nested(v, fn) for v in value]
    return fn(value)


def _metric_entry(metric):
    """A compile metric as the file keeps it: a name as it is; a cnnkit metric object as its
    class and config (thresholds and all); a class or function by its name."""
    if isinstance(metric, str):
        return metric
    if isinstance(metric, metrics.Metric) and type(metric).__name__ in metrics._ALL_CLASSES:
        try:
            return metrics.serialize(metric)
        except (TypeError, NotImplementedError):
            pass
    return getattr(metric, "name", getattr(metric, "__name__", None))


def _build_from_file(model, config):
    """Builds an unbuilt model for the input shapes the file was saved with."""
    shapes = config.get("build_shapes")
    if shapes is None:  # files written before build_shapes: a Sequential's own record
        shape = config["model"]["config"].get("build_input_shape")
        shapes = None if shape is None else [shape]
    if not shapes:
        raise ValueError(f'Model "{model.name}" must be built before load_weights')
    shapes = [tuple(s) for s in shapes]
    model.build(shapes[0] if len(shapes) == 1 else shapes)


def load_weights(model, filepath):
    if file_kind(filepath) != "cnnkit":
        from . import keras_files
        return keras_files.load_weights(model, filepath)
    config, weights, _ = _read(filepath)
    if not model.built:
        _build_from_file(model, config)
    _set_weights(model, config, weights, os.fspath(filepath))


def file_kind(filepath):
    """"keras" (a .keras archive), "h5" (an HDF5 file: Keras weights or a legacy model) or
    "cnnkit", from the file's first bytes, whatever its name: a cnnkit file is a zip too, but
    holds config.npy, not config.json. A missing file raises FileNotFoundError here."""
    path = os.fspath(filepath)
    with open(path, "rb") as f:
        head = f.read(8)
    if head == b"\x89HDF\r\n\x1a\n":
        return "h5"
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as archive:
                if "config.json" in archive.namelist():
                    return "keras"
        except (zipfile.BadZipFile, OSError, ValueError):
            # a damaged zip: reported by the reader its name asks for
            return "keras" if path.lower().endswith(".keras") else "cnnkit"
    return "cnnkit"


def load_model(filepath, custom_objects=None, compile=True, model_classes=None):
    kind = file_kind(filepath)
    if kind != "cnnkit":
        from . import keras_files
        return keras_files.load_model(filepath, kind, custom_objects=custom_objects,
                                      compile=compile, model_classes=model_classes)
    config, weights, slots = _read(filepath)
    return restore_model(config, os.fspath(filepath), lambda model: weights, slots,
                         custom_objects=custom_objects, compile=compile,
                         model_classes=model_classes)


def restore_model(config, path, weights_for, slots, custom_objects=None, compile=True,
                  model_classes=None, restore_optimizer=None):
    """The model of a cnnkit config (saving's own files, or the cnnkit part of a .keras archive
    cnnkit wrote): rebuilt from its class, its weights (weights_for(model) -> the arrays of
    model.weights) and state set, compiled as saved, the optimizer's state restored (slots, or
    restore_optimizer(model) for a file that keeps it in its own layout)."""
    if config.get("kind") != "model":
        raise ValueError(f"{path} holds weights only (save_weights): build the model and call "
                         "model.load_weights() instead")
    spec = config["model"]
    cls = {**(model_classes or {}), **(custom_objects or {})}.get(spec["class_name"])
    if cls is None:
        raise ValueError(
            f"{path} holds a model of class {spec['class_name']!r}, which cnnkit does not know: "
            f"a subclassed model is rebuilt from its own class, so pass it as "
            f"load_model(path, custom_objects={{{spec['class_name']!r}: {spec['class_name']}}}) "
            "(with a get_config() giving its __init__ arguments, as in Keras), or make the "
            "model again and call load_weights(path)")
    try:
        model = cls.from_config(spec["config"], custom_objects)
        if not model.built:
            _build_from_file(model, config)
        _set_weights(model, config, weights_for(model), path)
        model.set_state(config.get("state") or {})
        compiled = config.get("compile")
        if compile and compiled:
            _restore_compile(model, config, compiled, slots, path)
            if restore_optimizer is not None:
                restore_optimizer(model)
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as error:
        if isinstance(error, ValueError) and str(error).startswith(("Cannot load", path)):
            raise
        raise ValueError(f"{path}: the model in this file cannot be rebuilt; the file is damaged "
                         f"or was written by other software ({type(error).__name__}: {error})") from None
    return model


def _restorable(entry):
    """Whether a saved metric entry (a name or a serialized cnnkit metric) makes a metric."""
    try:
        metrics.get(entry)
    except (ValueError, TypeError, KeyError):
        return False
    return True


def _known_metrics(value, dropped):
    if isinstance(value, dict) and "class_name" not in value:  # by output name
        return {k: _known_metrics(v, dropped) for k, v in value.items()}
    if isinstance(value, list) and any(isinstance(v, list) or (isinstance(v, dict) and
                                       "class_name" not in v) for v in value):
        return [_known_metrics(v, dropped) for v in value]
    if isinstance(value, list):
        known = [m for m in value if _restorable(m)]
        dropped.extend(m for m in value if m not in known)
        return known
    return value


def _restore_compile(model, config, compiled, slots, path):
    dropped = []
    known = _known_metrics(compiled.get("metrics"), dropped)
    weighted = _known_metrics(compiled.get("weighted_metrics"), dropped)
    if dropped:
        warnings.warn(f"{path}: custom metrics are not restored: {dropped}", stacklevel=3)
    model.compile(optimizer=optimizers.get(compiled["optimizer"]),
                  loss=_nested(compiled["loss"], losses.get),
                  loss_weights=compiled.get("loss_weights"), metrics=known,
                  weighted_metrics=weighted)
    if "optimizer_iterations" in config:
        model.optimizer.set_state(config["optimizer_iterations"], slots, model.trainable_weights)
