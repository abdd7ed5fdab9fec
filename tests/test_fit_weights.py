"""fit's weighting arguments with Keras 3's semantics: class_weight (per-sample weights from
the labels), sample_weight (fit, evaluate, validation_data, train_on_batch, test_on_batch),
steps_per_epoch with array data (Keras' EpochIterator), the errors, and that a weighted warm
step allocates nothing."""
import os
import warnings

import numpy as np
import pytest

import cnnkit
from cnnkit import callbacks, layers, losses, models, optimizers

RNG = np.random.default_rng(0)
X = RNG.random((12, 5)).astype(np.float32)
LABELS = RNG.integers(0, 3, 12)
ONEHOT = np.eye(3, dtype=np.float32)[LABELS]
BINARY = (RNG.random(12) > 0.5).astype(np.float32)
CW = {0: 1.0, 1: 3.0, 2: 0.25}


def model(loss="sparse_categorical_crossentropy", units=3, activation="softmax", seed=0,
          metrics=None):
    cnnkit.utils.set_random_seed(seed)
    m = models.Sequential([layers.Input((5,)), layers.Dense(units, activation=activation)])
    m.compile(optimizer=optimizers.SGD(0.5), loss=loss, metrics=metrics)
    return m


@pytest.mark.parametrize("loss, y, labels, units, activation", [
    ("sparse_categorical_crossentropy", LABELS, LABELS, 3, "softmax"),
    ("categorical_crossentropy", ONEHOT, LABELS, 3, "softmax"),
    (losses.CategoricalCrossentropy(label_smoothing=0.1), ONEHOT, LABELS, 3, "softmax"),
    ("categorical_focal_crossentropy", ONEHOT, LABELS, 3, "softmax"),
    ("binary_crossentropy", BINARY, BINARY.astype(int), 1, "sigmoid"),
], ids=["sparse", "onehot", "smoothed", "focal", "sigmoid"])
def test_class_weight_trains_as_the_equivalent_sample_weight(loss, y, labels, units, activation):
    cw = {0: 2.0, 1: 0.5} if units == 1 else CW
    a = model(loss, units, activation)
    a.fit(X, y, batch_size=5, epochs=3, verbose=0, class_weight=cw)
    b = model(loss, units, activation)
    b.fit(X, y, batch_size=5, epochs=3, verbose=0,
          sample_weight=np.array([cw[int(i)] for i in labels]))
    c = model(loss, units, activation)
    c.fit(X, y, batch_size=5, epochs=3, verbose=0)
    for wa, wb, wc in zip(a.get_weights(), b.get_weights(), c.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert not np.allclose(a.get_weights()[0], c.get_weights()[0])  # the weights mattered


def weighted_ce(m, x, labels, w):
    p = m.predict(x, verbose=0)
    return float(np.sum(w * -np.log(p[np.arange(len(x)), labels])) / len(x))


def test_weighted_loss_values_follow_keras_formula():
    m = model()
    w = RNG.uniform(0, 2, 12).astype(np.float32)
    want = weighted_ce(m, X, LABELS, w)  # Keras: sum(w * loss) / N, zero weights counted
    assert m.evaluate(X, LABELS, sample_weight=w, verbose=0) == pytest.approx(want, rel=1e-5)
    # batches of 5, 5, 2: each batch's sum / its size, averaged by size: the same number
    assert m.evaluate(X, LABELS, sample_weight=w, batch_size=5, verbose=0) == \
        pytest.approx(want, rel=1e-5)
    assert m.evaluate(X, LABELS, sample_weight=w, verbose=0, return_dict=True) == \
        {"loss": pytest.approx(want, rel=1e-5)}
    assert m.test_on_batch(X, LABELS, sample_weight=w) == pytest.approx(want, rel=1e-5)
    cw_weights = np.array([CW[i] for i in LABELS])
    before = weighted_ce(m, X, LABELS, cw_weights)
    assert m.train_on_batch(X, LABELS, class_weight=CW) == pytest.approx(before, rel=1e-5)
    assert weighted_ce(m, X, LABELS, cw_weights) < before  # the step lowered the weighted loss


def test_weighted_evaluate_matches_keras():
    keras = pytest.importorskip("keras")
    m = model("categorical_crossentropy")
    k = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, activation="softmax")])
    k.compile(loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1))
    k.set_weights(m.get_weights())
    m.compile("sgd", losses.CategoricalCrossentropy(label_smoothing=0.1))
    w = RNG.uniform(0, 2, 12).astype(np.float32)
    want = k.evaluate(X, ONEHOT, sample_weight=w, batch_size=5, verbose=0)
    got = m.evaluate(X, ONEHOT, sample_weight=w, batch_size=5, verbose=0)
    assert got == pytest.approx(want, rel=1e-5)


