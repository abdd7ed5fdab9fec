"""Model configs between Keras 3's JSON (a .keras archive's config.json, a legacy .h5's
model_config) and cnnkit's.

cnnkit's configs already use Keras' class names and keys, so the two differ in little:
  Keras -> cnnkit  dtype policies become their names; the options Keras has and cnnkit lacks are
                   dropped where they hold their "off" value (quantization_config None,
                   data_format "channels_last", ...) and refused with the layer's name where
                   they do not, so a model never loads as a silently different one; a layer
                   class cnnkit lacks is refused before anything is built.
  cnnkit -> Keras  every object gets Keras' "module" and "registered_name", layers their
                   "build_config"; a Sequential starts with its InputLayer, as Keras 3 writes it.
"""
import inspect

from ..layers.base import _REGISTRY

# Keras options cnnkit's classes do not take, with the value at which they change nothing.
_NEUTRAL = {
    "quantization_config": None, "lora_rank": None, "lora_alpha": None, "data_format": None,
    "sparse": False, "ragged": False, "optional": False, "autocast": True,
    "synchronized": False, "renorm": False, "renorm_clipping": None, "renorm_momentum": 0.99,
    "input_axes": None, "output_axes": None, "shared_object_id": None, "dtype": None,
    "loss_scale_factor": None, "gradient_accumulation_steps": None, "rms_scaling": False,
}
_CHANNELS_LAST = ("channels_last", None)
_MODEL_CLASSES = ("Sequential", "Functional", "Model")
# Keys Keras 3's constructor of a class does not take although other layers do (its own
# get_config leaves them out), dropped where they hold their default.
_KERAS_LACKS = {"SpatialDropout2D": {"trainable": True}}
# The module Keras 3 names for each model class, in a file it writes.
_MODEL_MODULES = {"Sequential": "keras", "Functional": "keras.src.models.functional"}


class UnsupportedKeras(ValueError):
    """A Keras file holds something cnnkit does not have; the message names it."""


