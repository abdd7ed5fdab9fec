"""The Keras model API of cnnkit: Sequential, compile/fit/evaluate/predict, callbacks, saving
and loading, optimizers, losses and metrics, on small synthetic problems."""
import os
import re

import numpy as np
import pytest

from cnnkit import callbacks, losses, optimizers, reference as R
from cnnkit.layers import (Activation, Conv2D, Dense, Dropout, Flatten, Input, MaxPooling2D,
                           Reshape, UpSampling2D)
from cnnkit.models import Sequential, load_model
from cnnkit.utils import set_random_seed, to_categorical


def bars(n=240, seed=0):
    """8x8 one-channel images of noise with a bright bar in one of 3 places: the class."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    x = rng.uniform(0, 0.3, (n, 8, 8, 1))  # float64, as x / 255.0 is
    for i, label in enumerate(labels):
        x[i, :, 2 * label + 1] += 0.7
    return x, labels


def small_cnn(dropout=False, classes=3):
    layers = [Conv2D(4, (3, 3), activation="relu", input_shape=(8, 8, 1)), MaxPooling2D((2, 2)),
              Flatten(), Dense(16, activation="relu")]
    if dropout:
        layers.append(Dropout(0.3))
    return Sequential(layers + [Dense(classes, activation="softmax")])


def cifar_model():
    """The model that train-cifar10 trains: checked here against Keras' parameter counts."""
    from cnnkit.cli.train_cifar10 import classic_cnn

    return classic_cnn()


@pytest.fixture
def trained():
    set_random_seed(0)
    x, labels = bars()
    model = small_cnn()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, to_categorical(labels), epochs=6, batch_size=16, verbose=0,
                        validation_split=0.25)
    return model, history, x, labels


# ---------------------------------------------------------------- fit, evaluate, predict