def test_validation_data_with_sample_weights_and_split():
    m = model()
    w = RNG.uniform(0, 2, 12).astype(np.float32)
    h = m.fit(X, LABELS, epochs=1, verbose=0, validation_data=(X, LABELS, w))
    assert h.history["val_loss"][0] == pytest.approx(weighted_ce(m, X, LABELS, w), rel=1e-5)
    # validation_split splits the sample weights too (the last 25% validate, as in Keras)
    m = model()
    h = m.fit(X, LABELS, epochs=1, verbose=0, sample_weight=w, validation_split=0.25, shuffle=False)
    assert h.history["val_loss"][0] == pytest.approx(
        weighted_ce(m, X[9:], LABELS[9:], w[9:]), rel=1e-5)


class StepCounter(callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.steps = []

    def on_epoch_begin(self, epoch, logs=None):
        self.steps.append(0)

    def on_train_batch_end(self, batch, logs=None):
        self.steps[-1] += 1


def test_steps_per_epoch_as_keras_epoch_iterator():
    # 12 samples in batches of 5: 3 batches per pass. With 2 steps per epoch the pass goes on
    # into the next epoch, which stops (with a warning) when the pass ends.
    m, counter = model(), StepCounter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m.fit(X, LABELS, batch_size=5, steps_per_epoch=2, epochs=4, verbose=0,
              callbacks=[counter])
    assert counter.steps == [2, 1, 2, 1]
    assert sum("ran out of data" in str(w.message) for w in caught) == 2
    # more steps than batches: every epoch stops at the end of its pass
    with pytest.warns(UserWarning, match="ran out of data"):
        m.fit(X, LABELS, batch_size=5, steps_per_epoch=7, epochs=2, verbose=0,
              callbacks=[counter])
    assert counter.steps == [3, 3]
    # no batch_size: Keras makes it ceil(N / steps_per_epoch)
    m.fit(X, LABELS, steps_per_epoch=4, epochs=2, verbose=0, callbacks=[counter])
    assert counter.steps == [4, 4]


KERAS_STEPS = r"""
import json, numpy as np, keras
x = np.zeros((12, 5), np.float32); y = np.zeros(12, int)
m = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, activation="softmax")])
m.compile("sgd", "sparse_categorical_crossentropy")
class C(keras.callbacks.Callback):
    def on_train_begin(self, logs=None): self.s = []
    def on_epoch_begin(self, e, logs=None): self.s.append(0)
    def on_train_batch_end(self, b, logs=None): self.s[-1] += 1
out = []
for kw in json.loads(input()):
    c = C()
    m.fit(x, y, verbose=0, callbacks=[c], **kw)
    out.append(c.s)
print(json.dumps(out))
"""


def test_steps_per_epoch_counts_match_keras_on_jax():
    import json
    import subprocess
    import sys
    pytest.importorskip("keras")
    pytest.importorskip("jax")
    runs = [dict(batch_size=5, steps_per_epoch=2, epochs=4), dict(batch_size=5, steps_per_epoch=7,
            epochs=2), dict(steps_per_epoch=4, epochs=2), dict(batch_size=4, steps_per_epoch=3,
            epochs=3), dict(batch_size=5, steps_per_epoch=5, epochs=3)]
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    run = subprocess.run([sys.executable, "-c", KERAS_STEPS], input=json.dumps(runs),
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    want = json.loads(run.stdout.strip().splitlines()[-1])
    m, got = model(), []
    for kw in runs:
        counter = StepCounter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.fit(X, LABELS, verbose=0, callbacks=[counter], **kw)
        got.append(counter.steps)
    assert got == want


def test_sample_weights_reach_weighted_metrics_only():
    """Keras 3: `metrics` stay unweighted, `weighted_metrics` take the sample weights; a name
    both use is weighted_<name> for the weighted one."""
    m = model(metrics=["accuracy"])
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
              weighted_metrics=["accuracy"])
    w = np.zeros(12, np.float32)
    w[:4] = 1
    logs = m.evaluate(X, LABELS, sample_weight=w, verbose=0, return_dict=True)
    hits = m.predict(X, verbose=0).argmax(1) == LABELS
    assert set(logs) == {"loss", "accuracy", "weighted_accuracy"}
    assert logs["accuracy"] == pytest.approx(np.mean(hits))
    assert logs["weighted_accuracy"] == pytest.approx(np.mean(hits[:4]))


def fit(**kwargs):
    return lambda: model().fit(X, LABELS, verbose=0, **kwargs)


@pytest.mark.parametrize("call, error, words", [
    (fit(sample_weight=-np.ones(12)), ValueError, ["sample_weight", ">= 0"]),
    (fit(sample_weight=np.full(12, np.nan)), ValueError, ["sample_weight", "finite"]),
    (fit(sample_weight=np.ones(11)), ValueError, ["sample_weight", "(12,)"]),
    (fit(sample_weight=np.ones((12, 2))), ValueError, ["sample_weight", "(12,)"]),
    (fit(sample_weight="heavy"), TypeError, ["sample_weight"]),
    (fit(class_weight=[1.0, 2.0]), TypeError, ["class_weight", "dict"]),
    (fit(class_weight={3: 1.0}), ValueError, ["class_weight", "0 to 2"]),
    (fit(class_weight={-1: 1.0}), ValueError, ["class_weight", "0 to 2"]),
    (fit(class_weight={"a": 1.0}), ValueError, ["class_weight"]),
    (fit(class_weight={0: -2.0}), ValueError, ["class_weight", ">= 0"]),
    (fit(class_weight={0: "x"}), TypeError, ["class_weight[0]"]),
    (fit(class_weight=CW, sample_weight=np.ones(12)), ValueError, ["class_weight",
                                                                  "sample_weight"]),
    (fit(steps_per_epoch=0), ValueError, ["steps_per_epoch"]),
    (fit(steps_per_epoch=-3), ValueError, ["steps_per_epoch"]),
    (fit(steps_per_epoch=2.5), TypeError, ["steps_per_epoch"]),
    (fit(validation_data=(X, LABELS, np.ones(12), 1)), ValueError, ["validation_data"]),
    (fit(validation_data=(X, LABELS, -np.ones(12))), ValueError, ["sample_weight"]),
    (lambda: model().evaluate(X, LABELS, sample_weight=np.ones(3), verbose=0), ValueError,
     ["evaluate", "sample_weight"]),
    (lambda: model().train_on_batch(X, LABELS, sample_weight=np.ones(12), class_weight=CW),
     ValueError, ["train_on_batch", "class_weight"]),
    (lambda: model().test_on_batch(X, LABELS, sample_weight=[np.inf] * 12), ValueError,
     ["test_on_batch", "finite"]),
])
def test_bad_weights_raise_clear_errors(call, error, words):
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value)


