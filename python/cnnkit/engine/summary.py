"""model.summary(): Keras' table of layers, output shapes and parameter counts, with the
"Connected to" column for a functional model (each input as layer[node][tensor])."""
from .._args import shape_str

__all__ = ["print_summary"]


def _size(count):
    size = count * 4.0
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.2f} {unit}"
        size /= 1024


def _rows(model):
    """(name (type), output shape, params, connected to) per layer; connected is None for a
    Sequential (Keras shows no such column there)."""
    from .sequential import Sequential
    graph = model._graph_for(False)
    functional = not isinstance(model, Sequential) and model._graph is not None
    if not functional:  # one row per layer of the stack (or per attribute of a subclass)
        shapes = {}
        for step in graph.steps:
            shapes.setdefault(id(step.layer), [t.shape for t in step.node.outputs])
        rows = []
        for layer in model.layers:
            out = shapes.get(id(layer))
            shape = "?" if out is None else ", ".join(shape_str(s) for s in out)
            rows.append((f"{layer.name} ({type(layer).__name__})", shape,
                         f"{layer.count_params():,}", None))
        return rows, False
    indices = model._node_indices()
    nodes_of = {}  # a layer called several times (shared) is one row, as in Keras
    for node in graph.all_nodes:
        nodes_of.setdefault(id(node.layer), []).append(node)
    rows = []
    for layer in graph.layers:
        nodes = nodes_of[id(layer)]
        connected = ", ".join(f"{t.node.layer.name}[{indices[id(t.node)]}][{t.index}]"
                              for node in nodes for t in node.inputs) or "-"
        shapes = {", ".join(shape_str(t.shape) for t in node.outputs) for node in nodes}
        shape = shapes.pop() if len(shapes) == 1 else "multiple"
        rows.append((f"{layer.name} ({type(layer).__name__})", shape,
                     f"{layer.count_params():,}", connected))
    return rows, True


def print_summary(model, line_length=None, print_fn=None):
    if not model.built:
        raise ValueError(f'Model "{model.name}" has not yet been built. Build the model first '
                         "by calling build() or by calling fit() with some data, or give the "
                         "first layer an input_shape argument.")
    print_fn = print_fn or print
    rows, connected = _rows(model)
    first = max([29] + [len(r[0]) + 2 for r in rows])
    second = max([26] + [len(r[1]) + 2 for r in rows])
    third = max([11] + [len(r[2]) + 2 for r in rows])
    width = line_length or first + second + third + (max([12] + [len(r[3]) for r in rows])
                                                     if connected else 0)

    def line(cells):
        text = f" {cells[0]:<{first - 1}}{cells[1]:<{second}}{cells[2]:<{third}}"
        if connected:
            text += cells[3]
        return text.rstrip().ljust(width)

    header = ("Layer (type)", "Output Shape", "Param #", "Connected to")
    print_fn(f'Model: "{model.name}"')
    print_fn("_" * width)
    print_fn(line(header))
    print_fn("=" * width)
    for i, row in enumerate(rows):
        print_fn(line(row))
        print_fn(("=" if i == len(rows) - 1 else "_" if connected else " ") * width)
    total = model.count_params()
    trainable = sum(w.size for w in model.trainable_weights)
    print_fn(f"Total params: {total:,} ({_size(total)})")
    print_fn(f"Trainable params: {trainable:,} ({_size(trainable)})")
    print_fn(f"Non-trainable params: {total - trainable:,} ({_size(total - trainable)})")
    print_fn("_" * width)
