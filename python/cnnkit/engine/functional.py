"""Functional: the model Model(inputs, outputs) returns, and its config.

The config is Keras 3's: every layer with its class, config and the inbound nodes of its calls
in this model (each argument a "__keras_tensor__" with its keras_history: the layer, the index
of that layer's node in this model, the output index), and the input and output layers as
[name, node, tensor] triples. from_config calls the layers again in the same order, so the
rebuilt model has the same graph, the same layers order and the same weights order.
"""
from ..layers.base import get_layer_class
from .model import Model
from .symbolic import input_tensor

__all__ = ["Functional"]


class Functional(Model):
    def __init__(self, inputs, outputs, name=None, trainable=True, **kwargs):
        Model.__init__(self, inputs=inputs, outputs=outputs, name=name, trainable=trainable,
                       **kwargs)

    def _node_indices(self):
        """Each node's index among its layer's calls in this model (a layer may also be
        called in other models, whose nodes do not count)."""
        graph, indices, counts = self._graph, {}, {}
        for node in graph.all_nodes:
            layer = node.layer
            if id(node) not in indices:
                indices[id(node)] = counts.get(id(layer), 0)
                counts[id(layer)] = counts.get(id(layer), 0) + 1
        return indices

    def get_config(self):
        graph, indices = self._graph, self._node_indices()

        def history(tensor):
            return {"class_name": "__keras_tensor__",
                    "config": {"shape": list(tensor.shape), "dtype": "float32",
                               "keras_history": [tensor.node.layer.name, indices[id(tensor.node)],
                                                 tensor.index]}}

        entries, by_layer = [], {}
        for node in graph.all_nodes:
            layer = node.layer
            entry = by_layer.get(id(layer))
            if entry is None:
                entry = by_layer[id(layer)] = {
                    "class_name": type(layer).__name__, "name": layer.name,
                    "config": layer.get_config(), "inbound_nodes": []}
                entries.append(entry)
            if node.inputs:
                args = [history(t) for t in node.inputs]
                kwargs = {} if node.training is None else {"training": node.training}
                entry["inbound_nodes"].append({"args": [args] if node.packed else args,
                                               "kwargs": kwargs})

        def triple(tensor):
            return [tensor.node.layer.name, indices[id(tensor.node)], tensor.index]

        config = {"name": self.name, "trainable": self.trainable, "layers": entries,
                  "input_layers": [triple(t) for t in graph.inputs],
                  "output_layers": [triple(t) for t in graph.outputs]}
        if isinstance(self._output_structure, tuple):
            config["output_layers"] = dict(zip(self._output_structure[1], config["output_layers"]))
        if self._input_structure == "single":
            config["input_layers"] = config["input_layers"][0]
        if self._output_structure == "single":
            config["output_layers"] = config["output_layers"][0]
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        layers, outputs_of = {}, {}  # name -> layer; (name, node index) -> output tensors
        pending = []
        for entry in config["layers"]:
            layer_cls = get_layer_class(entry["class_name"], custom_objects)
            if issubclass(layer_cls, Model):
                layer = layer_cls.from_config(entry["config"], custom_objects)
            else:
                layer = layer_cls.from_config(entry["config"])
            name = entry.get("name", layer.name)
            if name in layers:
                raise ValueError(f"Functional config: two layers are named {name!r}")
            layers[name] = layer
            if entry["class_name"] == "InputLayer":
                outputs_of[(name, 0)] = [input_tensor(layer)]
            for node in entry.get("inbound_nodes", []):
                pending.append((name, node))

        def history(h):
            """[layer name, node index, tensor index] of one argument, or None for a list."""
            if isinstance(h, dict):
                return h["config"]["keras_history"]
            if isinstance(h, list) and len(h) == 3 and isinstance(h[0], str):
                return h
            return None

        def tensor(h):
            name, node_index, index = history(h)
            return outputs_of[(name, node_index)][index]

        def ready(h):
            hist = history(h)
            if hist is None:
                return all(ready(x) for x in h)
            return (hist[0], hist[1]) in outputs_of

        calls = {}
        while pending:  # call each layer once its inputs exist, in the stored order
            progress = False
            for item in list(pending):
                name, node = item
                args = node["args"]
                if not all(ready(a) for a in args):
                    continue
                arg = args[0]
                inputs = tensor(arg) if history(arg) is not None else [tensor(h) for h in arg]
                training = node.get("kwargs", {}).get("training")
                out = layers[name](inputs, training=training)
                index = calls.get(name, 0)
                calls[name] = index + 1
                outputs_of[(name, index)] = out if isinstance(out, list) else (
                    list(out.values()) if isinstance(out, dict) else [out])
                pending.remove(item)
                progress = True
            if not progress:
                raise ValueError("Functional config: the layers' inbound nodes refer to "
                                 "tensors that no layer makes")

        def unpack(spec):
            if isinstance(spec, dict):
                return {k: unpack(v) for k, v in spec.items()}
            if history(spec) is None:
                return [tensor(s) for s in spec]
            return tensor(spec)

        return cls(unpack(config["input_layers"]), unpack(config["output_layers"]),
                   name=config.get("name"), trainable=config.get("trainable", True))
