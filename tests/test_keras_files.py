"""Keras' model files: Keras 3 (NumPy backend, no TensorFlow) writes, cnnkit reads, and back.

Every layer cnnkit has is built in Keras and in cnnkit with the same arguments; a .keras file of
each, written by one, is loaded by the other and must predict the same. Graphs, nested models,
every optimizer's state (training continues as if uninterrupted), weights files, legacy .h5
files, and the damaged and unsupported files a user may hand us.
"""
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "numpy")
keras = pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")

import cnnkit  # noqa: E402
from cnnkit import layers as L  # noqa: E402

RNG = np.random.default_rng(0)
IMAGE = (8, 8, 3)

# (name, arguments for both libraries, input shape without the batch axis)
LAYERS = [
    ("Dense", dict(units=4, activation="relu"), (6,)),
    ("Dense", dict(units=3, use_bias=False, activation="tanh"), (6,)),
    ("Conv2D", dict(filters=4, kernel_size=3, padding="same", activation="relu"), IMAGE),
    ("Conv2D", dict(filters=4, kernel_size=(3, 2), strides=2, dilation_rate=1), IMAGE),
    ("Conv2D", dict(filters=4, kernel_size=3, dilation_rate=2, groups=1), IMAGE),
    ("Conv2DTranspose", dict(filters=4, kernel_size=3, strides=2, padding="same"), IMAGE),
    ("DepthwiseConv2D", dict(kernel_size=3, depth_multiplier=2, padding="same"), IMAGE),
    ("SeparableConv2D", dict(filters=5, kernel_size=3, activation="relu"), IMAGE),
    ("MaxPooling2D", dict(pool_size=2), IMAGE),
    ("AveragePooling2D", dict(pool_size=3, strides=1, padding="same"), IMAGE),
    ("GlobalAveragePooling2D", dict(), IMAGE),
    ("GlobalMaxPooling2D", dict(keepdims=True), IMAGE),
    ("BatchNormalization", dict(momentum=0.9, epsilon=1e-3), IMAGE),
    ("BatchNormalization", dict(center=False, scale=False), IMAGE),
    ("LayerNormalization", dict(epsilon=1e-5), IMAGE),
    ("ReLU", dict(max_value=0.6), IMAGE),
    ("LeakyReLU", dict(negative_slope=0.2), IMAGE),
    ("PReLU", dict(shared_axes=[1, 2]), IMAGE),
    ("ELU", dict(alpha=0.5), IMAGE),
    ("Softmax", dict(), (6,)),
    ("Activation", dict(activation="gelu"), (6,)),
    ("Activation", dict(activation="sigmoid"), (6,)),
    ("Flatten", dict(), IMAGE),
    ("Reshape", dict(target_shape=(16, 12)), IMAGE),
    ("UpSampling2D", dict(size=2), IMAGE),
    ("ZeroPadding2D", dict(padding=((1, 2), (0, 1))), IMAGE),
    ("Cropping2D", dict(cropping=1), IMAGE),
    ("Dropout", dict(rate=0.3), IMAGE),
    ("SpatialDropout2D", dict(rate=0.3), IMAGE),
    ("GaussianNoise", dict(stddev=0.3), IMAGE),
    ("Rescaling", dict(scale=1 / 255.0, offset=-0.5), IMAGE),
    ("Normalization", dict(mean=[0.1, 0.2, 0.3], variance=[1.0, 2.0, 3.0]), IMAGE),
    ("RandomFlip", dict(), IMAGE),
    ("RandomTranslation", dict(height_factor=0.1, width_factor=0.1), IMAGE),
    ("RandomRotation", dict(factor=0.1), IMAGE),
    ("RandomZoom", dict(height_factor=0.1), IMAGE),
    ("RandomContrast", dict(factor=0.2), IMAGE),
]
IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(LAYERS)]


def _randomize(weights):
    """Weights with every value away from its initial one (BatchNormalization's variance
    kept positive), so a weight read from the wrong place shows."""
    return [RNG.uniform(0.5, 1.5, w.shape).astype(np.float32) for w in weights]