def test_class_weight_needs_a_single_output_and_sample_weight_goes_per_output():
    a = layers.Input((5,))
    m = models.Model(a, [layers.Dense(3, activation="softmax", name="o1")(a),
                         layers.Dense(3, activation="softmax", name="o2")(a)])
    m.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="single output"):
        m.fit(X, [LABELS, LABELS], class_weight=CW, verbose=0)
    # one sample_weight array weights every output
    w = RNG.uniform(0, 2, 12).astype(np.float32)
    logs = m.evaluate(X, [LABELS, LABELS], sample_weight=w, verbose=0, return_dict=True)
    p1, p2 = m.predict(X, verbose=0)
    e1 = np.sum(w * -np.log(p1[np.arange(12), LABELS])) / 12
    e2 = np.sum(w * -np.log(p2[np.arange(12), LABELS])) / 12
    assert logs["o1_loss"] == pytest.approx(e1, rel=1e-5)
    assert logs["loss"] == pytest.approx(e1 + e2, rel=1e-5)
    # one array per output (a list, or a dict by output name; None: that output unweighted)
    u = RNG.uniform(0, 2, 12).astype(np.float32)
    e2u = np.sum(u * -np.log(p2[np.arange(12), LABELS])) / 12
    e2plain = np.mean(-np.log(p2[np.arange(12), LABELS]))
    for given, want2 in (([w, u], e2u), ({"o2": u, "o1": w}, e2u), ([w, None], e2plain)):
        logs = m.evaluate(X, [LABELS, LABELS], sample_weight=given, verbose=0, return_dict=True)
        assert logs["o1_loss"] == pytest.approx(e1, rel=1e-5)
        assert logs["o2_loss"] == pytest.approx(want2, rel=1e-5)
    h = m.fit(X, [LABELS, LABELS], sample_weight={"o1": w, "o2": u}, validation_split=0.25,
              epochs=1, verbose=0)
    assert np.isfinite(h.history["val_loss"][0])
    with pytest.raises(ValueError, match="outputs"):
        m.evaluate(X, [LABELS, LABELS], sample_weight={"o3": w}, verbose=0)
    with pytest.raises(ValueError, match="one per output"):
        m.evaluate(X, [LABELS, LABELS], sample_weight=[w, u, w], verbose=0)


