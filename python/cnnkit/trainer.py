"""The training loop of a model, as Keras' Trainer: compile, fit, evaluate, predict and the
*_on_batch functions, for models of one or several inputs and outputs.

Data are converted once per call (each x to C-contiguous float32, each y by its loss), never
per batch; batches are then slices or index gathers of those arrays, which the layers trust. A
training or test step runs the model on call states the trainer keeps (reuse=True): the batch
gathers, the layers' outputs and gradients and the loss gradients go to buffers reused from
step to step, so a warm step allocates no array; only floats leave a step (the logs), and
predict copies each batch's outputs into the arrays it returns. Shuffling uses the model's own
generator (seeded from the global one, saved with the model), so a resumed fit shuffles exactly
as an uninterrupted one.

Several outputs (Keras 3's rules): loss is one loss for every output, a list (one per output)
or a dict by output name; loss_weights likewise; metrics a list of lists or a dict by output
name (a flat list only for one output). The logs hold 'loss' (the weighted sum), then
'<output>_loss' for each output and '<output>_<metric>' for each metric.

Weights (Keras 3's rules): sample_weight is one float per sample, for every output or per
output (a list or a dict by output name); class_weight ({class: weight}, one output only)
becomes per-sample weights from the training labels (the index, the argmax of one-hot rows, or
the rounded value of a single sigmoid output). The losses divide the weighted sum by the batch
size ('sum_over_batch_size'); metrics get sample_weight= only when there are weights. The
weights of a batch are gathered into reused buffers, as x and y are. steps_per_epoch with
array data follows Keras' EpochIterator: a pass over the data runs on across epochs, and an
epoch that reaches the end of the pass stops there.

Streams (Keras 3's data adapters, see data_adapters.py): x may also be a generator, an iterable
dataset or a PyDataset of (x, y[, sample_weight]) batches; fit, evaluate and predict then read
batch by batch (_fit_stream, _evaluate_stream, _predict_stream), each batch converted and
checked as arrays are (an error names the batch), class_weight applied to each batch's labels.
A batch already float32 and C-contiguous is not copied, so a warm step of a fixed batch size
allocates no more than on arrays; a new batch size gets buffers of its own.
"""
import math
import warnings

import numpy as np