def test_fit_learns_a_separable_problem_and_records_history(trained):
    model, history, x, labels = trained
    # Keras 3 sorts the logs by name (pythonify_logs), validation ones after
    assert list(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert all(len(v) == 6 for v in history.history.values())
    assert history.epoch == list(range(6)) and model.history is history
    assert history.history["loss"][-1] < history.history["loss"][0]
    loss, accuracy = model.evaluate(x, to_categorical(labels), verbose=0)
    assert accuracy >= 0.95 and loss < 0.6
    assert isinstance(loss, float) and isinstance(accuracy, float)
    assert model.evaluate(x, to_categorical(labels), verbose=0, return_dict=True) == {
        "loss": loss, "accuracy": accuracy}


def test_evaluate_without_metrics_returns_the_loss_alone(trained):
    model, _, x, labels = trained
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    assert isinstance(model.evaluate(x, to_categorical(labels), verbose=0), float)


def test_predict_in_batches_equals_one_batch(trained):
    model, _, x, _ = trained
    whole = model.predict(x, batch_size=len(x))
    assert whole.shape == (len(x), 3) and whole.dtype == np.float32
    np.testing.assert_allclose(model.predict(x, batch_size=7), whole, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(whole.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(model(x[:5]), whole[:5], rtol=1e-5, atol=1e-6)


def test_train_and_test_on_batch_return_loss_and_accuracy(trained):
    model, _, x, labels = trained
    y = to_categorical(labels)
    test = model.test_on_batch(x[:32], y[:32])
    assert len(test) == 2 and 0 <= test[1] <= 1
    train = model.train_on_batch(x[:32], y[:32], return_dict=True)
    assert set(train) == {"loss", "accuracy"}
    assert model.metrics_names == ["loss", "accuracy"]


def test_sparse_labels_with_sparse_categorical_crossentropy():
    set_random_seed(1)
    x, labels = bars()
    model = small_cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, labels.reshape(-1, 1), epochs=6, batch_size=16, verbose=0)
    assert model.evaluate(x, labels, verbose=0)[1] >= 0.95


def test_one_hot_labels_with_a_sparse_loss_or_the_reverse_are_clear_errors():
    x, labels = bars(32)
    model = small_cnn()
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    with pytest.raises(ValueError, match="to_categorical"):
        model.fit(x, labels, verbose=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="categorical_crossentropy"):
        model.fit(x, to_categorical(labels), verbose=0)


def test_fit_before_compile_raises():
    x, labels = bars(16)
    with pytest.raises(RuntimeError, match="compile"):
        small_cnn().fit(x, to_categorical(labels))


def test_x_of_the_wrong_shape_names_the_model_and_both_shapes():
    model = small_cnn()
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    with pytest.raises(ValueError, match=r"\(None, 8, 8, 1\).*\(None, 9, 9, 1\)"):
        model.fit(np.zeros((4, 9, 9, 1)), np.zeros((4, 3)), verbose=0)


def test_float64_input_is_converted_once_before_the_loop():
    seen = []

    class Spy(Flatten):
        def forward(self, call, x, training=False):
            seen.append((x.dtype, x.flags.c_contiguous))
            return super().forward(call, x, training)

    set_random_seed(0)
    x, labels = bars(64)
    model = Sequential([Input((8, 8, 1)), Spy(), Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    model.fit(x, to_categorical(labels), batch_size=16, verbose=0)
    assert seen == [(np.float32, True)] * 4
    assert x.dtype == np.float64  # the caller's array is untouched


# ---------------------------------------------------------------- structure and weights

def test_count_params_and_summary_match_keras_for_the_cifar_model():
    model = cifar_model()
    # Keras: 896 + 18,496 + 295,040 + 1,290 = 315,722 for this exact model.
    assert [layer.count_params() for layer in model.layers] == [896, 0, 18496, 0, 0, 295040, 1290]
    assert model.count_params() == 315_722
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert 'Model: "' in text and "Layer (type)" in text and "Output Shape" in text
    assert re.search(r"conv2d\S* \(Conv2D\)\s+\(None, 30, 30, 32\)\s+896", text)
    assert re.search(r"\(MaxPooling2D\)\s+\(None, 6, 6, 64\)\s+0", text)
    assert re.search(r"\(Flatten\)\s+\(None, 2304\)", text)
    assert "Total params: 315,722" in text and "Non-trainable params: 0" in text


def test_get_and_set_weights_use_keras_order_and_shapes():
    set_random_seed(0)
    model = cifar_model()
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(3, 3, 3, 32), (32,), (3, 3, 32, 64), (64,), (2304, 128), (128,), (128, 10), (10,)]
    new = [np.full(s, i, np.float32) for i, s in enumerate(shapes)]
    model.set_weights(new)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), new))
    with pytest.raises(ValueError, match="expecting 8 weights"):
        model.set_weights(new[:3])
    with pytest.raises(ValueError, match=r"dense\S*\" weight 0 has shape \(2304, 128\)"):
        model.set_weights(new[:4] + [np.zeros((2304, 12))] + new[5:])


def test_set_random_seed_gives_identical_weights_and_training():
    def run():
        set_random_seed(42)
        x, labels = bars(64)
        model = small_cnn(dropout=True)
        initial = model.get_weights()
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        model.fit(x, to_categorical(labels), epochs=2, batch_size=16, verbose=0)
        return initial, model.get_weights()

    (a0, a1), (b0, b1) = run(), run()
    assert all(np.array_equal(a, b) for a, b in zip(a0 + a1, b0 + b1))
    set_random_seed(43)
    assert not np.array_equal(small_cnn().get_weights()[0], a0[0])


def test_a_sequential_inside_a_sequential():
    set_random_seed(3)
    x, labels = bars()
    features = Sequential([Conv2D(4, 3, activation="relu"), MaxPooling2D(), Flatten()], name="features")
    model = Sequential([Input((8, 8, 1)), features, Dense(16, activation="relu"),
                        Dense(3, activation="softmax")])
    assert model.count_params() == 40 + 36 * 16 + 16 + 51
    assert len(model.get_weights()) == 6
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, to_categorical(labels), epochs=6, batch_size=16, verbose=0)
    assert model.evaluate(x, to_categorical(labels), verbose=0)[1] >= 0.95
    lines = []
    model.summary(print_fn=lines.append)
    assert any("features (Sequential)" in line for line in lines)