@pytest.mark.parametrize("weighting", ["sample_weight", "class_weight"])
def test_a_warm_weighted_fit_step_allocates_almost_nothing(weighting):
    from test_step_allocations import STEP_BOUND, cifar_batch, warm_fit_step_rises
    from cnnkit.cli.train_cifar10 import classic_cnn
    cnnkit.utils.set_random_seed(0)
    m = classic_cnn()
    m.compile(optimizer="adam", loss="categorical_crossentropy")
    x, y = cifar_batch(8 * 6)
    kwargs = ({"sample_weight": np.linspace(0, 2, 48)} if weighting == "sample_weight"
              else {"class_weight": {i: 1 + i / 10 for i in range(10)}})

    rises = warm_fit_step_rises(lambda cbs: m.fit(x, y, batch_size=8, epochs=2, verbose=0,
                                                  callbacks=cbs, **kwargs))
    assert len(rises) == 12 and max(rises) < STEP_BOUND, rises


KERAS_FIT = r"""
import json, sys
import numpy as np, keras
args = json.loads(sys.stdin.read())
out = []
for case in args:
    m = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, activation="softmax")])
    loss = getattr(keras.losses, case["loss"])(**case["loss_args"])
    m.compile(optimizer=keras.optimizers.SGD(0.5), loss=loss)
    m.set_weights([np.array(w, np.float32) for w in case["weights"]])
    kw = {k: ({int(c): v for c, v in case[k].items()} if k == "class_weight" else np.array(case[k]))
          for k in ("class_weight", "sample_weight") if k in case}
    h = m.fit(np.array(case["x"], np.float32), np.array(case["y"]), batch_size=case["batch_size"],
              epochs=2, shuffle=False, verbose=0, **kw)
    out.append({"weights": [w.tolist() for w in m.get_weights()], "loss": h.history["loss"]})
print(json.dumps(out))
"""


def test_weighted_training_matches_keras_on_jax():
    """The same model, data and weights trained by Keras 3 (jax backend, in a subprocess) and
    by cnnkit: the same weights and the same logged (weighted) losses."""
    import json
    import subprocess
    import sys
    pytest.importorskip("keras")
    pytest.importorskip("jax")
    w = RNG.uniform(0, 2, 12).round(3)
    cases = [
        dict(loss="CategoricalCrossentropy", loss_args={"label_smoothing": 0.1}, y=ONEHOT,
             batch_size=12, class_weight={str(k): v for k, v in CW.items()}),
        dict(loss="SparseCategoricalCrossentropy", loss_args={}, y=LABELS, batch_size=5,
             sample_weight=w),
        dict(loss="CategoricalFocalCrossentropy", loss_args={"gamma": 1.0}, y=ONEHOT,
             batch_size=5, class_weight={str(k): v for k, v in CW.items()}),
    ]
    mine = []
    for case in cases:
        m = model()
        m.compile(optimizer=optimizers.SGD(0.5),
                  loss=getattr(losses, case["loss"])(**case["loss_args"]))
        case["weights"] = [a.tolist() for a in m.get_weights()]
        kw = {}
        if "class_weight" in case:
            kw["class_weight"] = {int(c): v for c, v in case["class_weight"].items()}
        if "sample_weight" in case:
            kw["sample_weight"] = case["sample_weight"]
        h = m.fit(X, case["y"], batch_size=case["batch_size"], epochs=2, shuffle=False,
                  verbose=0, **kw)
        mine.append((m.get_weights(), h.history["loss"]))
    payload = [{**c, "x": X.tolist(), "y": np.asarray(c["y"]).tolist(),
                **({"sample_weight": c["sample_weight"].tolist()} if "sample_weight" in c else {})}
               for c in cases]
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    run = subprocess.run([sys.executable, "-c", KERAS_FIT], input=json.dumps(payload),
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    theirs = json.loads(run.stdout.strip().splitlines()[-1])
    for case, (weights, history), want in zip(cases, mine, theirs):
        for a, b in zip(weights, want["weights"]):
            np.testing.assert_allclose(a, np.array(b), rtol=1e-4, atol=1e-5, err_msg=case["loss"])
        np.testing.assert_allclose(history, want["loss"], rtol=1e-4, err_msg=case["loss"])
