"""fit, evaluate and predict on streams of batches, as Keras 3's data adapters take them: a
generator or iterator, an iterable dataset (with or without len()), a cnnkit.utils.PyDataset
(workers 1 and 3); steps_per_epoch and validation_steps, class_weight on a stream, the
progress bar's target, the errors, an exception mid-epoch, Keras parity of the steps run and
the logged keys, and that a warm step on a stream allocates no more than on arrays."""
import io
import json
import os
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest

import cnnkit
from cnnkit import callbacks, data_adapters, layers, models, optimizers
from cnnkit.utils import PyDataset

RNG = np.random.default_rng(1)
X = RNG.random((12, 5)).astype(np.float32)
LABELS = RNG.integers(0, 3, 12)
W = RNG.uniform(0.2, 2.0, 12).astype(np.float32)
BS = 5  # 12 samples: batches of 5, 5 and 2 (the last one smaller)
CW = {0: 1.0, 1: 3.0, 2: 0.25}


def model(seed=0, metrics=("accuracy",)):
    cnnkit.utils.set_random_seed(seed)
    m = models.Sequential([layers.Input((5,)), layers.Dense(3, activation="softmax")])
    m.compile(optimizer=optimizers.SGD(0.5), loss="sparse_categorical_crossentropy",
              metrics=list(metrics))
    return m


def batches(with_weights=False, x=X, y=LABELS):
    for start in range(0, len(x), BS):
        part = slice(start, start + BS)
        yield (x[part], y[part], W[part]) if with_weights else (x[part], y[part])


def on_arrays(epochs=1, **kwargs):
    """The reference: fit on the arrays, unshuffled, in the same batches."""
    m = model()
    history = m.fit(X, LABELS, batch_size=BS, epochs=epochs, shuffle=False, verbose=0, **kwargs)
    return m, history


def assert_same_weights(a, b):
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def assert_same_history(a, b):
    assert a.history.keys() == b.history.keys()
    for key in a.history:
        np.testing.assert_allclose(a.history[key], b.history[key], rtol=1e-6)


class Listed:
    """An iterable dataset: a new pass per iter(), len() when asked to define it."""

    def __init__(self, with_len=True):
        self.passes = 0
        self.with_len = with_len

    def __iter__(self):
        self.passes += 1
        return batches()

    def __len__(self):
        if not self.with_len:
            raise TypeError("unknown length")
        return 3


