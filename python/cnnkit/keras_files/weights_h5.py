"""Keras 3's weights file (model.weights.h5 in a .keras archive, or x.weights.h5 alone).

Its layout is by position, not by the layers' names: each layer's variables are at
layers/<key>/vars/0, 1, ... where <key> is the layer's class in snake case, numbered _1, _2, ...
among the model's layers of the same class, in the order of model.layers (a Sequential's
InputLayer is not among them, a functional model's are). A nested model is a layer whose own
layers continue the path: layers/sequential/layers/conv2d/vars/0. The optimizer's variables
are at optimizer/vars/0, 1, ... (optimizer_vars.py). Names are therefore free to differ between
the file and the model: a model built again in cnnkit or in Keras finds its weights.
"""
import numpy as np

from .._naming import snake_case


def h5py_module():
    try:
        import h5py
    except ImportError:
        raise ImportError("Reading and writing Keras files needs h5py: pip install h5py") from None
    return h5py


def layer_keys(class_names):
    """The file key of each layer of one model, given their class names in model.layers order."""
    used, keys = {}, []
    for class_name in class_names:
        base = snake_case(class_name)
        if base in used:
            used[base] += 1
            keys.append(f"{base}_{used[base]}")
        else:
            used[base] = 0
            keys.append(base)
    return keys


def _listed_layers(model):
    """model.layers as Keras lists them: without a Sequential's InputLayer."""
    from ..engine.sequential import Sequential
    from ..layers.core import InputLayer
    layers = list(model.layers)
    if isinstance(model, Sequential):
        layers = [l for l in layers if not isinstance(l, InputLayer)]
    return layers


def weight_paths(model, prefix=""):
    """[(layer, "layers/<key>")] for every leaf layer of the model, nested models walked."""
    from ..engine.model import Model
    layers = _listed_layers(model)
    out = []
    for layer, key in zip(layers, layer_keys(type(l).__name__ for l in layers)):
        path = f"{prefix}layers/{key}"
        if isinstance(layer, Model):
            out += weight_paths(layer, path + "/")
        else:
            out.append((layer, path))
    return out


def read_layer_weights(group, model, path):
    """The arrays of model.weights, read from an open h5 group laid out as above; every
    mismatch (a missing layer, a count or a shape) is a ValueError naming the layer and path,
    raised before the model is touched."""
    arrays, seen = [], set()
    for layer, key in weight_paths(model):
        if id(layer) in seen or not layer.weights:
            continue
        seen.add(id(layer))
        vars_group = group.get(f"{key}/vars")
        stored = 0 if vars_group is None else len(vars_group)
        if stored != len(layer.weights):
            raise ValueError(f"{path}: layer {layer.name!r} ({type(layer).__name__}) has "
                             f"{len(layer.weights)} weights, the file holds {stored} at {key}")
        for i, weight in enumerate(layer.weights):
            array = np.asarray(vars_group[str(i)])
            if array.shape != tuple(weight.shape):
                raise ValueError(f"{path}: weight {i} of layer {layer.name!r} "
                                 f"({type(layer).__name__}) has shape {tuple(weight.shape)}, "
                                 f"the file's ({key}/vars/{i}) is {array.shape}")
            if array.dtype.kind != "f":
                raise ValueError(f"{path}: {key}/vars/{i} holds {array.dtype}, not floats")
            arrays.append(array)
    return arrays


def write_layer_weights(group, model):
    """Every layer's group (weights or not, as Keras writes them) with its variables."""
    from ..engine.model import Model
    layers = _listed_layers(model)
    group.create_group("vars").attrs["name"] = model.name
    layers_group = group.create_group("layers")
    for layer, key in zip(layers, layer_keys(type(l).__name__ for l in layers)):
        sub = layers_group.create_group(key)
        if isinstance(layer, Model):
            write_layer_weights(sub, layer)
            continue
        vars_group = sub.create_group("vars")
        vars_group.attrs["name"] = layer.name
        for i, weight in enumerate(layer.weights):
            vars_group.create_dataset(str(i), data=np.asarray(weight, np.float32))


def read_optimizer_vars(group):
    """optimizer/vars/0, 1, ... as a list of arrays (empty when the file has none)."""
    vars_group = group.get("optimizer/vars")
    if vars_group is None:
        return []
    count = len(vars_group)
    if set(vars_group) != {str(i) for i in range(count)}:
        raise ValueError("the optimizer's variables are not numbered 0..n-1")
    return [np.asarray(vars_group[str(i)]) for i in range(count)]


def write_optimizer_vars(group, name, arrays):
    vars_group = group.create_group("optimizer").create_group("vars")
    vars_group.attrs["name"] = name
    for i, array in enumerate(arrays):
        vars_group.create_dataset(str(i), data=array)


def open_h5(source, path):
    """An h5py File, read-only, over a path or a file object; a file that is not HDF5 is a
    ValueError naming it (path)."""
    h5py = h5py_module()
    try:
        return h5py.File(source, "r")
    except OSError as error:
        raise ValueError(f"{path} is not an HDF5 file, or it is damaged ({error})") from None