def test_a_nested_model_ending_in_softmax_uses_the_fused_loss():
    inner = Sequential([Dense(3, activation="softmax")])
    model = Sequential([Input((4,)), Dense(5), inner])
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    model.train_on_batch(np.ones((2, 4)), np.eye(3)[:2])
    assert model._fused == [True]  # one flag per output (a non-empty list is always truthy)


# ---------------------------------------------------------------- optimizers

@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_by_object_follows_keras(nesterov):
    opt = optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=nesterov)
    param = np.ones((3, 2), np.float32)
    expected, velocity = param.astype(np.float64), np.zeros((3, 2))
    for step in range(3):
        grad = np.full((3, 2), step + 1.0, np.float32)
        opt.apply([grad], [param])
        R.sgd_update(expected, grad.astype(np.float64), velocity, 0.1, 0.9, nesterov)
    np.testing.assert_allclose(param, expected, rtol=1e-6)
    assert opt.iterations == 3


def test_adam_defaults_and_names():
    opt = optimizers.get("adam")
    assert (opt.learning_rate, opt.beta_1, opt.beta_2, opt.epsilon) == (0.001, 0.9, 0.999, 1e-7)
    assert optimizers.get("sgd").learning_rate == 0.01
    with pytest.raises(ValueError, match="Unknown optimizer"):
        optimizers.get("adamw2")


def test_fit_with_sgd_nesterov_object_learns():
    set_random_seed(5)
    x, labels = bars()
    model = small_cnn()
    model.compile(optimizer=optimizers.SGD(0.05, momentum=0.9, nesterov=True),
                  loss=losses.CategoricalCrossentropy(), metrics=["accuracy"])
    model.fit(x, to_categorical(labels), epochs=8, batch_size=16, verbose=0)
    assert model.evaluate(x, to_categorical(labels), verbose=0)[1] >= 0.9


# ---------------------------------------------------------------- callbacks

def test_callbacks_fire_in_keras_order():
    events = []

    class Recorder(callbacks.Callback):
        def on_train_begin(self, logs=None): events.append("train_begin")
        def on_epoch_begin(self, epoch, logs=None): events.append(f"epoch_begin {epoch}")
        def on_train_batch_end(self, batch, logs=None): events.append(f"batch_end {batch} {sorted(logs)}")
        def on_test_begin(self, logs=None): events.append("test_begin")
        def on_epoch_end(self, epoch, logs=None): events.append(f"epoch_end {epoch} {sorted(logs)}")
        def on_train_end(self, logs=None): events.append("train_end")

    x, labels = bars(48)
    model = small_cnn()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, to_categorical(labels), epochs=2, batch_size=16, verbose=0,
              validation_data=(x[:16], to_categorical(labels[:16])), callbacks=[Recorder()])
    batch = "['accuracy', 'loss']"
    epoch = "['accuracy', 'loss', 'val_accuracy', 'val_loss']"
    assert events == ["train_begin"] + [
        e for i in range(2) for e in [f"epoch_begin {i}", f"batch_end 0 {batch}", f"batch_end 1 {batch}",
                                      f"batch_end 2 {batch}", "test_begin", f"epoch_end {i} {epoch}"]
    ] + ["train_end"]


def test_early_stopping_stops_and_restores_the_best_weights():
    x, labels = bars(32)
    model = small_cnn()
    model.compile(optimizer=optimizers.SGD(learning_rate=0.0), loss="categorical_crossentropy")
    stop = callbacks.EarlyStopping(monitor="loss", patience=2, restore_best_weights=True)
    history = model.fit(x, to_categorical(labels), epochs=20, verbose=0, callbacks=[stop])
    assert len(history.history["loss"]) == 3 and stop.stopped_epoch == 2
    assert callbacks.EarlyStopping(monitor="val_accuracy").mode == "max"