class Batches(PyDataset):
    def __init__(self, x=X, y=LABELS, count=None, fail_at=None, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.count, self.fail_at = x, y, count, fail_at
        self.read, self.threads = [], set()
        self.epochs_begun = self.epochs_ended = 0

    def __len__(self):
        return self.count or -(-len(self.x) // BS)

    def __getitem__(self, index):
        if index == self.fail_at:
            raise KeyError(f"batch {index} is missing")
        self.read.append(index)
        self.threads.add(threading.current_thread().name)
        part = slice(index * BS, (index + 1) * BS)
        return self.x[part], self.y[part]

    def on_epoch_begin(self):
        self.epochs_begun += 1

    def on_epoch_end(self):
        self.epochs_ended += 1


class Steps(callbacks.Callback):
    """The steps of each epoch, and the progress bar's target (params['steps']) at each
    epoch's start."""

    def on_train_begin(self, logs=None):
        self.steps, self.targets = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.steps.append(0)
        self.targets.append(self.params.get("steps"))

    def on_train_batch_end(self, batch, logs=None):
        self.steps[-1] += 1


def quiet_fit(m, x, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return m.fit(x, verbose=0, **kwargs)


# ---------------------------------------------------------------- same results as arrays

def test_a_generator_trains_as_the_arrays_in_the_same_batches():
    want, want_history = on_arrays()
    m = model()
    history = quiet_fit(m, batches())
    assert_same_weights(m, want)
    assert_same_history(history, want_history)


@pytest.mark.parametrize("with_len", [True, False], ids=["len", "no_len"])
def test_an_iterable_dataset_is_iterated_again_each_epoch(with_len):
    want, want_history = on_arrays(epochs=3)
    data, steps, m = Listed(with_len), Steps(), model()
    history = quiet_fit(m, data, epochs=3, callbacks=[steps])
    assert data.passes == 3 and steps.steps == [3, 3, 3]
    assert_same_weights(m, want)
    assert_same_history(history, want_history)
    # the progress bar knows the steps from len(), else learns them from the first epoch
    assert steps.targets == ([3, 3, 3] if with_len else [None, 3, 3])


@pytest.mark.parametrize("workers", [1, 3])
def test_a_py_dataset_trains_as_the_arrays(workers):
    want, want_history = on_arrays(epochs=2)
    data, m = Batches(workers=workers, max_queue_size=2), model()
    history = m.fit(data, epochs=2, shuffle=False, verbose=0)
    assert_same_weights(m, want)
    assert_same_history(history, want_history)
    assert sorted(data.read) == [0, 0, 1, 1, 2, 2]
    assert data.epochs_begun == data.epochs_ended == 2
    main = threading.current_thread().name
    assert (data.threads == {main}) if workers == 1 else (main not in data.threads)


def test_a_py_dataset_is_shuffled_by_batch_with_shuffle_true():
    """Keras shuffles the order of a PyDataset's batches each epoch (from cnnkit's own
    generator here, so that set_random_seed repeats it)."""
    orders = []
    for _ in range(2):
        data = Batches(x=np.repeat(X, 4, axis=0), y=np.repeat(LABELS, 4))
        model(seed=3).fit(data, epochs=3, verbose=0)
        orders.append(data.read)
    assert orders[0] == orders[1]
    epochs = [orders[0][i:i + 10] for i in range(0, 30, 10)]
    assert all(sorted(e) == list(range(10)) for e in epochs)
    assert any(e != list(range(10)) for e in epochs)


def test_class_weight_on_a_stream_weights_each_batch_by_its_labels():
    want, _ = on_arrays(epochs=2, class_weight=CW)
    m = model()
    quiet_fit(m, Listed(), epochs=2, class_weight=CW)
    assert_same_weights(m, want)
    unweighted, _ = on_arrays(epochs=2)
    assert not np.allclose(m.get_weights()[0], unweighted.get_weights()[0])


def test_sample_weights_in_the_batches_train_as_sample_weight():
    want, want_history = on_arrays(sample_weight=W)
    m = model()
    history = quiet_fit(m, batches(with_weights=True))
    assert_same_weights(m, want)
    assert_same_history(history, want_history)


def test_several_inputs_and_outputs_as_dicts_and_lists():
    def two_way():
        cnnkit.utils.set_random_seed(0)
        a, b = layers.Input((5,), name="a"), layers.Input((5,), name="b")
        joined = layers.Concatenate()([a, b])
        out1 = layers.Dense(3, activation="softmax", name="p")(joined)
        out2 = layers.Dense(1, name="q")(joined)
        m = cnnkit.Model([a, b], [out1, out2])
        m.compile(optimizer=optimizers.SGD(0.1), loss=["sparse_categorical_crossentropy", "mse"])
        return m

    x2, q = X[::-1].copy(), X.sum(1, keepdims=True)
    want = two_way()
    want_history = want.fit({"a": X, "b": x2}, [LABELS, q], batch_size=BS, shuffle=False,
                            verbose=0)

    def stream():
        for s in range(0, 12, BS):
            yield {"a": X[s:s + BS], "b": x2[s:s + BS]}, {"p": LABELS[s:s + BS], "q": q[s:s + BS]}
    m = two_way()
    history = quiet_fit(m, stream())
    assert_same_weights(m, want)
    assert_same_history(history, want_history)
    predicted = m.predict(([X[s:s + BS], x2[s:s + BS]],) for s in range(0, 12, BS))
    for got, expected in zip(predicted, m.predict([X, x2], verbose=0)):
        np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_a_model_without_input_is_built_from_the_first_batch_which_still_trains():
    def unbuilt():
        cnnkit.utils.set_random_seed(0)
        m = models.Sequential([layers.Dense(3, activation="softmax")])
        m.compile(optimizer=optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
        return m
    want = unbuilt()
    want.fit(X, LABELS, batch_size=BS, shuffle=False, verbose=0)
    m, steps = unbuilt(), Steps()
    quiet_fit(m, batches(), callbacks=[steps])  # a generator: its first batch is read once
    assert steps.steps == [3]
    assert_same_weights(m, want)


@pytest.mark.parametrize("dtype", [np.float64, np.uint8, np.int32])
def test_batches_of_other_dtypes_train_as_those_arrays(dtype):
    x = (X * 100).astype(dtype)
    want = model()
    want.fit(x, LABELS, batch_size=BS, epochs=2, shuffle=False, verbose=0)
    m = model()
    data = [(x[s:s + BS], LABELS[s:s + BS]) for s in range(0, 12, BS)]
    quiet_fit(m, _Again(data), epochs=2)
    assert_same_weights(m, want)
    assert [a.dtype for a, _ in data] == [np.dtype(dtype)] * 3  # the user's batches untouched


class _Again:
    def __init__(self, items):
        self.items = items

    def __iter__(self):
        return iter(self.items)


def test_arrays_and_array_likes_keep_the_array_path():
    for x in (X, list(X), range(3), {"a": X}, 3.0):
        assert not data_adapters.is_stream(x)
    for x in (batches(), iter([]), Listed(), Batches()):
        assert data_adapters.is_stream(x)


# ---------------------------------------------------------------- steps

def test_the_progress_bar_learns_the_steps_of_a_stream_of_unknown_length(capsys):
    """As Keras: while the first epoch runs the bar shows N/Unknown (on a terminal); its final
    line, and every later epoch, count the steps the first epoch took."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model().fit(Listed(with_len=False), epochs=2, verbose=1)
    first, second = capsys.readouterr().out.split("Epoch 2/2")
    assert "3/3 [====" in first and "3/3 [====" in second
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model().fit(Listed(with_len=False), epochs=1, verbose=2)
    assert "3/3 - " in capsys.readouterr().out
    bar = callbacks.Progbar(None, verbose=1, file=io.StringIO())
    bar._dynamic = True
    bar.update(2)
    assert "2/Unknown" in bar.file.getvalue()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model().fit(Listed(), epochs=1, verbose=1)
    assert "3/3 [====" in capsys.readouterr().out


def test_steps_per_epoch_with_an_endless_generator_reads_on_across_epochs():
    served = []

    def endless():
        i = 0
        while True:
            served.append(i % 3)
            yield next(b for k, b in enumerate(batches()) if k == i % 3)
            i += 1
    steps, m = Steps(), model()
    history = quiet_fit(m, endless(), epochs=3, steps_per_epoch=2, callbacks=[steps])
    assert steps.steps == [2, 2, 2] and steps.targets == [2, 2, 2]
    assert served[:6] == [0, 1, 2, 0, 1, 2]  # epoch 2 starts where epoch 1 stopped
    assert len(history.history["loss"]) == 3


def test_a_finite_iterator_runs_out_with_a_warning():
    steps, m = Steps(), model()
    with pytest.warns(UserWarning, match="ran out of data"):
        history = m.fit(iter(list(batches())), epochs=3, steps_per_epoch=2, shuffle=False,
                        verbose=0, callbacks=[steps])
    assert steps.steps == [2, 1]  # then nothing is left: training stops
    assert len(history.history["loss"]) == 2


def test_a_generator_read_to_its_end_stops_training_after_that_epoch():
    steps, m = Steps(), model()
    with pytest.warns(UserWarning, match="ran out of data"):
        quiet = m.fit(batches(), epochs=3, shuffle=False, verbose=0, callbacks=[steps])
    assert steps.steps == [3] and len(quiet.history["loss"]) == 1


def test_steps_per_epoch_on_a_py_dataset_continues_the_pass():
    data, steps = Batches(), Steps()
    with pytest.warns(UserWarning, match="ran out of data"):
        model().fit(data, epochs=3, steps_per_epoch=2, shuffle=False, verbose=0,
                    callbacks=[steps])
    assert data.read == [0, 1, 2, 0, 1]
    assert steps.steps == [2, 1, 2]  # an epoch that meets the end of the pass stops there


def test_validation_data_as_a_stream_with_validation_steps():
    m = model()
    history = quiet_fit(m, Listed(), epochs=2, validation_data=Listed(), validation_steps=2)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    two = (X[:2 * BS], LABELS[:2 * BS])
    want = m.evaluate(*two, batch_size=BS, verbose=0, return_dict=True)
    assert history.history["val_loss"][-1] == pytest.approx(want["loss"], rel=1e-6)
    # a stream in fit on arrays too
    h = model().fit(X, LABELS, batch_size=BS, verbose=0, validation_data=Batches())
    assert "val_loss" in h.history


def test_evaluate_and_predict_on_streams_match_arrays():
    m = model()
    quiet_fit(m, batches())
    want = m.evaluate(X, LABELS, batch_size=BS, verbose=0, return_dict=True)
    for stream in (batches(), Listed(), Listed(False), Batches(workers=3)):
        got = m.evaluate(stream, verbose=0, return_dict=True)
        assert got == pytest.approx(want, rel=1e-6)
    two = m.evaluate(Listed(), steps=2, verbose=0, return_dict=True)
    assert two == pytest.approx(m.evaluate(X[:10], LABELS[:10], batch_size=BS, verbose=0,
                                           return_dict=True), rel=1e-6)
    expected = m.predict(X, verbose=0)
    bare = (X[s:s + BS] for s in range(0, 12, BS))  # x alone
    for stream in (bare, batches(), Listed(), Batches(workers=3)):
        np.testing.assert_allclose(m.predict(stream, verbose=0), expected, rtol=1e-6)

    def endless():
        while True:
            yield (X[:4],)
    assert m.predict(endless(), steps=3, verbose=0).shape == (12, 3)


# ---------------------------------------------------------------- errors

def gen():
    return batches()


@pytest.mark.parametrize("call, error, words", [
    (lambda m: m.fit(gen(), LABELS), ValueError, ["`y` should not be passed", "generator"]),
    (lambda m: m.fit(Batches(), sample_weight=W), ValueError, ["sample_weight", "PyDataset"]),
    (lambda m: m.evaluate(Listed(), LABELS), ValueError, ["`y` should not be passed"]),
    (lambda m: m.fit(gen(), validation_split=0.2), ValueError, ["validation_split", "array"]),
    (lambda m: m.fit(X, LABELS, validation_data=(X, LABELS), validation_steps=2), ValueError,
     ["validation_steps", "stream"]),
    (lambda m: m.fit(iter([(X[:4],)])), ValueError, ["batch 0", "no targets"]),
    (lambda m: m.fit(iter([(X[:4], LABELS[:4], W[:4], W[:4])])), ValueError,
     ["batch 0", "4 items"]),
    (lambda m: m.fit(iter([])), ValueError, ["no batches"]),
    (lambda m: m.predict(iter([])), ValueError, ["no batches"]),
    (lambda m: m.fit(gen(), steps_per_epoch=0), ValueError, ["steps_per_epoch"]),
    (lambda m: m.evaluate(gen(), steps=-1), ValueError, ["steps"]),
    (lambda m: m.fit(iter([(X[:4], LABELS[:4], W[:4])]), class_weight=CW), ValueError,
     ["batch 0", "class_weight and sample_weight"]),
    (lambda m: m.fit(Batches(), class_weight=[1.0]), TypeError, ["batch 0", "class_weight"]),
    (lambda m: m.fit(iter([(X[:4], LABELS[:4]), (X[:4, :3], LABELS[:4])])), ValueError,
     ["batch 1", "incompatible"]),
    (lambda m: m.fit(iter([(X[:4], LABELS[:4]), (X[:4].astype(str), LABELS[:4])])), TypeError,
     ["batch 1", "dtype"]),
    (lambda m: m.fit(iter([(X[:4], LABELS[:4]), (X[:4], LABELS[:3])])), ValueError,
     ["batch 1", "same number of samples"]),
    (lambda m: m.evaluate(iter([(X[:4], LABELS[:4] + 3)])), ValueError, ["batch 0", "labels"]),
    (lambda m: m.predict(iter([X[:4], X[:4, :2]])), ValueError, ["batch 1", "incompatible"]),
])
def test_errors(call, error, words):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error) as info:
            call(model())
    for word in words:
        assert word in str(info.value), str(info.value)


def test_py_dataset_arguments():
    with pytest.raises(NotImplementedError, match="use_multiprocessing"):
        Batches(use_multiprocessing=True)
    for bad in (dict(workers=0), dict(workers=1.5), dict(max_queue_size=0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Batches(**bad)
    assert cnnkit.utils.Sequence is PyDataset


def test_shuffle_is_ignored_for_a_generator_with_keras_warning():
    with pytest.warns(UserWarning, match="`shuffle=True` was passed, but will be ignored"):
        model().fit(batches(), verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model().fit(batches(), shuffle=False, verbose=0)
        model().fit(Batches(), verbose=0)  # shuffled by batch: no warning


# ---------------------------------------------------------------- an exception mid-epoch

def test_a_generator_that_raises_stops_fit_with_its_exception_and_the_last_weights():
    class Broken(Exception):
        pass
    cause = Broken("the disk went away")

    def failing():
        for k, batch in enumerate(batches()):
            if k == 2:
                raise cause
            yield batch
    m = model()
    quiet_fit(m, Listed(), epochs=1)  # a finished epoch ...
    want = [w.copy() for w in m.get_weights()]
    reference = model()
    quiet_fit(reference, Listed(), epochs=1)
    quiet_fit(reference, iter(list(batches())[:2]))  # ... and two more steps
    with pytest.raises(Broken) as info:
        quiet_fit(m, failing(), epochs=3)
    assert info.value is cause
    assert_same_weights(m, reference)
    assert not np.allclose(want[0], m.get_weights()[0])


@pytest.mark.parametrize("workers", [1, 3])
def test_a_py_dataset_that_raises_stops_fit_and_its_threads(workers):
    before = threading.active_count()
    data, m = Batches(fail_at=1, workers=workers), model()
    m.fit(iter(list(batches())[:1]), shuffle=False, verbose=0)  # batch 0 only
    m2 = model()
    with pytest.raises(KeyError, match="batch 1 is missing"):
        m2.fit(data, shuffle=False, verbose=0)
    assert_same_weights(m2, m)
    assert threading.active_count() == before  # the pool was shut down


# ---------------------------------------------------------------- allocations

@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_a_warm_step_on_a_stream_of_a_fixed_batch_size_allocates_little(dtype):
    """float32 batches are not copied; others (uint8 images) are cast into reused buffers."""
    from test_step_allocations import STEP_BOUND, cifar_batch, small_model, warm_fit_step_rises
    cnnkit.utils.set_random_seed(0)
    x, y = cifar_batch(8 * 6)
    x = (x * 255).astype(dtype) if dtype == np.uint8 else x
    m = small_model()

    def stream():
        return ((x[s:s + 8], y[s:s + 8]) for s in range(0, len(x), 8))

    rises = warm_fit_step_rises(lambda cbs: m.fit(stream(), verbose=0, shuffle=False,
                                                  callbacks=cbs))
    assert len(rises) == 6 and max(rises) < STEP_BOUND, rises


# ---------------------------------------------------------------- Keras parity

KERAS_RUNS = """
import json, sys, warnings
import numpy as np, keras
warnings.simplefilter("ignore")
X, LABELS = (np.array(a) for a in json.loads(sys.stdin.read()))
X = X.astype("float32")
BS = 5
def batches():
    for s in range(0, len(X), BS):
        yield X[s:s + BS], LABELS[s:s + BS]
def endless():
    while True:
        yield from batches()
class Batches(keras.utils.PyDataset):
    def __len__(self):
        return 3
    def __getitem__(self, i):
        return X[i * BS:(i + 1) * BS], LABELS[i * BS:(i + 1) * BS]
class Steps(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.steps = []
    def on_epoch_begin(self, epoch, logs=None):
        self.steps.append(0)
    def on_train_batch_end(self, batch, logs=None):
        self.steps[-1] += 1
out = []
for name, x, kw in [("endless", endless, dict(epochs=3, steps_per_epoch=2, validation_data="endless",
                                              validation_steps=2)),
                    ("finite_spe", batches, dict(epochs=2, steps_per_epoch=2)),
                    ("pydataset", Batches, dict(epochs=2, validation_data="pydataset")),
                    ("pydataset_spe", Batches, dict(epochs=3, steps_per_epoch=2))]:
    m = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, activation="softmax")])
    m.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    kw = dict(kw)
    if kw.get("validation_data") == "endless":
        kw["validation_data"] = endless()
    elif kw.get("validation_data") == "pydataset":
        kw["validation_data"] = Batches()
    steps = Steps()
    h = m.fit(x(), verbose=0, callbacks=[steps], shuffle=False, **kw)
    ev = m.evaluate(x(), verbose=0, steps=2, return_dict=True)
    out.append([name, steps.steps, sorted(h.history), sorted(ev)])
print(json.dumps(out))
"""


def test_steps_and_logged_keys_match_keras_on_jax():
    pytest.importorskip("keras")
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    run = subprocess.run([sys.executable, "-c", KERAS_RUNS], capture_output=True, text=True,
                         input=json.dumps([X.tolist(), LABELS.tolist()]), env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    want = json.loads(run.stdout.strip().splitlines()[-1])

    def endless():
        while True:
            yield from batches()
    got = []
    for name, x, kw in [("endless", endless, dict(epochs=3, steps_per_epoch=2,
                                                   validation_data=endless(),
                                                   validation_steps=2)),
                        ("finite_spe", batches, dict(epochs=2, steps_per_epoch=2)),
                        ("pydataset", Batches, dict(epochs=2, validation_data=Batches())),
                        ("pydataset_spe", Batches, dict(epochs=3, steps_per_epoch=2))]:
        m, steps = model(), Steps()
        h = quiet_fit(m, x(), callbacks=[steps], shuffle=False, **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ev = m.evaluate(x(), verbose=0, steps=2, return_dict=True)
        got.append([name, steps.steps, sorted(h.history), sorted(ev)])
    assert got == want


KERAS_TRAIN = """
import json, sys
import numpy as np, keras
args = json.loads(sys.stdin.read())
X, LABELS, W = (np.array(a) for a in (args["x"], args["labels"], args["w"]))
X, W = X.astype("float32"), W.astype("float32")
BS = 5
class Batches(keras.utils.PyDataset):
    def __len__(self):
        return 3
    def __getitem__(self, i):
        return X[i * BS:(i + 1) * BS], LABELS[i * BS:(i + 1) * BS]
def weighted():
    while True:
        for s in range(0, len(X), BS):
            yield X[s:s + BS], LABELS[s:s + BS], W[s:s + BS]
out = []
for case in ("class_weight", "sample_weights_in_batches"):
    m = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, activation="softmax")])
    m.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    m.set_weights([np.array(w, np.float32) for w in args["weights"]])
    if case == "class_weight":
        cw = {int(k): v for k, v in args["cw"].items()}
        h = m.fit(Batches(), epochs=2, shuffle=False, verbose=0, class_weight=cw)
    else:
        h = m.fit(weighted(), epochs=2, steps_per_epoch=3, verbose=0, shuffle=False)
    out.append({"weights": [w.tolist() for w in m.get_weights()], "loss": h.history["loss"]})