def _keras_model(name, args, shape):
    model = keras.Sequential([keras.Input(shape), getattr(keras.layers, name)(**args)])
    if model.weights:
        model.set_weights(_randomize(model.get_weights()))
    return model


def _cnnkit_model(name, args, shape):
    model = cnnkit.Sequential([cnnkit.Input(shape), getattr(L, name)(**args)])
    if model.weights:
        model.set_weights(_randomize(model.get_weights()))
    return model


def _batch(shape, n=4):
    return RNG.standard_normal((n,) + tuple(shape)).astype(np.float32)


def _close(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,args,shape", LAYERS, ids=IDS)
def test_keras_file_loads_in_cnnkit(tmp_path, name, args, shape):
    theirs = _keras_model(name, args, shape)
    path = tmp_path / "theirs.keras"
    theirs.save(path)
    ours = cnnkit.models.load_model(path)
    x = _batch(shape)
    _close(ours.predict(x, verbose=0), theirs.predict(x, verbose=0))
    assert [type(l).__name__ for l in ours.layers] == [name]
    # ... and back: Keras -> cnnkit -> Keras gives the same predictions
    ours.save(tmp_path / "back.keras")
    _close(keras.saving.load_model(tmp_path / "back.keras").predict(x, verbose=0),
           theirs.predict(x, verbose=0))


@pytest.mark.parametrize("name,args,shape", LAYERS, ids=IDS)
def test_cnnkit_file_loads_in_keras(tmp_path, name, args, shape):
    ours = _cnnkit_model(name, args, shape)
    path = tmp_path / "ours.keras"
    ours.save(path)
    theirs = keras.saving.load_model(path)
    x = _batch(shape)
    _close(theirs.predict(x, verbose=0), ours.predict(x, verbose=0))
    # ... and back: Keras -> cnnkit gives the same predictions again
    again = tmp_path / "again.keras"
    theirs.save(again)
    _close(cnnkit.models.load_model(again).predict(x, verbose=0), ours.predict(x, verbose=0))


def _graph(lib):
    layers = lib.layers
    inputs = lib.Input(IMAGE, name="image")
    x = layers.Conv2D(6, 3, padding="same", activation="relu")(inputs)
    x = layers.BatchNormalization()(x)
    y = layers.DepthwiseConv2D(3, padding="same")(x)
    z = layers.Conv2D(6, 1)(x)
    x = layers.Add()([x, y, z])
    w = layers.Multiply()([x, y])
    x = layers.Concatenate()([x, w])
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(4, 3)(x)
    x = layers.BatchNormalization()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(3, activation="softmax")(x)
    model = (keras.Model if lib is keras else cnnkit.Model)(inputs, outputs)
    model.set_weights(_randomize(model.get_weights()))
    return model


def _nested(lib):
    layers = lib.layers
    block = lib.Sequential([lib.Input(IMAGE), layers.Conv2D(4, 3, padding="same"),
                            layers.BatchNormalization(), layers.ReLU()], name="block")
    inputs = lib.Input(IMAGE)
    x = block(inputs)
    x = layers.Flatten()(x)
    outputs = layers.Dense(2)(x)
    model = (keras.Model if lib is keras else cnnkit.Model)(inputs, outputs)
    model.set_weights(_randomize(model.get_weights()))
    return model


@pytest.mark.parametrize("build", [_graph, _nested], ids=["graph", "nested"])
@pytest.mark.parametrize("writer", ["keras", "cnnkit"])
def test_models_of_many_layers_both_ways(tmp_path, writer, build):
    source = build(keras if writer == "keras" else cnnkit)
    path = tmp_path / "model.keras"
    source.save(path)
    loaded = (cnnkit.models.load_model if writer == "keras" else keras.saving.load_model)(path)
    x = _batch(IMAGE, 6)
    _close(loaded.predict(x, verbose=0), source.predict(x, verbose=0))
    assert [l.name for l in loaded.layers] == [l.name for l in source.layers]


def test_random_crop_crosses_over(tmp_path):
    """Its configuration only: Keras 3.15's RandomCrop passes images through at inference
    (against its own docstring, which cnnkit follows: a centred crop, resized), so the two
    predict differently by design."""
    model = keras.Sequential([keras.Input(IMAGE), keras.layers.RandomCrop(6, 5, seed=3)])
    model.save(tmp_path / "crop.keras")
    (ours,) = cnnkit.models.load_model(tmp_path / "crop.keras").layers
    assert (type(ours).__name__, ours.height, ours.width, ours.seed) == ("RandomCrop", 6, 5, 3)
    mine = cnnkit.Sequential([cnnkit.Input(IMAGE), L.RandomCrop(6, 5, seed=3)])
    mine.save(tmp_path / "mine.keras")
    (theirs,) = keras.saving.load_model(tmp_path / "mine.keras").layers
    assert (theirs.height, theirs.width, theirs.seed) == (6, 5, 3)


MERGES = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate"]


def _merged(lib, name):
    a, b = lib.Input(IMAGE), lib.Input(IMAGE)
    x = lib.layers.Conv2D(4, 1)(a)
    y = lib.layers.Conv2D(4, 1)(b)
    out = getattr(lib.layers, name)()([x, y])
    model = (keras.Model if lib is keras else cnnkit.Model)([a, b], out)
    model.set_weights(_randomize(model.get_weights()))
    return model


@pytest.mark.parametrize("name", MERGES)
@pytest.mark.parametrize("writer", ["keras", "cnnkit"])
def test_merge_layers_both_ways(tmp_path, writer, name):
    source = _merged(keras if writer == "keras" else cnnkit, name)
    source.save(tmp_path / "merge.keras")
    loaded = (cnnkit.models.load_model if writer == "keras" else keras.saving.load_model)(
        tmp_path / "merge.keras")
    x = [_batch(IMAGE), _batch(IMAGE)]
    _close(loaded.predict(x, verbose=0), source.predict(x, verbose=0))


OPTIMIZERS = [
    ("SGD", dict(learning_rate=0.05)),
    ("SGD", dict(learning_rate=0.05, momentum=0.9, nesterov=True)),
    ("RMSprop", dict(learning_rate=0.01, momentum=0.5, centered=True)),
    ("Adam", dict(learning_rate=0.01)),
    ("Adam", dict(learning_rate=0.01, amsgrad=True)),
    ("AdamW", dict(learning_rate=0.01, weight_decay=0.01)),
    ("Adagrad", dict(learning_rate=0.1)),
    ("Nadam", dict(learning_rate=0.01)),
    ("Adamax", dict(learning_rate=0.01)),
]


def _small(lib):
    layers = lib.layers
    return lib.Sequential([lib.Input((4, 4, 2)), layers.Conv2D(3, 3, activation="relu"),
                           layers.Flatten(), layers.Dense(2)])


# Keras trains only on a real backend: these steps run in a JAX subprocess. Phase "write":
# for each optimizer, 2 steps from the given weights, save k_<i>.keras, 2 more steps, save the
# weights as k_<i>.npz. Phase "continue": load c_<i>.keras (written by cnnkit), 2 steps, save
# the weights as c_<i>.npz.
KERAS_TRAINING = """
import json, os, sys
import numpy as np
import keras
folder, phase = sys.argv[1], sys.argv[2]
data = np.load(os.path.join(folder, "data.npz"))
x, y = data["x"], data["y"]
cases = json.load(open(os.path.join(folder, "cases.json")))
for i, (opt, args) in enumerate(cases):
    if phase == "write":
        model = keras.Sequential([keras.Input((4, 4, 2)),
                                  keras.layers.Conv2D(3, 3, activation="relu"),
                                  keras.layers.Flatten(), keras.layers.Dense(2)])
        model.set_weights([data[f"w{j}"] for j in range(4)])
        model.compile(getattr(keras.optimizers, opt)(**args), "mse")
        for _ in range(2):
            model.train_on_batch(x, y)
        model.save(os.path.join(folder, f"k_{i}.keras"))
    else:
        model = keras.saving.load_model(os.path.join(folder, f"c_{i}.keras"))
        assert int(model.optimizer.iterations) == 2, int(model.optimizer.iterations)
    for _ in range(2):
        model.train_on_batch(x, y)
    np.savez(os.path.join(folder, f"{phase[0]}_{i}.npz"), *model.get_weights())
"""


def _keras_training(folder, phase):
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    run = subprocess.run([sys.executable, "-c", KERAS_TRAINING, str(folder), phase],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]


def _steps(model, x, y, steps):
    for _ in range(steps):
        model.train_on_batch(x, y)


def _npz_weights(path):
    with np.load(path) as data:
        return [data[f"arr_{j}"] for j in range(len(data.files))]


def test_training_continues_across_libraries(tmp_path):
    """Two steps in one library, a save, two more in the other: the weights are those of four
    uninterrupted steps (the optimizer's state crossed over whole), both ways, every
    optimizer."""
    pytest.importorskip("jax")
    x = RNG.standard_normal((8, 4, 4, 2)).astype(np.float32)
    y = RNG.standard_normal((8, 2)).astype(np.float32)
    start = _small(cnnkit).get_weights()
    np.savez(tmp_path / "data.npz", x=x, y=y, **{f"w{j}": w for j, w in enumerate(start)})
    (tmp_path / "cases.json").write_text(json.dumps(OPTIMIZERS))
    _keras_training(tmp_path, "write")
    uninterrupted = {}
    for i, (opt, args) in enumerate(OPTIMIZERS):
        # Keras -> cnnkit
        ours = cnnkit.models.load_model(tmp_path / f"k_{i}.keras")
        assert type(ours.optimizer).__name__ == opt and ours.optimizer.iterations == 2
        _steps(ours, x, y, 2)
        for a, b in zip(ours.get_weights(), _npz_weights(tmp_path / f"w_{i}.npz")):
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5, err_msg=f"{opt} {args}")
        # cnnkit, to be continued in Keras
        model = _small(cnnkit)
        model.set_weights(start)
        model.compile(getattr(cnnkit.optimizers, opt)(**args), "mse")
        _steps(model, x, y, 2)
        model.save(tmp_path / f"c_{i}.keras")
        _steps(model, x, y, 2)
        uninterrupted[i] = model.get_weights()
    _keras_training(tmp_path, "continue")
    for i, (opt, args) in enumerate(OPTIMIZERS):
        for a, b in zip(_npz_weights(tmp_path / f"c_{i}.npz"), uninterrupted[i]):
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5, err_msg=f"{opt} {args}")