from . import _core
from . import losses as losses_module
from . import metrics as metrics_module
from . import data_adapters, optimizers, utils
from ._args import _is_int, c_array, positive_int
from .callbacks import CallbackList
from .distribute import training as distributed
from .distribute.strategy import distribution
from .engine import inference_plan, split_inference
from .layers.base import TRAINABLE_VERSION
from .layers.call_state import Workspaces

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
        self._compile_args = None
        self._outputs_compiled = None  # per output: (name, loss, weight, metric ids), at first use
        self._metrics = None
        self._loss_tracker = metrics_module.Mean("loss")
        self._shuffler = None
        self._step_buffers = Workspaces()  # batch gathers and the loss gradients, by batch size
        self._states = {}                  # the trainer's call states, by training mode
        self._kept_weights = []            # the weights before the update, should it overflow
        self._grad_sums = {}               # a shared layer's summed weight gradients
        self._penalty_scratch = {}         # per regularized weight, for its penalty
        self._parallel = None              # a distributed fit's ParallelFit, while it runs
        # The cnnkit.distribute.DataParallel whose scope the model was made or compiled in
        self._distribution = distribution()

    # ------------------------------------------------------------ compile
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1,
                jit_compile="auto", **kwargs):
        if kwargs:
            raise TypeError(f"compile() got unexpected keyword arguments {sorted(kwargs)}")
        self.optimizer = optimizers.get(optimizer)
        self.loss = _map_structure(loss, losses_module.get, "loss")
        for leaf in _leaves(self.loss):
            reduction = getattr(leaf, "reduction", "sum_over_batch_size")
            if leaf is not None and reduction not in losses_module.TRAINABLE_REDUCTIONS:
                raise ValueError(f"compile: the loss {leaf.name!r} has reduction={reduction!r}, "
                                 "a value per sample; cnnkit trains with one of "
                                 f"{losses_module.TRAINABLE_REDUCTIONS}")
        for what, ids in (("metrics", metrics), ("weighted_metrics", weighted_metrics)):
            if isinstance(ids, (str, metrics_module.Metric)) or callable(ids):
                raise TypeError(f"compile: {what} must be a list, e.g. {what}=[{ids!r}]")
            for metric in _leaves(ids):  # an unknown name is reported here, not in fit
                if metric is not None and not isinstance(metric, type):
                    metrics_module.get(metric, None)  # a class is made later, once, to keep
                elif metric is not None and not issubclass(metric, metrics_module.Metric):
                    metrics_module.get(metric, None)  # its default name (auc, not auc_1)
        # Keras 3: sample weights reach weighted_metrics only; metrics stay unweighted.
        self._metric_ids = metrics
        self._weighted_metric_ids = weighted_metrics
        if loss_weights is not None and not isinstance(loss_weights, (list, tuple, dict)):
            if not isinstance(loss_weights, (int, float)) or isinstance(loss_weights, bool):
                raise TypeError(f"compile: loss_weights must be a number, a list or a dict, got "
                                f"{loss_weights!r}")
        self._loss_weights = loss_weights
        self._outputs_compiled = None
        self._metrics = None
        self._distribution = distribution() or self._distribution
        self.compiled = True

    def _require(self, what):
        if not self.compiled:
            raise NotCompiledError(f"You must call compile() before using the model in {what}().")
        if self.loss is None:
            raise ValueError(f"{what}(): the model was compiled without a loss; pass loss= to "
                             "compile()")

    def _per_output(self):
        """[(name, Loss or None, weight, [metric ids])] per output, from compile's arguments
        matched to the model's outputs (once the model is built)."""
        if self._outputs_compiled is not None:
            return self._outputs_compiled
        names = self.output_names
        several = len(names) > 1
        losses = _match(self.loss, names, "loss", several)
        weights = _match(self._loss_weights, names, "loss_weights", several)
        metric_ids = _metrics_per_output(self._metric_ids, names, "metrics")
        self._weighted_ids = _metrics_per_output(self._weighted_metric_ids, names,
                                                 "weighted_metrics")
        compiled = []
        for name, loss, weight, ids in zip(names, losses, weights, metric_ids):
            if loss is None:
                raise ValueError(f'compile: no loss for output "{name}"; cnnkit trains every '
                                 f"output (outputs: {names})")
            weight = 1.0 if weight is None else weight
            if not isinstance(weight, (int, float)) or isinstance(weight, bool):
                raise TypeError(f'compile: the loss weight of output "{name}" must be a number, '
                                f"got {weight!r}")
            compiled.append((name, loss, float(weight), list(ids or [])))
        self._outputs_compiled = compiled
        return compiled

    @property
    def metrics(self):
        if self.compiled and self.built and self.loss is not None:
            self._build_metrics()
        return [self._loss_tracker] + [m for m in (self._metrics or [])]

    @property
    def metrics_names(self):
        return [m.name for m in self.metrics]

    def _build_metrics(self):
        """The loss and metric objects of each output, named as Keras names them."""
        if self._metrics is not None:
            return
        outputs = self._per_output()
        several = len(outputs) > 1
        shapes = self._output_shapes()
        self._output_losses = [metrics_module.Mean(f"{name}_loss") for name, *_ in outputs] \
            if several else []
        self._output_metrics, self._output_weighted_metrics = [], []
        for (name, loss, _, ids), weighted_ids, shape in zip(outputs, self._weighted_ids, shapes):
            made = [metrics_module.get(m, loss, shape) for m in ids]
            weighted = [metrics_module.get(m, loss, shape) for m in weighted_ids or []]
            taken = {m.name for m in made}
            for metric in weighted:  # as Keras: a name both lists use is weighted_<name> here
                if metric.name in taken:
                    metric.name = f"weighted_{metric.name}"
                taken.add(metric.name)
            if several:
                for metric in made + weighted:
                    metric.name = f"{name}_{metric.name}"
            self._output_metrics.append(made)
            self._output_weighted_metrics.append(weighted)
        self._metrics = self._output_losses + [
            m for ms in self._output_metrics + self._output_weighted_metrics for m in ms]
        # Softmax fused with cross-entropy, per output: the loss then reads the logits.
        # Not when the softmax layer has an activity regularizer: its penalty's gradient is with
        # respect to the softmax output, so that output's gradient must exist.
        self._fused = [loss.fuses_softmax and
                       self._output_activation_at(i, True, fusable=True) == "softmax"
                       for i, (_, loss, _, _) in enumerate(outputs)]
        # cnnkit's own losses write their gradient into a buffer (out=); a user's may not.
        self._loss_out = [type(loss) in losses_module.BUILT_IN for _, loss, _, _ in outputs]

    def _output_shapes(self):
        shapes = self.compute_output_shape(None)
        return shapes if isinstance(shapes, list) else [shapes]

    def _reset_metrics(self):
        for metric in self.metrics:
            metric.reset_state()

    def _logs(self):
        """The metrics' values by name, sorted by name as Keras 3 gives its logs."""
        return {m.name: float(m.result()) for m in sorted(self.metrics, key=lambda m: m.name)}

    # ------------------------------------------------------------ data
    def _arrays(self, x, what):
        """x as a list of C-contiguous float32 arrays, one per model input (a single array, a
        list, or a dict by input name)."""
        if isinstance(x, dict):
            if not self.built:
                raise ValueError(f'Model "{self.name}": x as a dict needs a built model')
            names = self.input_names
            missing = [n for n in names if n not in x]
            if missing or len(x) != len(names):
                raise ValueError(f'Model "{self.name}": x has keys {sorted(x)}, the model\'s '
                                 f"inputs are {names}")
            x = [x[n] for n in names]
        if (isinstance(x, (list, tuple)) and not self._takes_several_inputs
                and not all(isinstance(item, np.ndarray) for item in x)):
            x = [x]  # nested Python lists of numbers: one input's data
        items = list(x) if isinstance(x, (list, tuple)) else [x]
        if isinstance(x, (list, tuple)) and self.built:
            expected = len(self._build_shapes)
            if len(items) != expected:
                raise ValueError(f'Model "{self.name}" expects {expected} input(s), but {what} '
                                 f"got {len(items)} arrays")
        arrays = []
        for i, item in enumerate(items):
            try:
                a = np.asarray(item)
            except (ValueError, TypeError):  # a ragged list
                raise TypeError(f'Model "{self.name}" expects a numeric array x, got a '
                                f"{type(item).__name__} that is not one") from None
            if a.dtype.kind not in "fiub":
                raise TypeError(f'Model "{self.name}" expects a numeric array x, got dtype {a.dtype}')
            if a.ndim == 0 or len(a) == 0:
                raise ValueError(f'Model "{self.name}": x is empty (shape {a.shape})')
            arrays.append(c_array(a, np.float32))
        if len({len(a) for a in arrays}) > 1:
            raise ValueError(f'Model "{self.name}": the inputs hold different numbers of '
                             f"samples: {[len(a) for a in arrays]}")
        return arrays

    def _prepare_x(self, x):
        """The inputs as arrays (one conversion); builds the model on first use."""
        xs = self._arrays(x, "x")
        shapes = [(None,) + a.shape[1:] for a in xs]
        shape = shapes if len(xs) > 1 or self._takes_several_inputs else shapes[0]
        if not self.built:
            self.build(shape)
        else:
            self._check_input(shape)
        return xs

    def _prepare(self, x, y, what="x and y"):
        xs = self._prepare_x(x)
        if y is None:
            raise ValueError("y is required to train or evaluate a model")
        self._build_metrics()
        outputs, shapes = self._per_output(), self._output_shapes()
        names = [o[0] for o in outputs]
        if isinstance(y, dict):
            unknown = [k for k in y if k not in names]
            if unknown or len(y) != len(names):
                raise ValueError(f"{what}: y has keys {sorted(y)}, the model's outputs are {names}")
            y = [y[n] for n in names]
        elif len(names) > 1:
            if not isinstance(y, (list, tuple)) or len(y) != len(names):
                raise ValueError(f"{what}: the model has {len(names)} outputs {names}: give y as "
                                 f"a list of {len(names)} arrays or a dict by output name")
        else:
            y = [y]
        ys = [loss.prepare_targets(t, shape) for (_, loss, _, _), t, shape in zip(outputs, y, shapes)]
        for t in ys:
            if t.ndim == 0 or len(t) != len(xs[0]):
                raise ValueError(f"{what} must hold the same number of samples, got {len(xs[0])} "
                                 f"and {len(t) if t.ndim else 'a scalar'}")
        return xs, ys

    def _sample_weights_of(self, ys, sample_weight, class_weight, fn):
        """The samples' weights per output (a float32 (N,) array or None each), or None:
        sample_weight as given (one array for every output, or a list or dict by output name
        of them, as Keras 3 takes them), or class_weight turned into per-sample weights from
        the labels as Keras 3 does (data_adapter_utils.class_weight_to_sample_weights)."""
        if class_weight is not None:
            if sample_weight is not None:
                raise ValueError(f"{fn}: you cannot give class_weight and sample_weight at the "
                                 "same time (as in Keras)")
            return [self._class_weights(ys, class_weight, fn)]
        if sample_weight is None:
            return None
        names = self.output_names
        if len(names) > 1 and isinstance(sample_weight, dict):
            unknown = [k for k in sample_weight if k not in names]
            if unknown:
                raise ValueError(f"{fn}: sample_weight has keys {unknown} that are not outputs "
                                 f"of the model; its outputs are {names}")
            sample_weight = [sample_weight.get(name) for name in names]
        if (len(names) > 1 and isinstance(sample_weight, (list, tuple))
                and any(w is None or np.ndim(w) > 0 for w in sample_weight)):
            if len(sample_weight) != len(names):
                raise ValueError(f"{fn}: sample_weight has {len(sample_weight)} arrays but the "
                                 f"model has {len(names)} outputs {names}: give one per output "
                                 "(or one array for all)")
            per_output = [None if w is None else self._one_weight_array(ys, w, fn)
                          for w in sample_weight]
            return None if all(w is None for w in per_output) else per_output
        return [self._one_weight_array(ys, sample_weight, fn)] * len(names)

    def _one_weight_array(self, ys, sample_weight, fn):
        n = len(ys[0])
        try:
            w = np.asarray(sample_weight)
        except (ValueError, TypeError):
            w = None
        if w is None or w.dtype.kind not in "fiub":
            raise TypeError(f"{fn}: sample_weight must be a numeric array of one weight per "
                            f"sample, got {type(sample_weight).__name__}")
        if w.shape not in ((n,), (n, 1)):
            raise ValueError(f"{fn}: sample_weight must have shape ({n},) (one weight per "
                             f"sample), got shape {w.shape}")
        return _checked_weights(c_array(w.reshape(n), np.float32), fn, "sample_weight")

    def _class_weights(self, ys, class_weight, fn):
        if not isinstance(class_weight, dict):
            raise TypeError(f"{fn}: class_weight must be a dict {{class index: weight}}, got "
                            f"{type(class_weight).__name__}")
        if len(ys) > 1:
            raise ValueError(f"{fn}: class_weight is only supported for models with a single "
                             "output (as in Keras); give sample_weight instead")
        y = ys[0]
        k = self._output_shapes()[0][-1]
        classes = 2 if k == 1 else k  # a single sigmoid output: classes 0 and 1
        table = np.ones(classes, np.float32)
        for key, value in class_weight.items():
            if not _is_int(key) or not 0 <= key < classes:
                raise ValueError(f"{fn}: class_weight has the key {key!r}, but the model's "
                                 f"classes are 0 to {classes - 1}")
            if (not isinstance(value, (int, float, np.integer, np.floating))
                    or isinstance(value, (bool, np.bool_))):
                raise TypeError(f"{fn}: class_weight[{key}] must be a number, got {value!r}")
            table[int(key)] = value
        _checked_weights(table, fn, "class_weight")
        # Keras: class indices as they are (sparse), the argmax of one-hot rows, the rounded
        # value of a single output.
        if y.dtype == np.int64:
            labels = y
        elif y.ndim == 2 and y.shape[1] > 1:
            labels = np.argmax(y, axis=-1)
        elif y.ndim == 2:
            labels = np.round(y[:, 0]).astype(np.int64)
        else:
            labels = None
        if labels is None or labels.ndim != 1:
            raise ValueError(f"{fn}: class_weight needs one class per sample; this model's "
                             f"targets have shape {y.shape}: give sample_weight instead")
        if labels.size and (labels.min() < 0 or labels.max() >= classes):
            raise ValueError(f"{fn}: class_weight: the targets hold classes outside 0 to "
                             f"{classes - 1}")
        return table[labels]

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
    def _step_state(self, training):
        """The call state the trainer runs the model with (its buffers are reused)."""
        graph = self._graph_for(training)
        state = self._states.get(graph)  # by the graph itself: a rebuilt model gets new states
        if state is None:
            state = self._states[graph] = self.new_state(reuse=True)
            state.plan = None
        return state

    def _run(self, state, xs, training):
        out = self.forward(state, xs if len(xs) > 1 else xs[0], training)
        return out if isinstance(out, list) else [out]

    def _losses_and_grads(self, state, ys, outs, sws=None):
        """The weighted total loss and each output's loss gradient (with respect to its logits
        where softmax is fused), the gradients in reused buffers for cnnkit's losses. sws: per
        output, the batch's sample weights (float32 (N,)) or None (or None for every output);
        a user's loss gets sample_weight= only when there are weights."""
        total, grads = 0.0, []
        for i, ((_, loss, weight, _), y, out) in enumerate(zip(self._per_output(), ys, outs)):
            pred = self.logits_of(state, i) if self._fused[i] else out
            sw = None if sws is None else sws[i]
            kwargs = {} if sw is None else {"sample_weight": sw}
            if self._loss_out[i]:
                kwargs["out"] = self._step_buffers(len(pred))(f"dloss{i}", pred.shape)
            if self._fused[i]:
                value, grad = loss.from_logits_value_and_grad(y, pred, **kwargs)
            else:
                value, grad = loss.value_and_grad(y, pred, **kwargs)
            if weight != 1.0:
                grad = np.multiply(grad, np.float32(weight), out=grad if self._loss_out[i] else None)
            if self._output_losses:
                self._output_losses[i].update_state(value, len(y))
            total += weight * float(value)
            grads.append(grad)
        return total, grads

    def _update_metrics(self, loss, ys, outs, sws=None):
        self._loss_tracker.update_state(loss, len(ys[0]))
        for i, (metrics, weighted, y, out) in enumerate(zip(
                self._output_metrics, self._output_weighted_metrics, ys, outs)):
            for metric in metrics:
                metric.update_state(y, out)
            sw = None if sws is None else sws[i]
            for metric in weighted:
                metric.update_state(y, out, sample_weight=sw)

    def _step_plan(self, state, n_inputs):
        """What a training step needs beyond the graph, worked out once (again only when a
        layer's `trainable` changes): which calls compute input gradients (configure), the
        trainable weights, and for each trainable layer the call states its gradient comes from."""
        plan = getattr(state, "plan", None)
        if plan is not None and plan[0] == TRAINABLE_VERSION[0]:
            return plan
        self._configure(state, [False] * n_inputs, True)  # a trained model's inputs need none
        by_layer = {}
        for layer, child in self._leaf_states(state, True):
            by_layer.setdefault(id(layer), []).append(child)
        sources = [(layer, by_layer.get(id(layer), [])) for layer in self._flat_layers()
                   if self.trainable and layer.trainable and layer._trainable_variables]
        weights = self.trainable_weights
        state.plan = plan = (TRAINABLE_VERSION[0], weights, sources, self._regularized(weights))
        return plan

    def _regularized(self, trainable):
        """(weight, regularizer, index of its gradient or None) of every regularized weight;
        a frozen weight's penalty still counts in the loss (as in Keras), with no gradient."""
        index = {id(w): i for i, w in enumerate(trainable)}
        return [(w, reg, index.get(id(w))) for layer in self._flat_layers()
                for w, reg in layer._weight_regularizers]

    def _penalties(self, state, regularized, grads=None):
        """The regularizers' share of the loss: the activity penalties of the last forward
        pass and each regularized weight's penalty, whose gradient joins grads (in place)."""
        return state.active.activity_loss + self._weight_penalties(regularized, grads)

    def _weight_penalties(self, regularized, grads=None):
        total = 0.0
        scratch = self._penalty_scratch
        for w, reg, i in regularized:
            buf = scratch.get(id(w))
            if buf is None or buf.shape != w.shape:
                buf = scratch[id(w)] = np.empty_like(w)
            total += reg.penalty(w, buf)
            if grads is not None and i is not None:
                reg.add_gradient(w, grads[i], 1.0, buf)
        return total

    def _gradients(self, state, sources):
        """The gradient of each trainable weight, in trainable_weights' order: a layer's own
        call state's, or, for a layer called more than once, the sum over its calls."""
        grads = []
        for layer, calls in sources:
            if len(calls) == 1:
                grads.extend(calls[0].grads)
            elif not calls:  # not in the training graph: its weights do not move
                grads.extend(self._sum_buffer(layer, i, w, zero=True)
                             for i, w in enumerate(layer._trainable_variables))
            else:
                for i, w in enumerate(layer._trainable_variables):
                    total = self._sum_buffer(layer, i, w)
                    np.copyto(total, calls[0].grads[i])
                    for other in calls[1:]:
                        np.add(total, other.grads[i], out=total)
                    grads.append(total)
        return grads

    def _sum_buffer(self, layer, i, weight, zero=False):
        key = (id(layer), i)
        buf = self._grad_sums.get(key)
        if buf is None or buf.shape != weight.shape:
            buf = self._grad_sums[key] = np.zeros_like(weight)
        elif zero:
            buf.fill(0)
        return buf

    def _train_batch(self, xs, ys, sws=None):
        """One update; False, and no update (or the update undone), when the loss, a gradient
        or an updated weight is not finite: the weights then stay those of the last finite
        step (Keras' TerminateOnNaN, by default)."""
        with self._exclusive():
            state = self._step_state(True)
            _, weights, sources, regularized = self._step_plan(state, len(xs))
            outs = self._run(state, xs, True)
            loss, douts = self._losses_and_grads(state, ys, outs, sws)
            self.backward(state, douts if len(douts) > 1 else douts[0], self._fused)
            grads = self._gradients(state, sources)
            loss += self._penalties(state, regularized, grads)
            self._last_loss = loss
            finite = math.isfinite(loss) and _core.all_finite(grads)
            if finite:
                finite = self._apply_keeping_finite(grads, weights)
            self._update_metrics(loss, ys, outs, sws)
        return finite

    def _train_batch_parallel(self, xs, ys, sws, batch):
        """Distributed training's step (cnnkit.distribute): this rank's part of a global batch
        of `batch` samples (xs None when it has none). The backward pass sums the gradients
        over the ranks as it goes (GradientBuckets), each scaled by the rank's share of the
        batch; the weights' penalties, the same on every rank, join the summed gradients; every
        rank then applies the same update, or, on a non-finite global loss or gradient, none."""
        parallel = self._parallel
        with self._exclusive():
            state = self._step_state(True)
            plan = self._step_plan(state, len(self._build_shapes))
            _, weights, sources, regularized = plan
            graph = self._graph_for(True)
            buckets = parallel.buckets(plan, graph, sources)
            count = 0 if xs is None else len(xs[0])
            parallel.scale = count / batch
            if count:
                outs = self._run(state, xs, True)
                loss, douts = self._losses_and_grads(state, ys, outs, sws)
                loss += state.active.activity_loss
                buckets.begin(parallel.scale, loss)
                active = state.active
                active.after_step = buckets.after_step
                try:
                    self.backward(state, douts if len(douts) > 1 else douts[0], self._fused)
                finally:
                    active.after_step = None
                total = buckets.finish("fit: the gradients' sum")
            else:
                parallel.idle_batch_norm(graph, True)
                total = buckets.idle("fit: the gradients' sum")
            grads = buckets.grads
            penalty = self._weight_penalties(regularized, grads)
            total += penalty
            self._last_loss = total
            finite = math.isfinite(total) and _core.all_finite(grads)
            if finite:
                finite = self._apply_keeping_finite(grads, weights)
            if count:
                self._update_metrics(loss + penalty, ys, outs, sws)
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

    def _test_batch(self, xs, ys, sws=None):
        with self._exclusive():
            state = self._step_state(False)
            outs = self._run(state, xs, False)
            loss, _ = self._losses_and_grads(state, ys, outs, sws)
            loss += self._penalties(state, self._regularized(()))
            self._update_metrics(loss, ys, outs, sws)

    def _gather(self, data, indices, name):
        """data[indices] into a buffer reused while the batch size stays the same."""
        shape = (len(indices),) + data.shape[1:]
        out = self._step_buffers(len(indices))(name, shape, data.dtype)
        return np.take(data, indices, axis=0, out=out, mode="clip")  # 'raise' would copy

    def _batch_weights(self, sws, order, batch):
        """The batch's sample weights per output, gathered as x and y are."""
        if sws is None:
            return None
        if order is None:
            return [None if w is None else w[batch] for w in sws]
        return [None if w is None else self._gather(w, order[batch], f"w{i}")
                for i, w in enumerate(sws)]

    def _batch(self, arrays, order, batch, prefix):
        if order is None:
            return [a[batch] for a in arrays]
        # the indices are a permutation: 'clip' never clips
        return [self._gather(a, order[batch], f"{prefix}{i}") for i, a in enumerate(arrays)]

    # ------------------------------------------------------------ fit
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Trains for epochs - initial_epoch epochs; returns a History whose .history holds
        loss, the metrics, and val_ ones with validation data, a value per epoch. x (and
        validation_data) may be arrays or a stream of batches (see cnnkit.data_adapters).
        Under an MPI launcher with a cnnkit.distribute.DataParallel, the ranks train together
        (batch_size is the global batch; see cnnkit.distribute)."""
        self._require("fit")
        arguments = dict(
            x=x, y=y, batch_size=batch_size, epochs=epochs, verbose=verbose,
            callbacks=callbacks, validation_split=validation_split,
            validation_data=validation_data, shuffle=shuffle, class_weight=class_weight,
            sample_weight=sample_weight, initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
            validation_batch_size=validation_batch_size, validation_freq=validation_freq)
        return self._distributed(self._fit, arguments)

    def _distributed(self, run, arguments):
        """run(**arguments), on the ranks together when a distribution is in effect."""
        parallel = None if self._parallel is not None else distributed.begin(self)
        if parallel is None:
            return run(**arguments)
        self._parallel = parallel
        try:
            with parallel.running():
                return run(**arguments)
        finally:
            self._parallel = None

    def _fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
             validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
             sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
             validation_batch_size=None, validation_freq=1):
        if steps_per_epoch is not None:
            steps_per_epoch = _batch_size(steps_per_epoch, "fit", "steps_per_epoch")
        if validation_steps is not None:
            validation_steps = _batch_size(validation_steps, "fit", "validation_steps")
        if data_adapters.is_stream(x):
            return self._fit_stream(
                x, y, epochs=epochs, verbose=verbose, callbacks=callbacks,
                validation_split=validation_split, validation_data=validation_data,
                shuffle=shuffle, class_weight=class_weight, sample_weight=sample_weight,
                initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch,
                validation_steps=validation_steps, validation_freq=validation_freq,
                batch_size=batch_size, validation_batch_size=validation_batch_size)
        if shuffle not in (True, False):
            raise ValueError(f"fit: shuffle must be True or False, got {shuffle!r}")
        verbose = _verbose(verbose, "fit")
        given_batch_size = batch_size
        batch_size = _batch_size(batch_size, "fit")
        epochs = _count(epochs, "epochs", "fit")
        initial_epoch = _count(initial_epoch, "initial_epoch", "fit")
        validation_freq = _batch_size(validation_freq, "fit", "validation_freq")
        if validation_batch_size is not None:
            validation_batch_size = _batch_size(validation_batch_size, "fit",
                                                "validation_batch_size")
        xs, ys = self._prepare(x, y)
        if class_weight is not None and sample_weight is not None:
            raise ValueError("fit: you cannot give class_weight and sample_weight at the same "
                             "time (as in Keras)")
        sw = self._sample_weights_of(ys, sample_weight, None, "fit")
        if class_weight is not None:  # checked now, applied to the training part below
            self._sample_weights_of(ys, None, class_weight, "fit")
        val = None  # a function of the callbacks that runs the validation: its logs or None
        if validation_data is not None:
            val = self._validation(validation_data, validation_steps,
                                   validation_batch_size or batch_size)
        elif validation_split:
            if (not isinstance(validation_split, (int, float)) or isinstance(validation_split, bool)
                    or not 0 < validation_split < 1):
                raise ValueError(f"fit: validation_split must be a number in (0, 1), got "
                                 f"{validation_split!r}")
            n = len(xs[0])
            split = int(n * (1 - validation_split))  # Keras: the last samples, unshuffled
            if split == 0 or split == n:
                raise ValueError(f"fit: validation_split={validation_split} of {n} samples "
                                 "leaves no training or no validation samples")
            val_arrays = ([a[split:] for a in xs], [t[split:] for t in ys],
                          _slice_weights(sw, slice(split, None)))
            val_batch_size = validation_batch_size or batch_size
            val = lambda cbs: self._evaluate(*val_arrays, val_batch_size, cbs)  # noqa: E731
            xs, ys = [a[:split] for a in xs], [t[:split] for t in ys]
            sw = _slice_weights(sw, slice(None, split))
        if class_weight is not None:  # Keras: the training part's labels only
            sw = self._sample_weights_of(ys, None, class_weight, "fit")
        n = len(xs[0])
        if given_batch_size is None and steps_per_epoch is not None:
            batch_size = math.ceil(n / steps_per_epoch)  # Keras' ArrayDataAdapter
        num_batches = math.ceil(n / batch_size)
        steps = steps_per_epoch or num_batches
        parallel = self._parallel
        if parallel is not None:  # distributed: the ranks agree, only rank 0 writes
            parallel.check_start(
                "fit", data=(n, [a.shape[1:] for a in xs + ys],
                             distributed.fingerprint(xs + ys)),
                validation_data=distributed.describe(validation_data),
                arguments=(batch_size, epochs, initial_epoch, shuffle, steps_per_epoch,
                           validation_split, validation_freq, validation_batch_size))
            callbacks, verbose = parallel.callbacks(callbacks), verbose if parallel.chief else 0
        cbs = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=self,
                           verbose=verbose, epochs=epochs, steps=steps, in_fit=True)
        self.stop_training = False
        generator = self._shuffle_generator()
        cbs.on_train_begin()
        if parallel is not None:
            parallel.broadcast_state("fit")
        # BackupAndRestore restored a backup: resume at its epoch, skipping the batches done
        initial_epoch, first_step = getattr(self, "_resume_at", None) or (initial_epoch, 0)
        self._resume_at = None
        logs = {}
        # Keras 3's EpochIterator: with steps_per_epoch, a pass over the data continues from
        # epoch to epoch; an epoch that reaches the end of the pass stops there (a warning
        # when steps_per_epoch asked for more), and the next epoch starts a new pass.
        order, seen = None, 0
        for epoch in range(initial_epoch, epochs):
            self._reset_metrics()
            cbs.on_epoch_begin(epoch)
            if seen == 0 or steps_per_epoch is None:
                order, seen = (generator.permutation(n) if shuffle else None), 0
            seen += first_step  # a resumed epoch skips the batches done before the backup
            for step in range(first_step, steps):
                if seen >= num_batches:
                    warnings.warn("fit: your input ran out of data; interrupting the epoch "
                                  f"after {step} of steps_per_epoch={steps_per_epoch} steps "
                                  "(the data holds batches for "
                                  f"{num_batches} steps per pass)", UserWarning, stacklevel=2)
                    break
                cbs.on_train_batch_begin(step)
                batch = slice(seen * batch_size, (seen + 1) * batch_size)
                seen += 1
                if parallel is not None:  # this rank's part of the global batch
                    size = min(batch.stop, n) - batch.start
                    start, stop = parallel.shard(size)
                    part = slice(batch.start + start, batch.start + stop)
                    finite = self._train_batch_parallel(
                        *((self._batch(xs, order, part, "x"), self._batch(ys, order, part, "y"),
                           self._batch_weights(sw, order, part)) if stop > start else
                          (None, None, None)), size)
                else:
                    finite = self._train_batch(self._batch(xs, order, batch, "x"),
                                               self._batch(ys, order, batch, "y"),
                                               self._batch_weights(sw, order, batch))
                logs = self._after_train_batch(finite, epoch, step, cbs)
                if self.stop_training:
                    break
            if seen >= num_batches:
                seen = 0
            logs = self._end_epoch(epoch, logs, val, validation_freq, cbs)
            first_step = 0
            if self.stop_training:
                break
        return self._end_fit(epochs > initial_epoch, logs, cbs)

    # ------------------------------------------------------------ fit's shared steps
    def _after_train_batch(self, finite, epoch, step, cbs):
        """The logs after a training batch; a non-finite one stops training (see
        _train_batch)."""
        logs = self._logs()
        if not finite:
            self._invalid_loss(f"fit: epoch {epoch + 1}, batch {step}")
            self.stop_training = True
        cbs.on_train_batch_end(step, logs)
        if self._parallel is not None:  # a callback on one rank stops them all
            self.stop_training = self._parallel.agree_stop(self.stop_training, step)
        return logs

    def _end_epoch(self, epoch, logs, val, validation_freq, cbs):
        """Validation (every validation_freq epochs), then the epoch's end: its logs."""
        if self._parallel is not None:  # the epoch's loss and metrics over every rank
            self._parallel.sync_metrics("fit: the epoch's metrics")
            logs = self._logs() if logs else logs
        if val is not None and (epoch + 1) % validation_freq == 0:
            val_logs = val(cbs)
            if val_logs is not None:
                logs = {**logs, **{"val_" + k: v for k, v in val_logs.items()}}
        cbs.on_epoch_end(epoch, logs)
        if self._parallel is not None:
            self.stop_training = self._parallel.agree_stop(self.stop_training, "epoch end")
        return logs

    def _end_fit(self, trained, logs, cbs):
        if trained:  # Keras: with use_ema, the weights become their moving averages
            self.optimizer.finalize_variable_values(self.trainable_weights)
        cbs.on_train_end(logs)
        return cbs.history

    # ------------------------------------------------------------ streams of batches
    def _validation(self, validation_data, validation_steps, batch_size):
        """fit's validation: a function of the callbacks that returns the validation logs
        (None when a stream had no batch left to give)."""
        fn = "fit: validation_data"
        if data_adapters.is_stream(validation_data):
            run = data_adapters.EpochSteps(data_adapters.Stream(validation_data, fn),
                                           validation_steps)
            return lambda cbs: self._evaluate_stream(run, cbs, fn, in_fit=True)
        if validation_steps is not None:
            raise ValueError("fit: validation_steps is supported for validation_data given as "
                             "a stream of batches (a generator, dataset or PyDataset) only")
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("fit: validation_data must be a tuple (x_val, y_val) or "
                             "(x_val, y_val, val_sample_weight), or a stream of batches")
        val_x, val_y, val_sw = (tuple(validation_data) + (None,))[:3]
        val_xs, val_ys = self._prepare(val_x, val_y, what="fit: validation_data's x and y")
        val_sws = self._sample_weights_of(val_ys, val_sw, None,
                                          "fit: validation_data's sample_weight")
        return lambda cbs: self._evaluate(val_xs, val_ys, val_sws, batch_size, cbs)

    def _stream_batch(self, batch, index, fn, class_weight=None, reuse=False):
        """One batch of a stream as the step takes it: (xs, ys, per-output weights); a batch
        the model cannot take is an error that names the batch. reuse (fit's training
        batches): x arrays of another dtype (uint8 images) are cast into reused buffers."""
        x, y, sw = data_adapters.unpack(batch, fn, index)
        if y is None:
            raise ValueError(f"{fn}: batch {index} of the data holds no targets; to train or "
                             "evaluate, a batch must be (x, y) or (x, y, sample_weight)")
        if reuse:
            x = self._cast_into_buffers(x)
        try:
            xs, ys = self._prepare(x, y)
            return xs, ys, self._sample_weights_of(ys, sw, class_weight, fn)
        except (ValueError, TypeError) as error:
            raise _batch_error(error, fn, index) from error

    def _cast_into_buffers(self, x):
        """x with each numeric array that is not float32 cast into a float32 buffer kept
        while the batch size stays (as fit's gathers are); anything else as it is, for
        _prepare to convert or refuse."""
        def cast(a, name):
            if (not isinstance(a, np.ndarray) or a.dtype == np.float32 or a.ndim == 0
                    or a.dtype.kind not in "fiub" or len(a) == 0):
                return a
            out = self._step_buffers(len(a))(name, a.shape, np.float32)
            np.copyto(out, a, casting="unsafe")
            return out
        if isinstance(x, dict):
            return {key: cast(a, f"stream_x_{key}") for key, a in x.items()}
        if isinstance(x, (list, tuple)) and all(isinstance(a, np.ndarray) for a in x):
            return type(x)(cast(a, f"stream_x{i}") for i, a in enumerate(x))
        return cast(x, "stream_x")

    def _stream_x(self, batch, index, fn):
        x, _, _ = data_adapters.unpack(batch, fn, index)  # predict: targets are not read
        try:
            return self._prepare_x(x)
        except (ValueError, TypeError) as error:
            raise _batch_error(error, fn, index) from error

    def _fit_stream(self, x, y, *, epochs, verbose, callbacks, validation_split,
                    validation_data, shuffle, class_weight, sample_weight, initial_epoch,
                    steps_per_epoch, validation_steps, validation_freq, batch_size,
                    validation_batch_size):
        """fit on a stream of batches (Keras ignores batch_size for one, as cnnkit does)."""
        if shuffle not in (True, False):
            raise ValueError(f"fit: shuffle must be True or False, got {shuffle!r}")
        verbose = _verbose(verbose, "fit")
        epochs = _count(epochs, "epochs", "fit")
        initial_epoch = _count(initial_epoch, "initial_epoch", "fit")
        validation_freq = _batch_size(validation_freq, "fit", "validation_freq")
        data_adapters.reject("fit", x, y=y, sample_weight=sample_weight)
        if validation_split:
            raise ValueError("fit: validation_split is only supported for array data; with x "
                             f"given as a {data_adapters.kind_of(x)}, pass validation_data")
        if validation_batch_size is not None:
            validation_batch_size = _batch_size(validation_batch_size, "fit",
                                                "validation_batch_size")
        stream = data_adapters.Stream(x, "fit", shuffle, self._shuffle_generator)
        train = data_adapters.EpochSteps(stream, steps_per_epoch)
        try:
            if not self.built:  # built from the first batch, before the callbacks see it
                first = train.peek()
                if first is None:
                    raise ValueError(f"fit: x (a {stream.kind}) yielded no batches")
                self._stream_batch(first, 0, "fit", class_weight)
            val = None if validation_data is None else self._validation(
                validation_data, validation_steps,
                validation_batch_size or _batch_size(batch_size, "fit"))
            return self._fit_stream_epochs(stream, train, val, verbose, callbacks, epochs,
                                           initial_epoch, validation_freq, class_weight,
                                           validation_data)
        finally:
            stream.close()

    def _fit_stream_epochs(self, stream, train, val, verbose, callbacks, epochs, initial_epoch,
                           validation_freq, class_weight, val_data=None):
        parallel = self._parallel
        if parallel is not None:  # distributed: the ranks agree, only rank 0 writes
            parallel.check_start("fit", data=(stream.kind, train.steps),
                                 validation_data=distributed.describe(val_data),
                                 arguments=(epochs, initial_epoch, train.steps_per_epoch,
                                            validation_freq))
            callbacks, verbose = parallel.callbacks(callbacks), verbose if parallel.chief else 0
        cbs = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=self,
                           verbose=verbose, epochs=epochs, steps=train.steps, in_fit=True)
        self.stop_training = False
        cbs.on_train_begin()
        if parallel is not None:
            parallel.broadcast_state("fit")
        initial_epoch, first_step = getattr(self, "_resume_at", None) or (initial_epoch, 0)
        self._resume_at = None
        logs = {}
        for epoch in range(initial_epoch, epochs):
            self._reset_metrics()
            batches = _started(train.epoch())
            if batches is None and parallel is not None:
                parallel.agree_batch(None, None, "fit", 0)  # an error unless none has a batch
            if batches is None:  # read to its end by the epochs before: nothing to train on
                if epoch == initial_epoch:
                    raise ValueError(f"fit: x (a {stream.kind}) yielded no batches")
                warnings.warn(f"fit: your input ran out of data; training stops before epoch "
                              f"{epoch + 1} of {epochs}. A {stream.kind} is read once: make "
                              "it yield at least steps_per_epoch * epochs batches, or pass a "
                              "dataset that can be iterated again", UserWarning, stacklevel=3)
                break
            cbs.on_epoch_begin(epoch)
            step = -1
            for step, batch in batches:
                if step < first_step:
                    continue  # a resumed epoch skips the batches done before the backup
                cbs.on_train_batch_begin(step)
                data = self._stream_batch(batch, step, "fit", class_weight, reuse=True)
                if parallel is not None:  # this rank's part of the batch every rank read
                    size = len(data[0][0])
                    parallel.agree_batch(size, distributed.fingerprint(data[0] + data[1]),
                                         "fit", step)
                    finite = self._train_batch_parallel(
                        *_part(data, *parallel.shard(size)), size)
                else:
                    finite = self._train_batch(*data)
                logs = self._after_train_batch(finite, epoch, step, cbs)
                if self.stop_training:
                    break
            if parallel is not None:  # every rank's epoch ends at the same batch
                parallel.agree_batch(None, None, "fit", step + 1)
            batches.close()  # ends the epoch (the PyDataset's on_epoch_end) after a break
            if train.ran_out:
                warnings.warn(f"fit: your input ran out of data; interrupting the epoch after "
                              f"{step + 1} of steps_per_epoch={train.steps_per_epoch} steps",
                              UserWarning, stacklevel=3)
            if cbs.params.get("steps") is None and train.steps is not None:
                cbs.params["steps"] = train.steps  # learned from the first pass, as Keras' bar
            logs = self._end_epoch(epoch, logs, val, validation_freq, cbs)
            first_step = 0
            if self.stop_training:
                break
        return self._end_fit(epochs > initial_epoch, logs, cbs)

    def _evaluate_stream(self, run, cbs, fn, in_fit=False):
        """The logs over one pass (or `steps` batches) of a stream; None, with a warning in
        fit, when it had no batch to give."""
        run.restart()  # as Keras: each evaluation starts a new pass (an iterator reads on)
        try:
            batches = _started(run.epoch())
            parallel = self._parallel
            if batches is None and parallel is not None:
                parallel.agree_batch(None, None, fn, 0)  # an error unless none has a batch
            if batches is None:
                if not in_fit:
                    raise ValueError(f"{fn}: x (a {run.stream.kind}) yielded no batches")
                warnings.warn(f"{fn}: your validation data ran out; this epoch has no "
                              "validation logs", UserWarning, stacklevel=4)
                return None
            self._reset_metrics()
            cbs.on_test_begin()
            logs, step = {}, -1
            for step, batch in batches:
                cbs.on_test_batch_begin(step)
                data = self._stream_batch(batch, step, fn)
                if parallel is not None:  # this rank's part of the batch every rank read
                    size = len(data[0][0])
                    parallel.agree_batch(size, distributed.fingerprint(data[0] + data[1]),
                                         fn, step)
                    data = _part(data, *parallel.shard(size))
                if data[0] is not None:
                    self._test_batch(*data)
                logs = self._logs()
                cbs.on_test_batch_end(step, logs)
            if parallel is not None:
                parallel.agree_batch(None, None, fn, step + 1)
                parallel.sync_metrics(f"{fn}: the metrics")
                logs = self._logs()
            if run.ran_out:
                warnings.warn(f"{fn}: your input ran out of data after {step + 1} of "
                              f"steps={run.steps_per_epoch} steps", UserWarning, stacklevel=4)
            cbs.on_test_end(logs)
            return logs
        finally:
            run.stream.close()

    def _predict_stream(self, x, steps, verbose, callbacks):
        run = data_adapters.EpochSteps(data_adapters.Stream(x, "predict"), steps)
        try:
            batches = _started(run.epoch())
            if batches is None:
                raise ValueError(f"predict: x (a {run.stream.kind}) yielded no batches")
            cbs = CallbackList(callbacks, add_progbar=verbose != 0, model=self,
                               verbose=verbose, epochs=1, steps=run.steps)
            cbs.on_predict_begin()
            parts = []
            for step, batch in batches:
                cbs.on_predict_batch_begin(step)
                xs = self._stream_x(batch, step, "predict")
                with self._exclusive():  # the outputs live in workspaces: copied under the lock
                    outs = self._predicted(xs)
                parts.append(outs)
                cbs.on_predict_batch_end(step, {"outputs": self._pack_outputs(outs)})
            if run.ran_out:
                warnings.warn(f"predict: your input ran out of data after {len(parts)} of "
                              f"steps={steps} steps", UserWarning, stacklevel=3)
            cbs.on_predict_end()
        finally:
            run.stream.close()
        return self._pack_outputs([np.concatenate(column) for column in zip(*parts)])

    # ------------------------------------------------------------ evaluate and predict
    def _evaluate(self, xs, ys, sw, batch_size, cbs):
        """The logs over arrays; distributed, each rank takes its part of every batch and the
        metrics are summed over the ranks at the end."""
        self._reset_metrics()
        n = len(xs[0])
        steps = math.ceil(n / batch_size)
        parallel = self._parallel
        cbs.on_test_begin()
        logs = {}
        for step in range(steps):
            cbs.on_test_batch_begin(step)
            batch = slice(step * batch_size, (step + 1) * batch_size)
            if parallel is not None:
                start, stop = parallel.shard(min(batch.stop, n) - batch.start)
                batch = slice(batch.start + start, batch.start + stop)
            if batch.stop > batch.start:
                self._test_batch([a[batch] for a in xs], [t[batch] for t in ys],
                                 _slice_weights(sw, batch))
            logs = self._logs()
            cbs.on_test_batch_end(step, logs)
        if parallel is not None:
            parallel.sync_metrics("evaluate: the metrics")
            logs = self._logs()
        cbs.on_test_end(logs)
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False):
        """The loss (and metrics) over x: loss, or [loss, *metrics], or a dict. Under a
        distribution, the ranks split every batch and sum the metrics."""
        self._require("evaluate")
        return self._distributed(self._evaluate_call, dict(
            x=x, y=y, batch_size=batch_size, verbose=verbose, sample_weight=sample_weight,
            steps=steps, callbacks=callbacks, return_dict=return_dict))

    def _evaluate_call(self, x, y, batch_size, verbose, sample_weight, steps, callbacks,
                       return_dict):
        if self._parallel is not None and not self._parallel.chief:
            verbose = 0
        if data_adapters.is_stream(x):
            verbose = _verbose(verbose, "evaluate")
            data_adapters.reject("evaluate", x, y=y, sample_weight=sample_weight)
            if steps is not None:
                steps = _batch_size(steps, "evaluate", "steps")
            run = data_adapters.EpochSteps(data_adapters.Stream(x, "evaluate"), steps)
            cbs = CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose,
                               epochs=1, steps=run.steps)
            logs = self._evaluate_stream(run, cbs, "evaluate")
            return self._returned(logs, return_dict)
        if steps is not None:
            raise ValueError("evaluate: steps is supported for x given as a stream of batches "
                             "(a generator, dataset or PyDataset) only")
        verbose = _verbose(verbose, "evaluate")
        batch_size = _batch_size(batch_size, "evaluate")
        xs, ys = self._prepare(x, y)
        sw = self._sample_weights_of(ys, sample_weight, None, "evaluate")
        cbs = CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose,
                           epochs=1, steps=math.ceil(len(xs[0]) / batch_size))
        logs = self._evaluate(xs, ys, sw, batch_size, cbs)
        return self._returned(logs, return_dict)

    def _returned(self, logs, return_dict):
        if return_dict:
            return logs
        values = [logs[name] for name in self.metrics_names]
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose=0, steps=None, callbacks=None):
        """The model's outputs for x, computed batch by batch (training=False): an array, or
        a list (a dict) of them for a model of several outputs."""
        verbose = _verbose(verbose, "predict")
        if data_adapters.is_stream(x):
            if steps is not None:
                steps = _batch_size(steps, "predict", "steps")
            return self._predict_stream(x, steps, verbose, callbacks)
        if steps is not None:
            raise ValueError("predict: steps is supported for x given as a stream of batches "
                             "(a generator, dataset or PyDataset) only")
        batch_size = _batch_size(batch_size, "predict")
        xs = self._prepare_x(x)
        n = len(xs[0])
        steps = math.ceil(n / batch_size)
        cbs = CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose,
                           epochs=1, steps=steps)
        cbs.on_predict_begin()
        results = None
        for step in range(steps):
            cbs.on_predict_batch_begin(step)
            start = step * batch_size
            with self._exclusive():  # the outputs live in workspaces: copied before letting go
                outs = self._run(self._step_state(False),
                                 [a[start:start + batch_size] for a in xs], False)
                if results is None:  # allocated once the first batch shows the output shapes
                    results = [np.empty((n,) + o.shape[1:], dtype=o.dtype) for o in outs]
                for r, o in zip(results, outs):
                    r[start:start + len(o)] = o
            done = [r[start:start + len(outs[0])] for r in results]
            cbs.on_predict_batch_end(step, {"outputs": self._pack_outputs(done)})
        cbs.on_predict_end()
        return self._pack_outputs(results)

    # ------------------------------------------------------------ single batches
    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One update on this batch; returns its loss (and metrics), as Keras."""
        self._require("train_on_batch")
        if distributed.begin(self) is not None:  # each rank would update its own copy
            raise NotImplementedError(
                "train_on_batch is not distributed: under a cnnkit.distribute.DataParallel of "
                "several ranks, train with fit (or call train_on_batch outside the scope, on "
                "a model without the distribution)")
        xs, ys = self._prepare(x, y)
        sw = self._sample_weights_of(ys, sample_weight, class_weight, "train_on_batch")
        self._reset_metrics()
        if not self._train_batch(xs, ys, sw):
            self._invalid_loss("train_on_batch")
        return self._returned(self._logs(), return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        self._require("test_on_batch")
        xs, ys = self._prepare(x, y)
        sw = self._sample_weights_of(ys, sample_weight, None, "test_on_batch")
        self._reset_metrics()
        self._test_batch(xs, ys, sw)
        return self._returned(self._logs(), return_dict)

    def predict_on_batch(self, x):
        xs = self._prepare_x(x)
        with self._exclusive():
            outs = self._predicted(xs)
        return self._pack_outputs(outs)

    def _predicted(self, xs):
        """The outputs on the batch xs, as new arrays: a slice of the batch per thread where
        the model allows it (engine/split_inference.py), else the whole batch in the layers'
        reused workspaces (no fresh pages for every activation of every call), copied out.
        The caller holds the lock."""
        state = self._step_state(False)
        outs = inference_plan.plan_predict(self, state, xs)
        if outs is None:
            outs = split_inference.split_predict(self, state, xs)
        if outs is None:
            outs = [o.copy() for o in self._run(state, xs, False)]
            state.ran = True
        return outs


# ---------------------------------------------------------------- compile's structures

def _leaves(value):
    if isinstance(value, dict) and "class_name" not in value:  # by output name; not a config
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, (list, tuple)):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def _map_structure(value, fn, what):
    """A loss (or a list / dict of them) with each leaf converted by fn."""
    if value is None:
        return None
    if isinstance(value, dict):
        return {k: (None if v is None else fn(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [None if v is None else fn(v) for v in value]
    return fn(value)


def _metrics_per_output(ids, names, what):
    """compile's metrics (or weighted_metrics) as one list of metric ids per output."""
    several = len(names) > 1
    if isinstance(ids, (list, tuple)) and not several:
        ids = [list(ids)]
    elif isinstance(ids, (list, tuple)) and several and any(
            not isinstance(m, (list, tuple)) and m is not None for m in ids):
        raise ValueError(f"compile: {what}={ids!r} for a model with outputs {names}: give a "
                         "list of lists (one per output) or a dict by output name, as in Keras")
    return [list(m or []) for m in _match(ids, names, what, several)]