print(json.dumps(out))
"""


def test_training_on_streams_matches_keras_on_jax():
    """A PyDataset with class_weight, an endless generator of (x, y, sample_weight) with
    steps_per_epoch: trained by Keras 3 (jax, in a subprocess) and by cnnkit from the same
    weights, the same weights and logged losses."""
    pytest.importorskip("keras")
    pytest.importorskip("jax")
    start = model().get_weights()

    def weighted():
        while True:
            yield from batches(with_weights=True)
    mine = []
    for case in ("class_weight", "sample_weights_in_batches"):
        m = model()
        if case == "class_weight":
            h = m.fit(Batches(), epochs=2, shuffle=False, verbose=0, class_weight=CW)
        else:
            h = m.fit(weighted(), epochs=2, steps_per_epoch=3, verbose=0, shuffle=False)
        mine.append((m.get_weights(), h.history["loss"]))
    payload = {"x": X.tolist(), "labels": LABELS.tolist(), "w": W.tolist(),
               "cw": {str(k): v for k, v in CW.items()}, "weights": [a.tolist() for a in start]}
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    run = subprocess.run([sys.executable, "-c", KERAS_TRAIN], input=json.dumps(payload),
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    theirs = json.loads(run.stdout.strip().splitlines()[-1])
    for (weights, history), want in zip(mine, theirs):
        for a, b in zip(weights, want["weights"]):
            np.testing.assert_allclose(a, np.array(b), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(history, want["loss"], rtol=1e-4)
    assert not np.allclose(mine[0][0][0], start[0])
