"""Issue #5: no allocation inside a warm training step. Layers write their outputs and gradients
into workspaces (layers/call_state.py) through the kernels' out= arguments (cpp/bindings/); these
tests bound what a warm step allocates, check that reusing buffers changes no result and that
nothing handed to the user points into them, and check the out= arguments."""
import tracemalloc

import numpy as np
import pytest

from cnnkit import _core, callbacks
from cnnkit.cli.train_cifar10 import classic_cnn
from cnnkit.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D, UpSampling2D
from cnnkit.models import Sequential
from cnnkit.utils import set_random_seed

STEP_BOUND = 64 * 1024  # bytes a warm step may allocate: the logs, a few small arrays


def cifar_batch(n, seed=0, sparse=False):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 32, 32, 3), dtype=np.float32)
    labels = rng.integers(0, 10, n)
    return x, labels if sparse else np.eye(10, dtype=np.float32)[labels]


def traced_growth(step, steps=6):
    """Per call of step: the most that tracemalloc's traced memory (NumPy's buffers included)
    rose above its level before the call."""
    tracemalloc.start()
    try:
        rises = []
        for _ in range(steps):
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            step()
            rises.append(tracemalloc.get_traced_memory()[1] - before)
        return rises
    finally:
        tracemalloc.stop()


def small_model(loss="categorical_crossentropy"):
    model = classic_cnn()
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    return model


@pytest.mark.parametrize("loss", ["categorical_crossentropy", "sparse_categorical_crossentropy"])
def test_a_warm_train_on_batch_step_allocates_almost_nothing(loss):
    set_random_seed(0)
    model = small_model(loss)
    x, y = cifar_batch(8, sparse=loss.startswith("sparse"))
    x5, y5 = x[:5], y[:5]
    for _ in range(2):  # two batch sizes, each with its own buffers, both kept
        model.train_on_batch(x, y)
        model.train_on_batch(x5, y5)
    rises = traced_growth(lambda: (model.train_on_batch(x, y), model.train_on_batch(x5, y5)))
    assert max(rises) < 2 * STEP_BOUND, rises


def warm_fit_step_rises(fit):
    """What each batch of a second fit allocates at its peak, in bytes, after a first one
    warmed the model up; fit(callbacks) runs one fit with those callbacks."""
    class Probe(callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.rises = []

        def on_train_batch_begin(self, batch, logs=None):
            self.before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()

        def on_train_batch_end(self, batch, logs=None):
            self.rises.append(tracemalloc.get_traced_memory()[1] - self.before)

    fit([])
    probe = Probe()
    tracemalloc.start()
    try:
        fit([probe])
    finally:
        tracemalloc.stop()
    return probe.rises


def test_a_warm_fit_step_allocates_almost_nothing():
    set_random_seed(0)
    model, (x, y) = small_model(), cifar_batch(8 * 6)
    rises = warm_fit_step_rises(lambda cbs: model.fit(x, y, batch_size=8, epochs=2, verbose=0,
                                                      callbacks=cbs))  # shuffled: gathered
    assert len(rises) == 12 and max(rises) < STEP_BOUND, rises


def test_every_layer_kind_reuses_its_buffers():
    """Dropout, UpSampling2D and a mean-squared-error loss too (the autoencoder's path)."""
    set_random_seed(0)
    model = Sequential([Conv2D(4, 3, padding="same", activation="relu", input_shape=(8, 8, 2)),
                        MaxPooling2D(), Dropout(0.25), UpSampling2D(),
                        Conv2D(2, 3, padding="same", activation="sigmoid")])
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).random((16, 8, 8, 2), dtype=np.float32)
    model.train_on_batch(x, x)
    rises = traced_growth(lambda: model.train_on_batch(x, x))
    assert max(rises) < STEP_BOUND, rises