def test_compile_settings_cross_over(tmp_path):
    model = _small(keras)
    model.compile(keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2),
                  metrics=["mae"])
    model.save(tmp_path / "m.keras")
    ours = cnnkit.models.load_model(tmp_path / "m.keras")
    assert type(ours.loss).__name__ == "CategoricalCrossentropy"
    assert ours.loss.from_logits and ours.loss.label_smoothing == 0.2
    assert type(ours.optimizer._learning_rate).__name__ == "ExponentialDecay"
    assert cnnkit.models.load_model(tmp_path / "m.keras", compile=False).optimizer is None


def _shared_names(ours, theirs):
    return sorted(name for name in ours if hasattr(theirs, name) and not name.startswith("Mean"
                                                                                     "MetricWrapper"))


@pytest.mark.parametrize("name", _shared_names(cnnkit.losses._CLASSES, keras.losses))
def test_every_loss_crosses_over(tmp_path, name):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("sgd", loss=getattr(keras.losses, name)())
    model.save(tmp_path / "m.keras")
    ours = cnnkit.models.load_model(tmp_path / "m.keras")
    assert type(ours.loss).__name__ == name


@pytest.mark.parametrize("name", _shared_names(cnnkit.metrics._ALL_CLASSES, keras.metrics))
def test_every_metric_crosses_over(tmp_path, name):
    theirs = getattr(keras.metrics, name)()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("sgd", loss="categorical_crossentropy", metrics=[theirs])
    model.save(tmp_path / "m.keras")
    ours = cnnkit.models.load_model(tmp_path / "m.keras")
    (entry,) = ours._metric_ids
    restored = cnnkit.metrics.get(entry)
    assert type(restored).__name__ == name and restored.name == theirs.name
    assert restored.get_config().keys() <= theirs.get_config().keys() | {"dtype"}