def test_model_checkpoint_writes_formatted_files_and_the_best_only(tmp_path):
    set_random_seed(0)
    x, labels = bars(64)
    model = small_cnn()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    every = callbacks.ModelCheckpoint(str(tmp_path / "m-{epoch:02d}-{loss:.2f}.keras"), monitor="loss")
    best = callbacks.ModelCheckpoint(str(tmp_path / "best.weights.h5"), monitor="loss",
                                     save_best_only=True, save_weights_only=True)
    model.fit(x, to_categorical(labels), epochs=3, verbose=0, callbacks=[every, best])
    names = sorted(os.listdir(tmp_path))
    assert [n[:5] for n in names] == ["best.", "m-01-", "m-02-", "m-03-"]
    restored = load_model(tmp_path / names[-1])
    np.testing.assert_array_equal(restored.predict(x), model.predict(x))


def test_progress_bar_lines(capsys):
    x, labels = bars(64)
    model = small_cnn()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, to_categorical(labels), epochs=2, batch_size=32, verbose=2)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Epoch 1/2" and out[2] == "Epoch 2/2"
    assert re.fullmatch(r"2/2 - \d+s - accuracy: \d\.\d{4} - loss: \d\.\d{4} - \d+s/epoch - \d+[mu]?s/step", out[1])
    model.evaluate(x, to_categorical(labels), batch_size=32)
    line = capsys.readouterr().out.splitlines()[-1]
    assert re.fullmatch(r"2/2 \[={30}\] - \d+s \d+[mu]?s/step - accuracy: \S+ - loss: \S+", line.strip())
    model.fit(x, to_categorical(labels), epochs=1, verbose=0)
    assert capsys.readouterr().out == ""


# ---------------------------------------------------------------- saving and loading

def test_save_and_load_model_round_trip(tmp_path, trained):
    model, _, x, labels = trained
    path = tmp_path / "model.keras"
    model.save(path)
    restored = load_model(path)
    np.testing.assert_array_equal(restored.predict(x), model.predict(x))
    assert [l.name for l in restored.layers] == [l.name for l in model.layers]
    assert restored.optimizer.iterations == model.optimizer.iterations > 0
    assert restored.evaluate(x, to_categorical(labels), verbose=0) == model.evaluate(
        x, to_categorical(labels), verbose=0)
    weights = tmp_path / "w.weights.h5"
    model.save_weights(weights)
    fresh = small_cnn()
    fresh.load_weights(weights)
    np.testing.assert_array_equal(fresh.predict(x), model.predict(x))


def test_a_resumed_fit_equals_an_uninterrupted_one(tmp_path):
    x, labels = bars(96)
    y = to_categorical(labels)

    def start():
        set_random_seed(11)
        model = small_cnn(dropout=True)
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        return model

    straight = start()
    straight.fit(x, y, epochs=2, batch_size=16, verbose=0)
    first = start()
    first.fit(x, y, epochs=1, batch_size=16, verbose=0)
    first.save(tmp_path / "epoch1.keras")
    set_random_seed(999)  # the saved file, not the global seed, decides what comes next
    resumed = load_model(tmp_path / "epoch1.keras")
    resumed.fit(x, y, epochs=2, initial_epoch=1, batch_size=16, verbose=0)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_every_layer_and_a_nested_model_survive_save_and_load(tmp_path):
    set_random_seed(8)
    inner = Sequential([Conv2D(3, 2, strides=2, padding="same", use_bias=False,
                               kernel_initializer="he_normal"), UpSampling2D((1, 2))], name="inner")
    model = Sequential([Input((6, 6, 2)), inner, MaxPooling2D(3, strides=1, padding="same"),
                        Reshape((-1, 3)), Activation("sigmoid"), Flatten(), Dropout(0.5, seed=1),
                        Dense(2, activation="sigmoid")])
    model.compile(optimizer=optimizers.SGD(0.1, momentum=0.5), loss="binary_crossentropy",
                  metrics=["accuracy", "mse"])
    x = np.random.default_rng(0).normal(size=(10, 6, 6, 2))
    y = (x[:, 0, 0, :] > 0).astype(np.float32)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    model.save(tmp_path / "all.keras")
    restored = load_model(tmp_path / "all.keras")
    np.testing.assert_array_equal(restored.predict(x), model.predict(x))
    assert restored.get_config() == model.get_config()
    assert restored.evaluate(x, y, verbose=0) == model.evaluate(x, y, verbose=0)
    assert restored.metrics_names == ["loss", "accuracy", "mse"]


