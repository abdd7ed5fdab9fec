"""cnnkit.regularizers, as keras.regularizers: not implemented yet.

Keras programs name regularizers (l1, l2, l1_l2, L1, L2, L1L2) when they make layers. cnnkit
does not add weight or activity penalties to the loss yet, and a model that silently left them
out would train differently from the one the program describes, so every regularizer raises
NotImplementedError when it is made; `get(None)` is None, as in Keras.
"""

__all__ = ["Regularizer", "L1", "L2", "L1L2", "l1", "l2", "l1_l2", "get", "serialize"]


class Regularizer:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError(
            f"cnnkit.regularizers.{type(self).__name__}: weight and activity regularizers are "
            "not supported yet; remove the regularizer (the model would train without it)")


class L1(Regularizer):
    pass


class L2(Regularizer):
    pass


class L1L2(Regularizer):
    pass


l1, l2, l1_l2 = L1, L2, L1L2


def get(identifier):
    if identifier is None:
        return None
    raise NotImplementedError(f"cnnkit.regularizers.get({identifier!r}): regularizers are not "
                              "supported yet")


def serialize(regularizer):
    """The config entry of a layer's regularizer argument (None for none)."""
    if regularizer is None:
        return None
    raise NotImplementedError("cnnkit.regularizers.serialize: regularizers are not supported yet")
