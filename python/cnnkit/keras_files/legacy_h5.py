"""The legacy .h5 model file (TF-Keras 2's `model.save('m.h5')`, which Keras 3 still writes
and reads), read only.

Its root holds the model's config as JSON (attribute model_config) and the compile settings
(training_config); the weights are in model_weights/<layer name>/, listed by the attributes
layer_names and weight_names, so this format matches weights to layers by name. A weights-only
file (save_weights('w.h5') in TF-Keras 2) has the same layout at its root. TF-Keras 2's configs
differ from Keras 3's in a few places, converted here: a functional model's inbound_nodes as
nested lists, InputLayer's batch_input_shape, BatchNormalization's axis as a list, LeakyReLU's
alpha.
"""
import json

import numpy as np

from . import configs


def _text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def is_legacy(h5):
    return "layer_names" in h5.attrs or "model_weights" in h5


def _names(attrs, key):
    return [_text(n) for n in attrs.get(key, [])]


def _history(item):
    """TF-Keras 2's [layer, node, tensor, kwargs] -> Keras 3's keras tensor reference."""
    return {"class_name": "__keras_tensor__", "config": {"keras_history": list(item[:3])}}


def _keras2_node(node):
    """A TF-Keras 2 inbound node (a list of [layer, node, tensor, kwargs]) -> Keras 3's."""
    if isinstance(node, dict):
        return node
    tensors = [_history(item) for item in node]
    kwargs = node[0][3] if node and len(node[0]) > 3 and isinstance(node[0][3], dict) else {}
    args = tensors if len(tensors) == 1 else [tensors]
    return {"args": args, "kwargs": kwargs}


def _keras2_layer(entry):
    """TF-Keras 2's spellings in one layer entry -> Keras 3's."""
    config = dict(entry.get("config") or {})
    class_name = entry.get("class_name")
    if class_name == "InputLayer" and "batch_input_shape" in config:
        config["batch_shape"] = config.pop("batch_input_shape")
    if class_name == "BatchNormalization" and isinstance(config.get("axis"), list):
        axis = config["axis"]
        config["axis"] = axis[0] if len(axis) == 1 else axis
    if class_name == "LeakyReLU" and "alpha" in config:
        config["negative_slope"] = config.pop("alpha")
    if class_name in configs._MODEL_CLASSES:
        config = keras2_model_config(config)
    out = {**entry, "config": config}
    if "inbound_nodes" in entry:
        out["inbound_nodes"] = [_keras2_node(n) for n in entry["inbound_nodes"]]
    return out


def keras2_model_config(config):
    out = dict(config)
    out["layers"] = [_keras2_layer(e) for e in config.get("layers", [])]
    for key in ("input_layers", "output_layers"):
        value = out.get(key)
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
            out[key] = value[0]
    return out


def read_weights(group, model, path):
    """The arrays of model.weights from a legacy layout (group: the file's root for a weights
    file, or its model_weights): matched to the model's leaf layers by name, as TF-Keras 2
    matched them; every missing layer or wrong shape is a ValueError naming it."""
    if "model_weights" in group and "layer_names" not in group.attrs:
        group = group["model_weights"]
    stored = {name: _names(group[name].attrs, "weight_names")
              for name in _names(group.attrs, "layer_names") if name in group}
    arrays = []
    for layer in model._flat_layers():
        if not layer.weights:
            continue
        names = stored.get(layer.name)
        if names is None:
            raise ValueError(f"{path}: the file has no weights for layer {layer.name!r} "
                             f"({type(layer).__name__}); it holds {sorted(stored)}")
        if len(names) != len(layer.weights):
            raise ValueError(f"{path}: layer {layer.name!r} ({type(layer).__name__}) has "
                             f"{len(layer.weights)} weights, the file holds {len(names)}")
        for name, weight in zip(names, layer.weights):
            array = np.asarray(group[layer.name][name])
            if array.shape != tuple(weight.shape):
                raise ValueError(f"{path}: weight {name!r} of layer {layer.name!r} has shape "
                                 f"{array.shape} in the file, the model's is "
                                 f"{tuple(weight.shape)}")
            arrays.append(array)
    return arrays


def _compile_config(training_config):
    """TF-Keras 2's training_config -> Keras 3's compile_config."""
    if not isinstance(training_config, dict):
        return None
    optimizer = training_config.get("optimizer_config")
    if not optimizer:
        return None
    return {"optimizer": optimizer, "loss": training_config.get("loss"),
            "loss_weights": training_config.get("loss_weights"),
            "metrics": training_config.get("metrics"),
            "weighted_metrics": training_config.get("weighted_metrics")}


def load_model(path, custom_objects=None, compile=True, model_classes=None):
    from .. import saving
    from . import cnnkit_config_from_keras
    from .weights_h5 import open_h5
    with open_h5(path, path) as h5:
        if "model_config" not in h5.attrs:
            raise ValueError(f"{path} holds weights only (no model config): build the model "
                             "and call model.load_weights() instead")
        try:
            spec = json.loads(_text(h5.attrs["model_config"]))
            training = h5.attrs.get("training_config")
            training = None if training is None else json.loads(_text(training))
        except ValueError as error:
            raise ValueError(f"{path}: the model config in this file is damaged ({error})") from None
        if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
            raise ValueError(f"{path}: the model config in this file is damaged")
        spec = {**spec, "config": keras2_model_config(spec["config"]),
                "compile_config": _compile_config(training)}
        config = cnnkit_config_from_keras(spec, path, custom_objects)
        return saving.restore_model(config, path, lambda model: read_weights(h5, model, path),
                                    [], custom_objects=custom_objects, compile=compile,
                                    model_classes=model_classes)
