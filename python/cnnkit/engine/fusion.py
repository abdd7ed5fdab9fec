"""ReLU fusion: a plain ReLU right after a BatchNormalization or an Add runs inside it, in
training and in inference.

A separate ReLU is a full extra read and write of its input forward and of its gradient backward
(ResNet-20: 19 of them per step). Fused, the producer applies max(., 0) as it stores its output,
and its backward masks the gradient where that output is <= 0 inside its own passes. The graph
then skips the ReLU step: its output is the producer's, and the gradient reaching it is handed
to the producer unchanged.

A pair fuses when the producer is exactly a BatchNormalization or an Add (a subclass may compute
something else), the ReLU step's layer is a plain ReLU (engine/folding.py's _plain_relu), that
step is the only reader of the producer's output by a plain single-input call, the producer's
output is not a model output, and neither layer has an activity regularizer (it would read an
output fusion never makes). The flag lives on the producer's CallState (call.fused_relu), so a
shared layer is fused at one call site and not at another.

At inference, folding (engine/folding.py) takes precedence: a Conv2D-BatchNormalization-ReLU that
folds runs as one kernel call and neither the BatchNormalization nor the ReLU step runs; when a
fold declines, the BatchNormalization runs with its fused ReLU.
"""
from .folding import _only_reader, _plain_relu

__all__ = ["ENABLED", "find_fusions"]

# Set to False to run every ReLU on its own (the tests compare both ways).
ENABLED = True


def find_fusions(steps, output_numbers):
    """{index of a producer step: index of the ReLU step fused into it}."""
    from ..layers.merging import Add
    from ..layers.normalization import BatchNormalization
    readers = {}
    for i, step in enumerate(steps):
        for number in step.inputs:
            readers.setdefault(number, []).append(i)
    fusions = {}
    for i, step in enumerate(steps):
        layer = step.layer
        if step.is_model or not step.single_output or type(layer) not in (BatchNormalization, Add):
            continue
        if layer.activity_regularizer is not None:
            continue
        k = _only_reader(steps, readers, step.outputs[0], output_numbers)
        if k is None:
            continue
        relu = steps[k].layer
        if _plain_relu(relu) and relu.activity_regularizer is None:
            fusions[i] = k
    return fusions
