"""cnnkit.ops: losses, checked and converted, over the C++ kernels."""
from .. import _args, _core

__all__ = ["softmax_cross_entropy", "mean_squared_error", "binary_crossentropy"]


def softmax_cross_entropy(y_true, logits):
    """(loss, dlogits): softmax and categorical cross-entropy fused; dlogits = (p - y) / N.

    y_true is one-hot (N, K) or integer class indices (N,) or (N, 1)."""
    fn = "softmax_cross_entropy"
    logits = _args.float_array(logits, "logits", 2, fn=fn)
    onehot, labels = _args.class_labels(y_true, logits.shape, fn=fn)
    return _core.softmax_cross_entropy(logits, onehot, labels)


def mean_squared_error(y_true, y_pred):
    """(loss, dy_pred): the mean of (y_pred - y_true)**2 over every element."""
    fn = "mean_squared_error"
    y_pred = _args.float_array(y_pred, "y_pred", fn=fn)
    return _core.mean_squared_error(_args.target_array(y_true, y_pred.shape, fn=fn), y_pred)


def binary_crossentropy(y_true, y_pred, epsilon=1e-7):
    """(loss, dy_pred) on probabilities clipped to [epsilon, 1 - epsilon], as Keras does."""
    fn = "binary_crossentropy"
    y_pred = _args.float_array(y_pred, "y_pred", fn=fn)
    y_true = _args.target_array(y_true, y_pred.shape, fn=fn)
    eps = _args.real_number(epsilon, "epsilon", fn, low=0.0, high=0.5, include_high=False)
    return _core.binary_crossentropy(y_true, y_pred, eps)
