"""The training loop of a model, as Keras' Trainer: compile, fit, evaluate, predict and the
*_on_batch functions.

Data are converted once per call (x to C-contiguous float32, y by the loss), never per batch;
batches are then slices or index gathers of those arrays, which the layers trust. A training or
test step runs with the layers' workspaces on (layers/base.py): the batch gathers, the layers'
outputs and gradients and the loss gradient go to buffers reused from step to step, so a warm
step allocates no array; only floats leave a step (the logs), and predict copies each batch's
outputs into the array it returns. Shuffling uses
the model's own generator (seeded from the global one, saved with the model), so a resumed fit
shuffles exactly as an uninterrupted one.
"""
import math
import warnings

import numpy as np

from . import _core
from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers, utils
from ._args import _is_int, c_array, positive_int
from .callbacks import CallbackList
from .layers.base import Workspaces

__all__ = ["Trainer", "NotCompiledError"]


class NotCompiledError(RuntimeError, ValueError):
    """fit, evaluate or train_on_batch before compile: a RuntimeError as in Keras, and a
    ValueError like every other misuse cnnkit reports."""


class Trainer:
    def _init_trainer(self):
        self.optimizer = self.loss = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._metric_ids = []
        self._metrics = None  # made on first use, when the output shape is known
        self._loss_tracker = metrics_module.Mean("loss")
        self._shuffler = None
        self._step_buffers = Workspaces()  # batch gathers and the loss gradient, by batch size
        self._loss_out = False
        self._kept_weights = []  # the weights before the update, should it overflow

    # ------------------------------------------------------------ compile
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None,
                run_eagerly=False, jit_compile="auto", steps_per_execution=1, **kwargs):
        if kwargs:
            raise TypeError(f"compile() got unexpected keyword arguments {sorted(kwargs)}")
        if loss_weights is not None:
            raise ValueError("compile: loss_weights applies to models with several outputs; a "
                             "Sequential has one")
        self.optimizer = optimizers.get(optimizer)
        self.loss = None if loss is None else losses_module.get(loss)
        if isinstance(metrics, (str, metrics_module.Metric)) or callable(metrics):
            raise TypeError(f"compile: metrics must be a list, e.g. metrics=[{metrics!r}]")
        self._metric_ids = list(metrics or [])
        for metric in self._metric_ids:  # an unknown name is reported here, not in fit
            metrics_module.get(metric, self.loss)
        self._metrics = None
        self.compiled = True

    def _require(self, what):
        if not self.compiled:
            raise NotCompiledError(f"You must call compile() before using the model in {what}().")
        if self.loss is None:
            raise ValueError(f"{what}(): the model was compiled without a loss; pass loss= to "
                             "compile()")

    @property
    def metrics(self):
        return [self._loss_tracker] + list(self._metrics or [])

    @property
    def metrics_names(self):
        return [m.name for m in self.metrics]

    def _build_metrics(self):
        if self._metrics is None:
            self._metrics = [metrics_module.get(m, self.loss, self.output_shape)
                             for m in self._metric_ids]
            # Softmax fused with cross-entropy: the loss then reads the last layer's logits.
            self._fused = self.loss.fuses_softmax and self.output_activation == "softmax"
            # cnnkit's own losses write their gradient into a buffer (out=); a user's may not.
            self._loss_out = type(self.loss) in losses_module.BUILT_IN

    def _reset_metrics(self):
        for metric in self.metrics:
            metric.reset_state()

    def _logs(self):
        return {m.name: float(m.result()) for m in self.metrics}

    # ------------------------------------------------------------ data
    def _prepare_x(self, x):
        """x as C-contiguous float32 (one conversion); builds the model on first use."""
        try:
            x = np.asarray(x)
        except (ValueError, TypeError):  # a ragged list
            raise TypeError(f'Model "{self.name}" expects a numeric array x, got a '
                            f"{type(x).__name__} that is not one") from None
        if x.dtype.kind not in "fiub":
            raise TypeError(f'Model "{self.name}" expects a numeric array x, got dtype {x.dtype}')
        if x.ndim == 0 or len(x) == 0:
            raise ValueError(f'Model "{self.name}": x is empty (shape {x.shape})')
        if not self.built:
            self.build((None,) + x.shape[1:])
        else:
            self._check_input((None,) + x.shape[1:])
        return c_array(x, np.float32)

    def _prepare(self, x, y, what="x and y"):
        x = self._prepare_x(x)
        if y is None:
            raise ValueError("y is required to train or evaluate a model")
        self._build_metrics()
        y = self.loss.prepare_targets(y, self.output_shape)
        if y.ndim == 0 or len(y) != len(x):
            raise ValueError(f"{what} must hold the same number of samples, got {len(x)} "
                             f"and {len(y) if y.ndim else 'a scalar'}")
        return x, y

    def _shuffle_generator(self):
        if self._shuffler is None:
            self._shuffler = utils.spawn_generator()
        return self._shuffler

    def _shuffle_state(self):
        return None if self._shuffler is None else self._shuffler.bit_generator.state

    def _set_shuffle_state(self, state):
        if state is not None:
            self._shuffler = np.random.default_rng()
            self._shuffler.bit_generator.state = state

    # ------------------------------------------------------------ one batch
    def _loss_grad(self, y, out):
        """(loss, gradient) of this batch: with respect to the logits when softmax is fused with
        the loss, else to the output; the gradient in a reused buffer for cnnkit's losses."""
        pred = self.logits if self._fused else out
        kwargs = {}
        if self._loss_out:
            kwargs["out"] = self._step_buffers(len(pred))("dloss", pred.shape)
        if self._fused:
            return self.loss.from_logits_value_and_grad(y, pred, **kwargs)
        return self.loss.value_and_grad(y, pred, **kwargs)

    def _loss_and_backward(self, y, out):
        loss, grad = self._loss_grad(y, out)
        if self._fused:
            self.backward_from_logits(grad)
        else:
            self.backward(grad)
        return loss

    def _batch_loss(self, y, out):
        return self._loss_grad(y, out)[0]

    def _update_metrics(self, loss, y, out):
        self._loss_tracker.update_state(loss, len(y))
        for metric in self._metrics:
            metric.update_state(y, out)

    def _train_batch(self, x, y):
        """One update; False, and no update (or the update undone), when the loss, a gradient
        or an updated weight is not finite: the weights then stay those of the last finite
        step (Keras' TerminateOnNaN, by default)."""
        with self._exclusive():
            self._set_input_grad_needed(False)  # a trained model's own input gets no gradient
            self._set_workspaces(True)
            try:
                out = self.forward(x, training=True)
                loss = self._loss_and_backward(y, out)
                grads = self._trainable_grads()
                self._last_loss = loss
                finite = math.isfinite(loss) and _core.all_finite(grads)
                if finite:
                    finite = self._apply_keeping_finite(grads, self.trainable_weights)
                self._update_metrics(loss, y, out)
            finally:
                self._set_workspaces(False)
        return finite

    def _apply_keeping_finite(self, grads, weights):
        """The optimizer's update; if it overflows a weight (finite gradients, too large a
        step), the weights go back to a copy taken before it. The copy is a memcpy of the
        weights into buffers kept from step to step (about 1% of a CIFAR-10 CNN step)."""
        kept = self._kept_weights
        if len(kept) != len(weights) or any(k.shape != w.shape for k, w in zip(kept, weights)):
            kept = self._kept_weights = [np.empty_like(w) for w in weights]
        for k, w in zip(kept, weights):
            np.copyto(k, w)
        self.optimizer.apply(grads, weights)
        if _core.all_finite(weights):
            return True
        for k, w in zip(kept, weights):
            np.copyto(w, k)
        return False

    def _invalid_loss(self, where):
        warnings.warn(f"{where}: the loss ({self._last_loss}), a gradient or an updated weight "
                      "is NaN or infinite; training stopped, and the model keeps the weights "
                      "from before this batch (the last finite ones)", RuntimeWarning,
                      stacklevel=3)

    def _test_batch(self, x, y):
        with self._exclusive():
            self._set_workspaces(True)
            try:
                out = self.forward(x, training=False)
                self._update_metrics(self._batch_loss(y, out), y, out)
            finally:
                self._set_workspaces(False)

    def _gather(self, data, indices, name):
        """data[indices] into a buffer reused while the batch size stays the same."""
        shape = (len(indices),) + data.shape[1:]
        out = self._step_buffers(len(indices))(name, shape, data.dtype)
        return np.take(data, indices, axis=0, out=out, mode="clip")  # 'raise' would copy

    # ------------------------------------------------------------ fit
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None,
            validation_batch_size=None, validation_freq=1):
        """Trains for epochs - initial_epoch epochs; returns a History whose .history holds
        loss, the metrics, and val_ ones with validation data, a value per epoch."""
        self._require("fit")
        if class_weight is not None or sample_weight is not None or steps_per_epoch is not None:
            raise ValueError("fit: class_weight, sample_weight and steps_per_epoch are not supported")
        if shuffle not in (True, False):
            raise ValueError(f"fit: shuffle must be True or False, got {shuffle!r}")
        verbose = _verbose(verbose, "fit")
        batch_size = _batch_size(batch_size, "fit")
        epochs = _count(epochs, "epochs", "fit")
        initial_epoch = _count(initial_epoch, "initial_epoch", "fit")
        validation_freq = _batch_size(validation_freq, "fit", "validation_freq")
        if validation_batch_size is not None:
            validation_batch_size = _batch_size(validation_batch_size, "fit",
                                                "validation_batch_size")
        x, y = self._prepare(x, y)
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("fit: validation_data must be a tuple (x_val, y_val)")
            val = self._prepare(*validation_data, what="fit: validation_data's x and y")
        elif validation_split:
            if (not isinstance(validation_split, (int, float)) or isinstance(validation_split, bool)
                    or not 0 < validation_split < 1):
                raise ValueError(f"fit: validation_split must be a number in (0, 1), got "
                                 f"{validation_split!r}")
            split = int(len(x) * (1 - validation_split))  # Keras: the last samples, unshuffled
            if split == 0 or split == len(x):
                raise ValueError(f"fit: validation_split={validation_split} of {len(x)} samples "
                                 "leaves no training or no validation samples")
            x, y, val = x[:split], y[:split], (x[split:], y[split:])
        n = len(x)
        steps = math.ceil(n / batch_size)
        cbs = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=self,
                           verbose=verbose, epochs=epochs, steps=steps, in_fit=True)
        self.stop_training = False
        generator = self._shuffle_generator()
        cbs.on_train_begin()
        logs = {}
        for epoch in range(initial_epoch, epochs):
            self._reset_metrics()
            cbs.on_epoch_begin(epoch)
            order = generator.permutation(n) if shuffle else None
            for step in range(steps):
                cbs.on_train_batch_begin(step)
                batch = slice(step * batch_size, (step + 1) * batch_size)
                if order is None:
                    finite = self._train_batch(x[batch], y[batch])
                else:  # the indices are a permutation: 'clip' never clips
                    finite = self._train_batch(self._gather(x, order[batch], "x"),
                                               self._gather(y, order[batch], "y"))
                logs = self._logs()
                if not finite:
                    self._invalid_loss(f"fit: epoch {epoch + 1}, batch {step}")
                    self.stop_training = True
                cbs.on_train_batch_end(step, logs)
                if self.stop_training:
                    break
            if val is not None and (epoch + 1) % validation_freq == 0:
                val_logs = self._evaluate(*val, validation_batch_size or batch_size, cbs)
                logs = {**logs, **{"val_" + k: v for k, v in val_logs.items()}}
            cbs.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        cbs.on_train_end(logs)
        return cbs.history

    # ------------------------------------------------------------ evaluate and predict
    def _evaluate(self, x, y, batch_size, cbs):
        self._reset_metrics()
        steps = math.ceil(len(x) / batch_size)
        cbs.on_test_begin()
        logs = {}
        for step in range(steps):
            cbs.on_test_batch_begin(step)
            batch = slice(step * batch_size, (step + 1) * batch_size)
            self._test_batch(x[batch], y[batch])
            logs = self._logs()
            cbs.on_test_batch_end(step, logs)
        cbs.on_test_end(logs)
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False):
        """The loss (and metrics) over x: loss, or [loss, *metrics], or a dict."""
        self._require("evaluate")
        if sample_weight is not None or steps is not None:
            raise ValueError("evaluate: sample_weight and steps are not supported")
        verbose = _verbose(verbose, "evaluate")
        batch_size = _batch_size(batch_size, "evaluate")
        x, y = self._prepare(x, y)
        cbs = CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose,
                           epochs=1, steps=math.ceil(len(x) / batch_size))
        logs = self._evaluate(x, y, batch_size, cbs)
        return self._returned(logs, return_dict)

    def _returned(self, logs, return_dict):
        if return_dict:
            return logs
        values = [logs[name] for name in self.metrics_names]
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose=0, steps=None, callbacks=None):
        """The model's outputs for x, computed batch by batch (training=False)."""
        if steps is not None:
            raise ValueError("predict: steps is not supported")
        verbose = _verbose(verbose, "predict")
        batch_size = _batch_size(batch_size, "predict")
        x = self._prepare_x(x)
        steps = math.ceil(len(x) / batch_size)
        cbs = CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose,
                           epochs=1, steps=steps)
        cbs.on_predict_begin()
        outputs = None
        for step in range(steps):
            cbs.on_predict_batch_begin(step)
            start = step * batch_size
            with self._exclusive():  # out lives in a workspace: copied before letting go
                self._set_workspaces(True)
                try:
                    out = self.forward(x[start:start + batch_size], training=False)
                finally:
                    self._set_workspaces(False)
                if outputs is None:  # allocated once the first batch shows the output's shape
                    outputs = np.empty((len(x),) + out.shape[1:], dtype=out.dtype)
                outputs[start:start + len(out)] = out
            cbs.on_predict_batch_end(step, {"outputs": outputs[start:start + len(out)]})
        cbs.on_predict_end()
        return outputs

    # ------------------------------------------------------------ single batches
    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One update on this batch; returns its loss (and metrics), as Keras."""
        self._require("train_on_batch")
        if sample_weight is not None or class_weight is not None:
            raise ValueError("train_on_batch: sample_weight and class_weight are not supported")
        x, y = self._prepare(x, y)
        self._reset_metrics()
        if not self._train_batch(x, y):
            self._invalid_loss("train_on_batch")
        return self._returned(self._logs(), return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        self._require("test_on_batch")
        if sample_weight is not None:
            raise ValueError("test_on_batch: sample_weight is not supported")
        x, y = self._prepare(x, y)
        self._reset_metrics()
        self._test_batch(x, y)
        return self._returned(self._logs(), return_dict)

    def predict_on_batch(self, x):
        x = self._prepare_x(x)
        with self._exclusive():
            return self.forward(x, training=False)


# ---------------------------------------------------------------- argument checks

def _batch_size(value, fn, name="batch_size"):
    """None -> 32 (Keras' default); else a positive integer."""
    return 32 if value is None else positive_int(value, name, fn)


def _count(value, name, fn):
    """epochs, initial_epoch: an integer >= 0."""
    if not _is_int(value):
        raise TypeError(f"{fn}: {name} must be an integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{fn}: {name} must be 0 or more, got {value!r}")
    return int(value)


def _verbose(value, fn):
    """'auto' (1), 0 (silent), 1 (progress bar) or 2 (a line per epoch), as Keras; a bool is
    taken as 0 or 1, as Keras takes it."""
    if isinstance(value, str) and value == "auto":
        return 1
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if not _is_int(value):
        raise TypeError(f"{fn}: verbose must be 'auto', 0, 1 or 2, got {value!r}")
    if value not in (0, 1, 2):
        raise ValueError(f"{fn}: verbose must be 'auto', 0, 1 or 2, got {value!r}")
    return int(value)