@pytest.mark.parametrize("writer", ["keras", "cnnkit"])
def test_weights_files_both_ways(tmp_path, writer):
    source = _graph(keras if writer == "keras" else cnnkit)
    target = _graph(cnnkit if writer == "keras" else keras)
    path = tmp_path / "w.weights.h5"
    source.save_weights(path)
    target.load_weights(path)
    for a, b in zip(target.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(a, b)
    # the weights inside a .keras archive load too
    source.save(tmp_path / "m.keras")
    fresh = _graph(cnnkit)
    fresh.load_weights(tmp_path / "m.keras")
    x = _batch(IMAGE)
    _close(fresh.predict(x, verbose=0), source.predict(x, verbose=0))


def test_weights_of_keras_archive_load_by_place(tmp_path):
    source = _graph(keras)
    source.save(tmp_path / "m.keras")
    ours = _graph(cnnkit)  # other layer names (counters differ), the same places
    ours.load_weights(tmp_path / "m.keras")
    x = _batch(IMAGE)
    _close(ours.predict(x, verbose=0), source.predict(x, verbose=0))


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_legacy_h5_model_loads(tmp_path, kind):
    model = _small(keras) if kind == "sequential" else _graph(keras)
    model.compile(keras.optimizers.Adam(0.01), "mse")
    path = tmp_path / "legacy.h5"
    model.save(path)  # Keras 3 still writes the legacy format for .h5
    ours = cnnkit.models.load_model(path)
    shape = (4, 4, 2) if kind == "sequential" else IMAGE
    x = _batch(shape)
    _close(ours.predict(x, verbose=0), model.predict(x, verbose=0))
    assert type(ours.optimizer).__name__ == "Adam"


def _tf_keras2_file(path, weights):
    """A legacy .h5 as TF-Keras 2 wrote it: nested-list inbound nodes, batch_input_shape,
    BatchNormalization's axis as a list, names with ':0'."""
    config = {"class_name": "Functional", "config": {
        "name": "model", "layers": [
            {"class_name": "InputLayer", "name": "input_1", "inbound_nodes": [],
             "config": {"batch_input_shape": [None, 8, 8, 3], "dtype": "float32",
                        "sparse": False, "ragged": False, "name": "input_1"}},
            {"class_name": "Conv2D", "name": "conv2d", "inbound_nodes": [[["input_1", 0, 0, {}]]],
             "config": {"name": "conv2d", "trainable": True, "dtype": "float32", "filters": 4,
                        "kernel_size": [3, 3], "strides": [1, 1], "padding": "same",
                        "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1,
                        "activation": "relu", "use_bias": True,
                        "kernel_initializer": {"class_name": "GlorotUniform",
                                               "config": {"seed": None}},
                        "bias_initializer": {"class_name": "Zeros", "config": {}},
                        "kernel_regularizer": None, "bias_regularizer": None,
                        "activity_regularizer": None, "kernel_constraint": None,
                        "bias_constraint": None}},
            {"class_name": "BatchNormalization", "name": "batch_normalization",
             "inbound_nodes": [[["conv2d", 0, 0, {}]]],
             "config": {"name": "batch_normalization", "trainable": True, "dtype": "float32",
                        "axis": [3], "momentum": 0.99, "epsilon": 0.001, "center": True,
                        "scale": True}},
            {"class_name": "Add", "name": "add",
             "inbound_nodes": [[["conv2d", 0, 0, {}], ["batch_normalization", 0, 0, {}]]],
             "config": {"name": "add", "trainable": True, "dtype": "float32"}},
            {"class_name": "LeakyReLU", "name": "leaky_re_lu", "inbound_nodes": [[["add", 0, 0, {}]]],
             "config": {"name": "leaky_re_lu", "trainable": True, "dtype": "float32",
                        "alpha": 0.25}}],
        "input_layers": [["input_1", 0, 0]], "output_layers": [["leaky_re_lu", 0, 0]]}}
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["backend"] = "tensorflow"
        group = f.create_group("model_weights")
        group.attrs["layer_names"] = [n.encode() for n in
                                      ("input_1", "conv2d", "batch_normalization", "add", "leaky_re_lu")]
        names = {"conv2d": ["kernel:0", "bias:0"],
                 "batch_normalization": ["gamma:0", "beta:0", "moving_mean:0", "moving_variance:0"]}
        for layer in ("input_1", "add", "leaky_re_lu"):
            group.create_group(layer).attrs["weight_names"] = []
        arrays = iter(weights)
        for layer, wnames in names.items():
            sub = group.create_group(layer)
            sub.attrs["weight_names"] = [f"{layer}/{w}".encode() for w in wnames]
            for w in wnames:
                sub.create_dataset(f"{layer}/{w}", data=next(arrays))


def test_tf_keras2_h5_loads(tmp_path):
    reference = cnnkit.Model(*(lambda i: (i, L.LeakyReLU(0.25)(L.Add()([
        c := L.Conv2D(4, 3, padding="same", activation="relu")(i), L.BatchNormalization()(c)]))))(
        cnnkit.Input(IMAGE)))
    weights = _randomize(reference.get_weights())
    reference.set_weights(weights)
    _tf_keras2_file(tmp_path / "old.h5", weights)
    ours = cnnkit.models.load_model(tmp_path / "old.h5")
    x = _batch(IMAGE)
    _close(ours.predict(x, verbose=0), reference.predict(x, verbose=0))
    assert ours.optimizer is None  # no training_config in the file


# ------------------------------------------------------------------ bad files

def _write_archive(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _members(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


@pytest.fixture
def keras_file(tmp_path):
    path = tmp_path / "good.keras"
    _small(keras).save(path)
    return path


def test_damaged_archive(tmp_path, keras_file):
    data = keras_file.read_bytes()
    bad = tmp_path / "cut.keras"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.keras is not a .keras archive, or it is damaged"):
        cnnkit.models.load_model(bad)


def test_archive_without_weights(tmp_path, keras_file):
    members = _members(keras_file)
    del members["model.weights.h5"]
    bad = tmp_path / "noweights.keras"
    _write_archive(bad, members)
    with pytest.raises(ValueError, match="noweights.keras.*model.weights.h5"):
        cnnkit.models.load_model(bad)


def test_newer_keras(tmp_path, keras_file):
    members = _members(keras_file)
    members["metadata.json"] = json.dumps({"keras_version": "4.0.0"})
    bad = tmp_path / "newer.keras"
    _write_archive(bad, members)
    with pytest.raises(ValueError, match="newer.keras.*Keras 4.0.0"):
        cnnkit.models.load_model(bad)


def _edit_config(keras_file, tmp_path, name, edit):
    members = _members(keras_file)
    config = json.loads(members["config.json"])
    edit(config)
    members["config.json"] = json.dumps(config)
    bad = tmp_path / name
    _write_archive(bad, members)
    return bad


def test_option_from_a_newer_keras_is_refused(tmp_path, keras_file):
    def edit(config):
        config["config"]["layers"][1]["config"]["sparsity"] = 0.5
    bad = _edit_config(keras_file, tmp_path, "option.keras", edit)
    with pytest.raises(ValueError, match=r"option.keras.*'conv2d.*' \(Conv2D\).*sparsity"):
        cnnkit.models.load_model(bad)


def test_option_cnnkit_lacks_is_refused(tmp_path, keras_file):
    def edit(config):
        config["config"]["layers"][3]["config"]["quantization_config"] = {"mode": "int8"}
    bad = _edit_config(keras_file, tmp_path, "quant.keras", edit)
    with pytest.raises(ValueError, match=r"quant.keras.*\(Dense\).*quantization_config"):
        cnnkit.models.load_model(bad)


def test_channels_first_is_refused(tmp_path, keras_file):
    def edit(config):
        config["config"]["layers"][1]["config"]["data_format"] = "channels_first"
    bad = _edit_config(keras_file, tmp_path, "nchw.keras", edit)
    with pytest.raises(ValueError, match=r"nchw.keras.*\(Conv2D\).*data_format='channels_first'"):
        cnnkit.models.load_model(bad)


def test_layer_cnnkit_lacks_is_refused(tmp_path):
    model = keras.Sequential([keras.Input((4, 3)), keras.layers.LSTM(2)])
    model.save(tmp_path / "lstm.keras")
    with pytest.raises(ValueError, match=r"lstm.keras.*'lstm.*'.*LSTM.*cnnkit does not have"):
        cnnkit.models.load_model(tmp_path / "lstm.keras")


def test_custom_layer_is_refused(tmp_path):
    @keras.saving.register_keras_serializable(package="tests")
    class Twice(keras.layers.Layer):
        def call(self, x):
            return 2 * x
    model = keras.Sequential([keras.Input((3,)), Twice(), keras.layers.Dense(2)])
    model.save(tmp_path / "custom.keras")
    with pytest.raises(ValueError, match=r"custom.keras.*Twice.*cnnkit does not have"):
        cnnkit.models.load_model(tmp_path / "custom.keras")


def test_wrong_shape_is_refused_and_nothing_loads(tmp_path):
    source = _small(keras)
    source.layers[-1].kernel.assign(np.ones((12, 2), np.float32))  # fine shape
    path = tmp_path / "w.weights.h5"
    source.save_weights(path)
    with h5py.File(path, "r+") as f:  # the Dense kernel of another width
        del f["layers/dense/vars/0"]
        f["layers/dense/vars/0"] = np.ones((12, 3), np.float32)
    ours = _small(cnnkit)
    before = [w.copy() for w in ours.get_weights()]
    with pytest.raises(ValueError, match=r"w.weights.h5.*'dense.*'.*\(12, 2\).*\(12, 3\)"):
        ours.load_weights(path)
    for a, b in zip(ours.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_missing_weights_are_refused(tmp_path):
    source = _small(keras)
    path = tmp_path / "w.weights.h5"
    source.save_weights(path)
    with h5py.File(path, "r+") as f:
        del f["layers/conv2d/vars/1"]
    with pytest.raises(ValueError, match=r"w.weights.h5.*Conv2D.*2 weights.*holds 1"):
        _small(cnnkit).load_weights(path)


def test_not_hdf5_weights(tmp_path):
    path = tmp_path / "junk.weights.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"junk" * 10)
    with pytest.raises(ValueError, match="junk.weights.h5"):
        _small(cnnkit).load_weights(path)


def test_subclassed_model_round_trips_in_cnnkit(tmp_path):
    class Tiny(cnnkit.Model):
        def __init__(self, units=2, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.dense = L.Dense(units)

        def call(self, x):
            return self.dense(x)

        def get_config(self):
            return {**super().get_config(), "units": self.units}
    model = Tiny()
    x = _batch((3,))
    model.predict(x, verbose=0)
    model.save(tmp_path / "tiny.keras")
    loaded = cnnkit.models.load_model(tmp_path / "tiny.keras", custom_objects={"Tiny": Tiny})
    _close(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_h5_model_save_is_refused_with_the_way_out(tmp_path):
    with pytest.raises(ValueError, match=r"m.h5.*\.keras"):
        _small(cnnkit).save(tmp_path / "m.h5")


def test_weights_name_must_say_weights(tmp_path):
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        _small(cnnkit).save_weights(tmp_path / "w.h5")