def test_a_graph_with_a_residual_a_shared_layer_and_two_outputs_reuses_its_buffers():
    """The functional engine's own arrays (the sum of a tensor's gradients, a shared layer's
    summed weight gradients, each output's loss gradient) are reused from step to step too."""
    import cnnkit
    from cnnkit import layers

    set_random_seed(0)
    a, b = cnnkit.Input((8, 8, 2)), cnnkit.Input((8, 8, 2))
    conv = layers.Conv2D(2, 3, padding="same", activation="relu")  # shared by both inputs
    x = layers.add([conv(a), conv(b)])
    y = layers.Conv2D(2, 3, padding="same")(x)
    x = layers.add([x, y])  # residual: x's gradient is a sum
    flat = layers.Flatten()(x)
    out1 = layers.Dense(3, activation="softmax", name="out1")(flat)
    out2 = layers.Dense(1, name="out2")(flat)
    model = cnnkit.Model([a, b], [out1, out2])
    model.compile(optimizer="adam", loss=["categorical_crossentropy", "mse"],
                  loss_weights=[1.0, 0.5], metrics=[["accuracy"], []])
    rng = np.random.default_rng(0)
    xs = [rng.random((8, 8, 8, 2), dtype=np.float32) for _ in range(2)]
    ys = [np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)], rng.random((8, 1), dtype=np.float32)]
    model.train_on_batch(xs, ys)
    rises = traced_growth(lambda: model.train_on_batch(xs, ys))
    assert max(rises) < STEP_BOUND, rises


def mixed_model():
    return Sequential([Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)), MaxPooling2D(),
                       Conv2D(6, 3, padding="same"), Flatten(), Dense(12, activation="sigmoid"),
                       Dropout(0.3), Dense(3, activation="softmax")])


def test_workspaces_change_no_result():
    """Two models from the same seed, one of them making new arrays everywhere as before the
    workspaces: after fit (shuffled, with a last partial batch), evaluate and predict, the
    same weights and values to the last bit."""
    rng = np.random.default_rng(1)
    x = rng.random((37, 8, 8, 1), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 37)]
    results = []
    for reuse in (True, False):
        set_random_seed(3)
        model = mixed_model()
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        made = []
        if not reuse:
            # Workspaces are on exactly for call states made with reuse=True (the trainer's):
            # give every step a new state without them.
            def fresh_state(training, model=model):
                made.append(model.new_state(reuse=False))
                return made[-1]
            model._step_state = fresh_state
            model._gather = lambda data, indices, name: data[indices]
        history = model.fit(x, y, batch_size=8, epochs=3, verbose=0, validation_split=0.2)
        results.append((model.get_weights(), history.history, model.evaluate(x, y, verbose=0),
                        model.predict(x, batch_size=10), model.train_on_batch(x[:5], y[:5])))
        if reuse:
            assert model._step_state(True).reuse and model._step_state(False).reuse
        else:  # the patch took effect: every step ran on a state without workspaces
            assert made and not any(state.reuse for state in made)
    (w1, h1, e1, p1, t1), (w2, h2, e2, p2, t2) = results
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    assert h1 == h2 and e1 == e2 and t1 == t2
    np.testing.assert_array_equal(p1, p2)


def test_what_a_user_holds_never_changes_afterwards():
    set_random_seed(0)
    model = mixed_model()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(2)
    x1, x2 = rng.random((2, 20, 8, 8, 1), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 20)]
    seen = []

    class Keep(callbacks.Callback):
        def on_predict_batch_end(self, batch, logs=None):
            seen.append((logs["outputs"], logs["outputs"].copy()))

    first = model.predict(x1, batch_size=20, callbacks=[Keep()])
    called = model(x1, training=True)
    on_batch = model.predict_on_batch(x1)
    held = [(a, a.copy()) for a in (first, called, on_batch)] + seen
    history = model.fit(x2, y, batch_size=20, epochs=2, verbose=0)
    model.predict(x2, batch_size=20)
    model.evaluate(x2, y, batch_size=20, verbose=0)
    model.train_on_batch(x2, y)
    for array, copy in held:
        np.testing.assert_array_equal(array, copy)
    assert all(type(v) is float for values in history.history.values() for v in values)
    np.testing.assert_array_equal(model.predict(x1, batch_size=20), model.predict(x1, batch_size=7))


# ---------------------------------------------------------------- out= in the bindings

def conv_args():
    rng = np.random.default_rng(0)
    x = rng.random((2, 6, 6, 3), dtype=np.float32)
    w = rng.random((3, 3, 3, 4), dtype=np.float32)
    return x, w, np.zeros(4, np.float32)