def _accepted(cls):
    """The keyword arguments cls's constructor chain takes (each __init__ up the MRO that
    passes **kwargs on)."""
    names = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names.update(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return names - {"self"}


def _is_neutral(key, value):
    if key == "data_format":
        return value in _CHANNELS_LAST
    return key in _NEUTRAL and value == _NEUTRAL[key]


def plain_object(value):
    """A Keras-serialized object without the keys cnnkit's deserializers do not read: its
    module and registered name, and (inside) options that are off. A dtype policy becomes its
    name."""
    if isinstance(value, list):
        return [plain_object(v) for v in value]
    if not isinstance(value, dict):
        return value
    if value.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and "config" in value:
        return value["config"].get("name")
    if "class_name" in value and "config" in value and value["class_name"] != "__keras_tensor__":
        inner = value["config"]
        if isinstance(inner, dict):
            inner = {k: plain_object(v) for k, v in inner.items() if not _is_neutral(k, v)}
        return {"class_name": value["class_name"], "config": inner}
    return {k: plain_object(v) for k, v in value.items()}


def layer_from_keras(entry, path, custom_objects=None):
    """A Keras layer entry ({"class_name", "config", "module", ...}) -> the same entry in
    cnnkit's form, checked: the class exists in cnnkit (or custom_objects) and every option it
    sets is one cnnkit has. Nested models are converted layer by layer."""
    class_name, config = entry.get("class_name"), entry.get("config")
    if not isinstance(class_name, str) or not isinstance(config, dict):
        raise ValueError(f"{path}: a layer entry of the model config is damaged: {entry!r:.200}")
    name = config.get("name", entry.get("name", "?"))
    if class_name in _MODEL_CLASSES:
        return {**entry, "config": model_config_from_keras(class_name, config, path,
                                                           custom_objects)}
    cls = (custom_objects or {}).get(class_name) or _REGISTRY.get(class_name)
    if cls is None or class_name.startswith("_"):
        module = entry.get("module") or "keras.layers"
        raise UnsupportedKeras(
            f"{path}: layer {name!r} is a {module}.{class_name}, which cnnkit does not have "
            "(pass a cnnkit class for it in custom_objects, or rebuild the model without it)")
    accepted = _accepted(cls)
    config = dict(config)
    extra = {}
    for key in list(config):
        # data_format too, where cnnkit takes it: channels_first is refused here, by name
        if key == "data_format" or key not in accepted:
            value = config.pop(key)
            if not _is_neutral(key, value):
                extra[key] = value
    if extra:
        options = ", ".join(f"{k}={v!r}" for k, v in extra.items())
        raise UnsupportedKeras(f"{path}: layer {name!r} ({class_name}) sets {options}, which "
                               "cnnkit's layer does not support")
    config = {k: plain_object(v) for k, v in config.items()}
    out = {"class_name": class_name, "config": config}
    for key in ("name", "inbound_nodes"):
        if key in entry:
            out[key] = entry[key]
    return out


def model_config_from_keras(class_name, config, path, custom_objects=None):
    """The config of a Keras Sequential or Functional -> cnnkit's config of the same class."""
    layers = config.get("layers")
    if not isinstance(layers, list):
        raise ValueError(f"{path}: the {class_name} config has no list of layers")
    out = {k: v for k, v in config.items() if k in ("name", "trainable", "input_layers",
                                                     "output_layers", "build_input_shape")}
    out["layers"] = [layer_from_keras(entry, path, custom_objects) for entry in layers]
    for entry in out["layers"]:
        for node in entry.get("inbound_nodes", []):
            kwargs = node.get("kwargs") or {}
            odd = {k: v for k, v in kwargs.items() if k != "training" and v is not None}
            if odd:
                raise UnsupportedKeras(f"{path}: layer {entry['config'].get('name')!r} is "
                                       f"called with {odd}, which cnnkit does not support")
    return out


def model_class_name(spec, path):
    name = spec.get("class_name") if isinstance(spec, dict) else None
    if name not in _MODEL_CLASSES:
        raise UnsupportedKeras(
            f"{path}: the model is a {name!r}; cnnkit reads Keras' Sequential and Functional "
            "models (a subclassed model's config holds only its own arguments: rebuild it in "
            "cnnkit and call load_weights)")
    return "Functional" if name == "Model" else name


# ------------------------------------------------------------------ cnnkit -> Keras

def keras_object(value, module=None):
    """cnnkit's {"class_name", "config"} objects in Keras' full form (module, registered
    name), recursively; module: the Keras module of objects that do not name theirs."""
    if isinstance(value, list):
        return [keras_object(v, module) for v in value]
    if not isinstance(value, dict):
        return value
    if "class_name" in value and "config" in value and value["class_name"] != "__keras_tensor__":
        inner = value["config"]
        if isinstance(inner, dict) and "learning_rate" in inner:
            inner = {**inner, "learning_rate": keras_object(inner["learning_rate"],
                                                            "keras.optimizers.schedules")}
        return {"module": value.get("module", module), "class_name": value["class_name"],
                "config": keras_object(inner, module),
                "registered_name": value.get("registered_name")}
    return {k: keras_object(v, module) for k, v in value.items()}


def layer_to_keras(layer, entry):
    """One layer's entry of a cnnkit model config -> Keras 3's, with module and build_config."""
    from ..engine.model import Model
    class_name = entry["class_name"]
    if isinstance(layer, Model):
        config = model_to_keras(layer)
        out = {**config, **{k: entry[k] for k in ("name", "inbound_nodes") if k in entry}}
        return out
    config = {k: keras_object(v) for k, v in entry["config"].items()}
    for key, default in _KERAS_LACKS.get(class_name, {}).items():
        if config.get(key, default) == default:
            config.pop(key, None)
    out = {"module": "keras.layers", "class_name": class_name, "config": config,
           "registered_name": None}
    if class_name != "InputLayer" and getattr(layer, "built", False):
        try:
            out["build_config"] = {"input_shape": _shape_list(layer.input_shape)}
        except (AttributeError, ValueError, TypeError):  # no single input shape: Keras rebuilds
            pass
    for key in ("name", "inbound_nodes"):
        if key in entry:
            out[key] = entry[key]
    return out


def _shape_list(shape):
    if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple)):
        return [_shape_list(s) for s in shape]
    return None if shape is None else list(shape)


def model_to_keras(model):
    """A cnnkit Sequential or Functional -> Keras 3's {"module", "class_name", "config",
    "registered_name", "build_config"} of it."""
    from ..engine.functional import Functional
    from ..engine.sequential import Sequential
    config = model.get_config()
    if type(model) not in (Sequential, Functional):
        # A subclassed model: as Keras writes one, its class and arguments; Keras rebuilds it
        # only where that class is registered (cnnkit, from custom_objects).
        cls = type(model)
        return {"module": cls.__module__, "class_name": cls.__name__,
                "config": keras_object(config), "registered_name": cls.__name__}
    class_name = type(model).__name__
    entries = config["layers"]
    by_name = {layer.name: layer for layer in model.layers}
    keras_layers = [layer_to_keras(by_name.get(e["config"].get("name", e.get("name"))), e)
                    for e in entries]
    out_config = {k: v for k, v in config.items() if k != "layers"}
    build = None
    if class_name == "Sequential":
        shape = out_config.pop("build_input_shape", None)
        if shape is not None:
            keras_layers.insert(0, {"module": "keras.layers", "class_name": "InputLayer",
                                    "config": {"batch_shape": list(shape), "dtype": "float32",
                                               "sparse": False, "ragged": False,
                                               "name": model._input_name or "input_layer"},
                                    "registered_name": None})
            out_config["build_input_shape"] = list(shape)
            build = {"input_shape": list(shape)}
    else:
        build = {"input_shape": None}
    out_config["layers"] = keras_layers
    out = {"module": _MODEL_MODULES[class_name], "class_name": class_name,
           "config": out_config,
           "registered_name": "Functional" if class_name == "Functional" else None}
    if build is not None:
        out["build_config"] = build
    return out