def _match(value, names, what, several):
    """compile's `what` (one value, a list, or a dict by output name) as one entry per output."""
    if isinstance(value, dict):
        unknown = [k for k in value if k not in names]
        if unknown:
            raise ValueError(f"compile: {what} has keys {unknown} that are not outputs of the "
                             f"model; its outputs are {names}")
        return [value.get(n) for n in names]
    if isinstance(value, (list, tuple)) and (several or what.endswith("metrics")):
        if len(value) != len(names):
            raise ValueError(f"compile: {what} has {len(value)} entries but the model has "
                             f"{len(names)} outputs {names}")
        return list(value)
    if isinstance(value, (list, tuple)) and len(value) == 1 and not what.endswith("metrics"):
        return list(value)
    if isinstance(value, (list, tuple)) and not what.endswith("metrics"):
        raise ValueError(f"compile: {what} has {len(value)} entries but the model has one "
                         f"output")
    return [value] * len(names)


# ---------------------------------------------------------------- streams

def _started(batches):
    """The epoch's (step, batch) iterator with its first batch already read, or None (and the
    epoch ended) when it has none: fit then knows before on_epoch_begin."""
    first = next(batches, None)
    if first is None:
        batches.close()
        return None

    def chained():
        try:
            yield first
            yield from batches
        finally:
            batches.close()
    return chained()


def _batch_error(error, fn, index):
    """A batch the model cannot take: the same kind of error, naming the batch."""
    kind = TypeError if isinstance(error, TypeError) else ValueError
    return kind(f"{fn}: batch {index} of the data: {error}")


# ---------------------------------------------------------------- argument checks

def _part(data, start, stop):
    """(xs, ys, sample weights) of samples start to stop of a batch; Nones when it is empty."""
    if stop <= start:
        return None, None, None
    xs, ys, sws = data
    part = slice(start, stop)
    return [a[part] for a in xs], [t[part] for t in ys], _slice_weights(sws, part)


def _slice_weights(sws, part):
    return None if sws is None else [None if w is None else w[part] for w in sws]


def _checked_weights(w, fn, name):
    """Sample or class weights: finite and >= 0 (a negative weight would train the model
    away from its targets; Keras does not check, cnnkit refuses)."""
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{fn}: {name} must be finite, got NaN or infinite weights")
    if w.size and w.min() < 0:
        raise ValueError(f"{fn}: {name} must be >= 0, got {float(w.min())}")
    return w


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