def test_out_is_written_in_place_and_returned():
    x, w, b = conv_args()
    y = _core.conv2d_forward(x, w, b, 1, 1, 0, 0, 4, 4)
    out = np.full_like(y, np.nan)
    assert _core.conv2d_forward(x, w, b, 1, 1, 0, 0, 4, 4, out=out) is out
    np.testing.assert_array_equal(out, y)
    dx, dw, db = _core.conv2d_backward(y, x, w, 1, 1, 0, 0)
    bufs = np.empty_like(dx), np.empty_like(dw), np.empty_like(db)
    got = _core.conv2d_backward(y, x, w, 1, 1, 0, 0, dx_out=bufs[0], dw_out=bufs[1], db_out=bufs[2])
    assert all(g is o for g, o in zip(got, bufs))
    for g, e in zip(got, (dx, dw, db)):
        np.testing.assert_array_equal(g, e)
    p, idx = _core.maxpool2d_forward(x, 2, 2, 2, 2, 0, 0, 3, 3, with_argmax=True)
    outs = np.empty_like(p), np.empty_like(idx)
    got = _core.maxpool2d_forward(x, 2, 2, 2, 2, 0, 0, 3, 3, with_argmax=True, out=outs[0],
                                  argmax_out=outs[1])
    assert got[0] is outs[0] and got[1] is outs[1] and outs[1].dtype == np.int32
    np.testing.assert_array_equal(outs[1], idx)
    r = np.empty_like(x)
    assert _core.relu_forward(x - 0.5, out=r) is r
    np.testing.assert_array_equal(r, np.maximum(x - 0.5, 0))


@pytest.mark.parametrize("bad, error, words", [
    (np.empty((2, 4, 4, 4)), TypeError, "out must have dtype float32"),
    ([[0.0]], TypeError, "out must be a NumPy array"),
    (np.empty((2, 4, 4, 5), np.float32), ValueError, "out has shape (2, 4, 4, 5), expected (2, 4, 4, 4)"),
    (np.empty((2, 4, 4, 4), np.float32, order="F"), ValueError, "out must be C-contiguous"),
    (np.empty((2, 4, 4, 8), np.float32)[..., ::2], ValueError, "out must be C-contiguous"),
    ("readonly", ValueError, "out must be writeable"),
])
def test_a_bad_out_is_refused_naming_it(bad, error, words):
    x, w, b = conv_args()
    if isinstance(bad, str):
        bad = np.empty((2, 4, 4, 4), np.float32)
        bad.flags.writeable = False
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        _core.conv2d_forward(x, w, b, 1, 1, 0, 0, 4, 4, out=bad)


def test_outputs_must_not_overlap_inputs_or_each_other():
    x, w, b = conv_args()
    y = _core.conv2d_forward(x, w, b, 1, 1, 0, 0, 4, 4)
    with pytest.raises(ValueError, match="out must not share memory with x"):
        _core.relu_forward(x, out=x)
    with pytest.raises(ValueError, match="dw_out must not share memory with w"):
        _core.conv2d_backward(y, x, w, 1, 1, 0, 0, dw_out=w)
    both = np.empty(w.size + 4, np.float32)
    with pytest.raises(ValueError, match="must not share memory"):
        _core.conv2d_backward(y, x, w, 1, 1, 0, 0, dw_out=both[:w.size].reshape(w.shape),
                              db_out=both[w.size - 4:w.size])
    with pytest.raises(ValueError, match="dx_out must be None when need_dx is False"):
        _core.conv2d_backward(y, x, w, 1, 1, 0, 0, need_dx=False, dx_out=np.empty_like(x))
    with pytest.raises(TypeError, match="argmax_out must have dtype int32"):
        _core.maxpool2d_forward(x, 2, 2, 2, 2, 0, 0, 3, 3, with_argmax=True,
                                argmax_out=np.empty((2, 3, 3, 3), np.int64))
    with pytest.raises(ValueError, match="argmax_out must be None"):
        _core.maxpool2d_forward(x, 2, 2, 2, 2, 0, 0, 3, 3, argmax_out=np.empty((2, 3, 3, 3), np.int32))
    dense_x, dense_w = x.reshape(2, -1), np.zeros((108, 5), np.float32)
    with pytest.raises(ValueError, match="db_out has shape"):
        _core.dense_backward(np.zeros((2, 5), np.float32), dense_x, dense_w, db_out=np.empty(4, np.float32))
    with pytest.raises(ValueError, match="out has shape"):
        _core.softmax_cross_entropy(np.zeros((2, 5), np.float32), np.zeros((2, 5), np.float32), None,
                                    out=np.empty((5, 2), np.float32))