def test_loading_weights_of_another_architecture_is_a_value_error(tmp_path):
    model = small_cnn()
    model.save_weights(tmp_path / "w.npz")
    other = small_cnn(classes=4)
    with pytest.raises(ValueError, match="different architecture"):
        other.load_weights(tmp_path / "w.npz")
    with pytest.raises(ValueError, match="weights only"):
        load_model(tmp_path / "w.npz")
    (tmp_path / "junk.keras").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a cnnkit"):
        load_model(tmp_path / "junk.keras")


@pytest.mark.parametrize("name", ["model.cnnkit", "model.keras"])
def test_a_failed_save_leaves_the_previous_file_intact(tmp_path, monkeypatch, name):
    import zipfile
    if name.endswith(".keras"):
        pytest.importorskip("h5py")
    model = small_cnn()
    path = tmp_path / name
    model.save(path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    # cnnkit's format is written by np.savez, a Keras archive member by member
    monkeypatch.setattr(np, "savez", crash)
    monkeypatch.setattr(zipfile.ZipFile, "writestr", crash)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == [name]


# ---------------------------------------------------------------- utils and losses

def test_to_categorical_follows_keras():
    assert to_categorical(np.array([[1], [0], [2]])).tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 1]]
    assert to_categorical([1, 0], num_classes=4).shape == (2, 4)
    assert to_categorical([1]).dtype == np.float32
    with pytest.raises(ValueError):
        to_categorical([3], num_classes=2)


def test_losses_by_name_and_object_agree_with_keras_formulas():
    y = np.eye(3, dtype=np.float32)[[0, 2]]
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], np.float32)
    expected = -np.mean(np.log([0.7, 0.8]))
    assert abs(losses.get("categorical_crossentropy")(y, p) - expected) < 1e-6
    assert abs(losses.SparseCategoricalCrossentropy()(np.array([0, 2]), p) - expected) < 1e-6
    assert abs(losses.get("mse")(y, p) - np.mean((y - p) ** 2)) < 1e-7
    assert losses.get("mean_squared_error").name == "mean_squared_error"
    with pytest.raises(ValueError, match="Unknown loss"):
        losses.get("hinge2")


def test_training_skips_only_the_input_gradient_of_the_outermost_first_layer():
    from cnnkit.layers import Conv2D, Dense, Flatten
    from cnnkit.models import Sequential

    inner = Sequential([Conv2D(2, 3, input_shape=(6, 6, 1)), Flatten()])
    head = Sequential([Dense(3), Dense(2, activation="softmax")])
    model = Sequential([inner, head])
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    x = np.random.default_rng(0).random((4, 6, 6, 1)).astype(np.float32)
    before = [w.copy() for w in model.get_weights()]
    model.train_on_batch(x, np.eye(2, dtype=np.float32)[[0, 1, 0, 1]])
    # The trainer's call states: model -> [inner, head], each a ModelState with its own calls.
    top = model._step_state(True).active
    inner_state, head_state = top.children
    assert [step.layer for step in top.graph.steps] == [inner, head]
    inner_calls, head_calls = inner_state.active.children, head_state.active.children
    assert [step.layer for step in inner_state.active.graph.steps] == inner.layers
    assert [step.layer for step in head_state.active.graph.steps] == head.layers
    assert not inner_state.need_dx and not inner_calls[0].need_dx
    assert inner_calls[1].need_dx and head_state.need_dx and head_calls[0].need_dx
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
