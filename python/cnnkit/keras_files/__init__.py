"""Keras' model files, read and written by cnnkit (h5py needed, as in Keras).

  .keras       Keras 3's archive: config.json (the model, compile_config), metadata.json and
               model.weights.h5 (weights_h5.py). cnnkit reads Keras' and writes files Keras 3
               loads, predicts with and keeps training (the optimizer's state included). A file
               cnnkit writes also holds cnnkit.json, cnnkit's own config of the model (its
               random generators' state, options Keras lacks), which cnnkit reads back in place
               of config.json, so a cnnkit model comes back exactly.
  .weights.h5  Keras 3's weights alone (model.save_weights / load_weights).
  .h5          a legacy (TF-Keras 2 or Keras 3 "h5") model or weights file, read only
               (legacy_h5.py).

Nothing is loaded half-way: the config is checked (every layer class and option) and the model
built, and every weight's place and shape checked, before any weight is set.
"""
import datetime
import io
import json
import os
import zipfile

from .. import __version__
from . import configs, legacy_h5, optimizer_vars
from .configs import UnsupportedKeras
from .weights_h5 import (h5py_module, open_h5, read_layer_weights, read_optimizer_vars,
                         write_layer_weights, write_optimizer_vars)

__all__ = ["load_model", "save_model", "load_weights", "save_weights", "UnsupportedKeras"]

# The Keras release whose files these are checked against (tests/test_keras_files.py).
KERAS_FORMAT_VERSION = "3.15.1"
_MEMBERS = ("config.json", "model.weights.h5")


def _archive(path):
    """(zipfile, its member names) of a .keras file; damage is a ValueError naming it."""
    try:
        archive = zipfile.ZipFile(path)
        names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise ValueError(f"{path} is not a .keras archive, or it is damaged ({error})") from None
    missing = [m for m in _MEMBERS if m not in names]
    if missing:
        archive.close()
        raise ValueError(f"{path}: the .keras archive has no {' and no '.join(missing)}")
    return archive, names


def _json_member(archive, name, path):
    try:
        return json.loads(archive.read(name))
    except (ValueError, zipfile.BadZipFile, OSError, EOFError) as error:
        raise ValueError(f"{path}: {name} in the archive is damaged ({error})") from None


def _h5_member(archive, path):
    try:
        data = archive.read("model.weights.h5")
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise ValueError(f"{path}: model.weights.h5 in the archive is damaged ({error})") from None
    return open_h5(io.BytesIO(data), f"{path} (model.weights.h5)")


def _check_metadata(archive, names, path):
    if "metadata.json" not in names:
        return
    version = str(_json_member(archive, "metadata.json", path).get("keras_version", "3"))
    try:
        major = int(version.split(".")[0])
    except ValueError:
        major = 3
    if major > 3:
        raise ValueError(f"{path} was written by Keras {version}; cnnkit reads the files of "
                         f"Keras 3 (checked against {KERAS_FORMAT_VERSION})")


def keras_compile_to_cnnkit(compile_config):
    """Keras' compile_config -> the "compile" entry of cnnkit's config."""
    if not isinstance(compile_config, dict) or not compile_config.get("optimizer"):
        return None
    plain = configs.plain_object
    return {"optimizer": plain(compile_config["optimizer"]),
            "loss": plain(compile_config.get("loss")),
            "loss_weights": compile_config.get("loss_weights"),
            "metrics": plain(compile_config.get("metrics")),
            "weighted_metrics": plain(compile_config.get("weighted_metrics"))}


def cnnkit_config_from_keras(spec, path, custom_objects=None):
    """A Keras model's config.json -> cnnkit's config of the model (no layers table: the
    weights are found by their place in the file, weights_h5.py)."""
    class_name = configs.model_class_name(spec, path)
    if not isinstance(spec.get("config"), dict):
        raise ValueError(f"{path}: the model config is damaged (no config)")
    model = configs.model_config_from_keras(class_name, spec["config"], path, custom_objects)
    config = {"kind": "model", "model": {"class_name": class_name, "config": model}}
    compiled = keras_compile_to_cnnkit(spec.get("compile_config"))
    if compiled:
        config["compile"] = compiled
    return config


