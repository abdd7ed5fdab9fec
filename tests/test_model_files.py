"""Issue #6: model files. A file carries its format version; loading a truncated, corrupted or
foreign file, a newer format, or a file of another architecture is a ValueError naming the file;
a file written on a machine of the other byte order loads the same values; and a process killed
in the middle of a save leaves the previous file whole."""
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from cnnkit import layers, models
from cnnkit.models import load_model
from cnnkit.utils import set_random_seed


def small_model():
    set_random_seed(0)
    model = models.Sequential([layers.Input((6, 6, 2)), layers.Conv2D(3, 3, activation="relu"),
                               layers.Flatten(), layers.Dense(4, activation="softmax")])
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    model.train_on_batch(rng.random((5, 6, 6, 2), dtype=np.float32),
                         np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0]])
    return model


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.cnnkit"
    small_model().save(path)
    return path


def rewrite(path, change):
    """The archive at path rewritten with change(name -> array dict) applied."""
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    change(arrays)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def with_config(change):
    def edit(arrays):
        config = json.loads(str(arrays["config"]))
        change(config)
        arrays["config"] = np.array(json.dumps(config))
    return edit


def test_a_saved_file_carries_its_format_version(saved):
    with np.load(saved) as archive:
        config = json.loads(str(archive["config"]))
    assert config["format_version"] == 1 and config["kind"] == "model"


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.99])
def test_a_truncated_file_is_a_value_error(saved, keep):
    data = saved.read_bytes()
    saved.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(ValueError, match=f"{saved.name} is not a cnnkit model .* damaged"):
        load_model(saved)


@pytest.mark.parametrize("where", [0.2, 0.5, 0.8])
def test_flipped_bytes_are_a_value_error(saved, where):
    data = bytearray(saved.read_bytes())
    at = int(len(data) * where)
    data[at:at + 16] = bytes(b ^ 0xFF for b in data[at:at + 16])
    saved.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=saved.name):
        load_model(saved)


FOREIGN = {
    "empty": lambda p: p.write_bytes(b""),
    "text": lambda p: p.write_text("model: not really"),
    "a plain .npy": lambda p: np.save(open(p, "wb"), np.zeros(3)),
    "another program's .npz": lambda p: np.savez(open(p, "wb"), weights=np.zeros(3)),
    "a zip of something else": lambda p: zipfile.ZipFile(p, "w").writestr("a.txt", "hello"),
    "an HDF5 signature": lambda p: p.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100)),
    "a pickle": lambda p: p.write_bytes(b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01."),
}


@pytest.mark.parametrize("kind", FOREIGN, ids=list(FOREIGN))
def test_a_foreign_file_is_a_value_error(tmp_path, kind):
    path = tmp_path / "foreign.keras"
    FOREIGN[kind](path)
    with pytest.raises(ValueError, match="foreign.keras"):
        load_model(path)
    with pytest.raises(ValueError, match="foreign.keras"):
        small_model().load_weights(path)


DAMAGED_CONFIGS = {
    "a newer format": with_config(lambda c: c.update(format_version=99)),
    "no format version": with_config(lambda c: c.pop("format_version")),
    "a config that is a list": lambda a: a.update(config=np.array("[1, 2]")),
    "a config that is not JSON": lambda a: a.update(config=np.array("{oops")),
    "no model": with_config(lambda c: c.pop("model")),
    "an unknown model class": with_config(lambda c: c["model"].update(class_name="Graph")),
    "an unknown layer": with_config(
        lambda c: c["model"]["config"]["layers"][0].update(class_name="Conv9D")),
    "a layer config of the wrong type": with_config(
        lambda c: c["model"]["config"]["layers"][0]["config"].update(filters="three")),
    "a damaged layer table": with_config(lambda c: c.update(layers=[{"name": "x"}])),
    "a damaged optimizer": with_config(lambda c: c["compile"].update(optimizer={"x": 1})),
    "integer weights": lambda a: a.update(weight_0000=a["weight_0000"].astype(np.int32)),
    "a weight of the wrong shape": lambda a: a.update(weight_0000=np.zeros((2, 2), np.float32)),
    "a missing weight": lambda a: a.pop("weight_0003"),
    "an extra array": lambda a: a.update(extra=np.zeros(2)),
    "optimizer state of the wrong shape": lambda a: a.update(opt_0000=np.zeros(7, np.float32)),
}


@pytest.mark.parametrize("damage", DAMAGED_CONFIGS, ids=list(DAMAGED_CONFIGS))
def test_a_damaged_or_incompatible_file_is_a_value_error(saved, damage):
    rewrite(saved, DAMAGED_CONFIGS[damage])
    with pytest.raises(ValueError, match=saved.name):
        load_model(saved)


def test_weights_of_another_architecture_are_refused_before_any_change(tmp_path):
    path = tmp_path / "w.npz"
    small_model().save_weights(path)
    other = models.Sequential([layers.Input((6, 6, 2)), layers.Conv2D(5, 3), layers.Flatten(),
                               layers.Dense(4)])
    before = other.get_weights()
    with pytest.raises(ValueError, match="different architecture"):
        other.load_weights(path)
    assert all(np.array_equal(a, b) for a, b in zip(before, other.get_weights()))


def test_a_file_from_a_big_endian_machine_loads_the_same_values(saved):
    model = load_model(saved)
    rewrite(saved, lambda a: a.update({k: v.astype(v.dtype.newbyteorder(">"))
                                       for k, v in a.items() if k != "config"}))
    swapped = load_model(saved)
    for a, b in zip(model.get_weights(), swapped.get_weights()):
        assert b.dtype == np.float32 and b.dtype.isnative
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(1).random((3, 6, 6, 2), dtype=np.float32)
    np.testing.assert_array_equal(model.predict(x), swapped.predict(x))


KILL_MID_SAVE = """
import os, sys
import numpy as np
from cnnkit.models import load_model
model = load_model(sys.argv[1])
model.get_weights()  # the same model, about to be saved over its own file
def half_written(file, *args, **kwargs):
    file.write(b"PK\\x03\\x04 half a zip")
    file.flush()
    os._exit(9)  # the process dies here, as in a power cut or kill -9
np.savez = half_written
model.save(sys.argv[1])
"""


def test_a_process_killed_mid_save_leaves_the_previous_file_whole(saved):
    before = saved.read_bytes()
    result = subprocess.run([sys.executable, "-c", KILL_MID_SAVE, str(saved)])
    assert result.returncode == 9
    assert saved.read_bytes() == before
    load_model(saved)  # and it still loads
    leftovers = [n for n in os.listdir(saved.parent) if n != saved.name]
    assert all(n.startswith("model.cnnkit.") and n.endswith(".tmp") for n in leftovers)


def test_compile_metrics_and_weighted_metrics_survive_a_save(tmp_path):
    """Metric objects keep their arguments, and weighted_metrics stay weighted, in the file."""
    from cnnkit import metrics
    set_random_seed(0)
    model = models.Sequential([layers.Input((4,)), layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=[metrics.AUC(num_thresholds=37, name="roc"), "Precision"],
                  weighted_metrics=["accuracy"])
    x = np.random.default_rng(0).random((16, 4)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.float32)
    w = np.linspace(0, 1, 16).astype(np.float32)
    before = model.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True)
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    after = loaded.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True)
    assert set(after) == {"loss", "roc", "Precision", "accuracy"} == set(before)
    assert after == pytest.approx(before)
    roc = next(m for m in loaded.metrics if m.name == "roc")
    assert isinstance(roc, metrics.AUC) and roc.num_thresholds == 37