def load_model(filepath, kind, custom_objects=None, compile=True, model_classes=None):
    from .. import saving
    path = os.fspath(filepath)
    if kind == "h5":
        return legacy_h5.load_model(path, custom_objects=custom_objects, compile=compile,
                                    model_classes=model_classes)
    archive, names = _archive(path)
    with archive:
        _check_metadata(archive, names, path)
        if "cnnkit.json" in names:
            config = _json_member(archive, "cnnkit.json", path)
            saving._check_config(config, path)
        else:
            config = cnnkit_config_from_keras(_json_member(archive, "config.json", path), path,
                                              custom_objects)
        with _h5_member(archive, path) as h5:
            def weights_for(model):
                return read_layer_weights(h5, model, path)

            def restore_optimizer(model):
                arrays = read_optimizer_vars(h5)
                if arrays:
                    optimizer_vars.from_keras(model.optimizer, arrays,
                                              model.trainable_weights, path)
            return saving.restore_model(config, path, weights_for, [],
                                        custom_objects=custom_objects, compile=compile,
                                        model_classes=model_classes,
                                        restore_optimizer=restore_optimizer)


def load_weights(model, filepath):
    """Keras 3 weights (a .weights.h5 or the weights of a .keras archive) or a legacy .h5's
    into a built model; nothing is set unless every weight is found with its shape."""
    from .. import saving
    path = os.fspath(filepath)
    if not model.built:
        raise ValueError(f'Model "{model.name}" must be built before load_weights({path!r}): '
                         "call it on data or build(input_shape) first")
    if saving.file_kind(path) == "keras":
        archive, _ = _archive(path)
        with archive, _h5_member(archive, path) as h5:
            arrays = read_layer_weights(h5, model, path)
    else:
        with open_h5(path, path) as h5:
            if legacy_h5.is_legacy(h5):
                arrays = legacy_h5.read_weights(h5, model, path)
            else:
                arrays = read_layer_weights(h5, model, path)
    model.set_weights(arrays)


def _h5_bytes(fill):
    buffer = io.BytesIO()
    with h5py_module().File(buffer, "w") as h5:
        fill(h5)
    return buffer.getvalue()


def save_weights(model, filepath, overwrite=True):
    from .. import saving
    path = os.fspath(filepath)
    if not path.endswith(".weights.h5"):
        raise ValueError(f"{path}: the filename must end in `.weights.h5` (Keras 3's weights "
                         "file); cnnkit's own format takes any other name")
    if not model.built:
        raise ValueError(f'Model "{model.name}" has not been built yet, so it has no weights to '
                         "save: build it or fit it first")
    data = _h5_bytes(lambda h5: write_layer_weights(h5, model))
    saving.atomic_write(path, overwrite, lambda f: f.write(data))


def _keras_compile_config(cnnkit_compile):
    objects = configs.keras_object
    return {"optimizer": objects(cnnkit_compile["optimizer"], "keras.optimizers"),
            "loss": objects(cnnkit_compile["loss"], "keras.losses"),
            "loss_weights": cnnkit_compile.get("loss_weights"),
            "metrics": objects(cnnkit_compile.get("metrics"), "keras.metrics"),
            "weighted_metrics": objects(cnnkit_compile.get("weighted_metrics"), "keras.metrics"),
            "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False}


def save_model(model, filepath, overwrite=True, include_optimizer=True):
    """A .keras archive Keras 3 loads (a Sequential or functional model of layers Keras has),
    with cnnkit.json beside for cnnkit's exact reload."""
    from .. import saving
    path = os.fspath(filepath)
    own = saving.model_config(model)  # checks that the model is built
    keras_config = configs.model_to_keras(model)
    if own.get("compile"):
        keras_config["compile_config"] = _keras_compile_config(own["compile"])

    def fill(h5):
        write_layer_weights(h5, model)
        if model.compiled and include_optimizer:
            arrays = optimizer_vars.to_keras(model.optimizer, model.trainable_weights)
            write_optimizer_vars(h5, model.optimizer.name, arrays)
    weights = _h5_bytes(fill)
    metadata = {"keras_version": KERAS_FORMAT_VERSION, "cnnkit_version": __version__,
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}

    def write(f):
        with zipfile.ZipFile(f, "w") as archive:
            archive.writestr("metadata.json", json.dumps(metadata))
            archive.writestr("config.json", json.dumps(keras_config))
            archive.writestr("model.weights.h5", weights)
            archive.writestr("cnnkit.json", json.dumps(own))
    saving.atomic_write(path, overwrite, write)
