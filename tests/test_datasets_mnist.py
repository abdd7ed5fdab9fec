"""cnnkit.datasets.mnist and fashion_mnist on small synthetic files in each format they read
(Keras' .npz, the original IDX files plain and gzipped), their checks on damaged files, where they
look, and their downloads from a local HTTP server: no real data, no network."""
import gzip
import hashlib
import os
import struct

import numpy as np
import pytest

from cnnkit.datasets import DatasetNotFoundError, _download, fashion_mnist, mnist
import datasets_helpers
from datasets_helpers import cache_of

home, server = datasets_helpers.home, datasets_helpers.server  # fixtures

os.environ.setdefault("KERAS_BACKEND", "numpy")  # for the Keras-parity tests, before keras loads

N_TRAIN, N_TEST = 7, 3
IDX = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
       "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}


def make_arrays(seed=0, n_train=N_TRAIN, n_test=N_TEST):
    """Keras' MNIST arrays in miniature; y_train[0] is the seed (to tell copies apart)."""
    rng = np.random.default_rng(seed)
    arrays = {"x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "y_train": rng.integers(0, 10, n_train).astype(np.uint8),
              "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "y_test": rng.integers(0, 10, n_test).astype(np.uint8)}
    arrays["y_train"][0] = seed % 10
    return arrays


def idx_bytes(array, type_code=0x08):
    """The IDX encoding of a uint8 array: magic, big-endian dimensions, values."""
    return bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx(folder, arrays, gz=True, dotted=False):
    folder.mkdir(parents=True, exist_ok=True)
    for key, name in IDX.items():
        name = name.replace("-idx", ".idx") if dotted else name
        content = idx_bytes(arrays[key])
        (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(content) if gz else content)
    return folder


def write_npz(file, arrays):
    file.parent.mkdir(parents=True, exist_ok=True)
    with open(file, "wb") as out:
        np.savez_compressed(out, **arrays)
    return file


def assert_loaded(data, arrays):
    (x_train, y_train), (x_test, y_test) = data
    assert x_train.shape == (len(arrays["x_train"]), 28, 28) and x_test.shape == (len(arrays["x_test"]), 28, 28)
    assert y_train.shape == (len(arrays["y_train"]),) and y_test.shape == (len(arrays["y_test"]),)
    assert {a.dtype for a in (x_train, y_train, x_test, y_test)} == {np.dtype(np.uint8)}
    for key, array in zip(("x_train", "y_train", "x_test", "y_test"), (x_train, y_train, x_test, y_test)):
        np.testing.assert_array_equal(array, arrays[key])


def first_label(data):
    return int(data[0][1][0])


LOADERS = {"mnist": mnist, "fashion_mnist": fashion_mnist}


# --- formats ------------------------------------------------------------------------------------

@pytest.mark.parametrize("loader", sorted(LOADERS))
@pytest.mark.parametrize("gz, dotted", [(True, False), (False, False), (False, True), (True, True)])
def test_idx_files_plain_or_gzipped(tmp_path, home, loader, gz, dotted):
    arrays = make_arrays(seed=3)
    write_idx(tmp_path / "mine", arrays, gz=gz, dotted=dotted)
    data = LOADERS[loader].load_data(path=tmp_path / "mine")
    assert_loaded(data, arrays)
    assert all(array.flags.writeable and array.flags.c_contiguous for split in data for array in split)
    assert home.requested == []


def test_mnist_npz_in_a_folder_or_as_an_absolute_file(tmp_path, home):
    arrays = make_arrays(seed=4)
    write_npz(tmp_path / "mine" / "mnist.npz", arrays)
    assert_loaded(mnist.load_data(tmp_path / "mine"), arrays)
    assert_loaded(mnist.load_data(str(tmp_path / "mine" / "mnist.npz")), arrays)
    os.rename(tmp_path / "mine" / "mnist.npz", tmp_path / "mine" / "renamed.npz")
    assert_loaded(mnist.load_data(tmp_path / "mine" / "renamed.npz"), arrays)


def test_fashion_npz_and_labels_of_other_integer_types(tmp_path, home):
    arrays = make_arrays(seed=5)
    stored = {**arrays, "y_train": arrays["y_train"].astype(np.int64)}
    write_npz(tmp_path / "mine" / "fashion-mnist.npz", stored)
    assert_loaded(fashion_mnist.load_data(tmp_path / "mine"), arrays)
    assert_loaded(fashion_mnist.load_data(tmp_path / "mine" / "fashion-mnist.npz"), arrays)


@pytest.mark.parametrize("loader, subfolder", [("mnist", "mnist"), ("fashion_mnist", "fashion-mnist")])
def test_a_folder_holding_the_data_set_folder(tmp_path, home, loader, subfolder):
    arrays = make_arrays(seed=6)
    write_idx(tmp_path / "mine" / subfolder, arrays)
    assert_loaded(LOADERS[loader].load_data(path=tmp_path / "mine"), arrays)


def test_mnist_matches_keras_on_the_same_npz(tmp_path, home, monkeypatch):
    keras_mnist = pytest.importorskip("keras.src.datasets.mnist")
    file = write_npz(tmp_path / "mnist.npz", make_arrays(seed=7))
    monkeypatch.setattr(keras_mnist, "get_file", lambda fname, origin, file_hash: str(file))
    expected = keras_mnist.load_data()
    got = mnist.load_data(file)
    for want, have in zip(sum(expected, ()), sum(got, ())):
        assert have.dtype == want.dtype and have.shape == want.shape
        np.testing.assert_array_equal(have, want)


def test_fashion_mnist_matches_keras_on_the_same_files(tmp_path, home, monkeypatch):
    keras_fashion = pytest.importorskip("keras.src.datasets.fashion_mnist")
    folder = write_idx(tmp_path / "fashion-mnist", make_arrays(seed=8))
    monkeypatch.setattr(keras_fashion, "get_file", lambda fname, origin, cache_subdir: str(folder / fname))
    expected = keras_fashion.load_data()
    got = fashion_mnist.load_data(folder)
    for want, have in zip(sum(expected, ()), sum(got, ())):
        assert have.dtype == want.dtype and have.shape == want.shape
        np.testing.assert_array_equal(have, want)


def test_class_names():
    assert mnist.CLASS_NAMES == tuple("0123456789")
    assert len(fashion_mnist.CLASS_NAMES) == 10 and fashion_mnist.CLASS_NAMES[9] == "Ankle boot"


# --- where they look ----------------------------------------------------------------------------

def test_mnist_path_before_environment_before_cache(tmp_path, home, monkeypatch):
    write_npz(tmp_path / "given" / "mnist.npz", make_arrays(seed=1))
    write_idx(tmp_path / "env" / "mnist", make_arrays(seed=2))
    write_npz(cache_of(home) / "mnist.npz", make_arrays(seed=3))
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path / "env"))
    assert first_label(mnist.load_data(tmp_path / "given")) == 1
    assert first_label(mnist.load_data()) == 2
    assert first_label(mnist.load_data(None)) == 2  # None means the default, as for cifar10
    monkeypatch.delenv("CNNKIT_DATA")
    assert first_label(mnist.load_data()) == 3
    assert home.requested == []


def test_fashion_path_before_environment_before_cache(tmp_path, home, monkeypatch):
    write_idx(tmp_path / "given", make_arrays(seed=1))
    write_idx(tmp_path / "env" / "fashion-mnist", make_arrays(seed=2), gz=False)
    write_idx(cache_of(home) / "fashion-mnist", make_arrays(seed=3))
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path / "env"))
    assert first_label(fashion_mnist.load_data(tmp_path / "given")) == 1
    assert first_label(fashion_mnist.load_data()) == 2
    monkeypatch.delenv("CNNKIT_DATA")
    assert first_label(fashion_mnist.load_data()) == 3
    assert home.requested == []


def test_mnist_relative_path_is_a_file_name_in_the_environment_or_cache_as_in_keras(tmp_path, home, monkeypatch):
    write_npz(tmp_path / "env" / "other.npz", make_arrays(seed=4))
    write_npz(cache_of(home) / "sub" / "third.npz", make_arrays(seed=5))
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path / "env"))
    assert first_label(mnist.load_data("other.npz")) == 4
    assert first_label(mnist.load_data(os.path.join("sub", "third.npz"))) == 5


def test_bare_idx_files_in_the_environment_are_not_taken_for_either_data_set(tmp_path, home, monkeypatch):
    # MNIST and Fashion-MNIST files share their names: outside a folder you name, each data set
    # is only looked for in its own subfolder.
    write_idx(tmp_path / "env", make_arrays())
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path / "env"))
    for loader in LOADERS.values():
        with pytest.raises(DatasetNotFoundError):
            loader.load_data()


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_a_path_without_the_data_warns_and_falls_back(tmp_path, home, monkeypatch, loader):
    subfolder = {"mnist": "mnist", "fashion_mnist": "fashion-mnist"}[loader]
    write_idx(tmp_path / "env" / subfolder, make_arrays(seed=6))
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path / "env"))
    (tmp_path / "empty").mkdir()
    with pytest.warns(UserWarning, match="under"):
        assert first_label(LOADERS[loader].load_data(path=tmp_path / "empty")) == 6


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_an_incomplete_idx_folder_names_the_missing_file(tmp_path, home, loader):
    folder = write_idx(tmp_path / "mine", make_arrays())
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        LOADERS[loader].load_data(path=folder)


# --- offline ------------------------------------------------------------------------------------

def test_mnist_offline_names_the_url_and_the_folders_to_fill(tmp_path, home, monkeypatch):
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path / "env"))
    with pytest.raises(DatasetNotFoundError) as raised:
        mnist.load_data()
    message = str(raised.value)
    assert isinstance(raised.value, FileNotFoundError)
    for text in [f"Download of {mnist.URL} failed: URLError", mnist.SHA256, tmp_path / "env",
                 cache_of(home), "CNNKIT_DATA", "'mnist.npz', a file name", "train-images-idx3-ubyte"]:
        assert str(text) in message, text
    assert home.requested == [mnist.URL]
    assert not (cache_of(home) / "mnist.npz").exists()


def test_fashion_offline_names_the_urls_and_the_folders_to_fill(tmp_path, home):
    with pytest.warns(UserWarning), pytest.raises(DatasetNotFoundError) as raised:
        fashion_mnist.load_data(path=tmp_path / "missing")
    message = str(raised.value)
    for text in [f"Download of {fashion_mnist.BASE_URL}train-labels-idx1-ubyte.gz failed",
                 fashion_mnist.BASE_URL + "t10k-images-idx3-ubyte.gz", tmp_path / "missing",
                 cache_of(home), "path argument", "$CNNKIT_DATA: (not set)", "fashion-mnist/"]:
        assert str(text) in message, text
    assert len(home.requested) == 1  # stopped at the first failure


# --- damaged or foreign files -------------------------------------------------------------------

def _images():
    return make_arrays()["x_train"]


def _labels():
    return make_arrays()["y_train"]


BAD_IDX = {  # file -> bytes, each replacing one of the four files
    "bad magic": ("train-images-idx3-ubyte", lambda: b"\x01\x02" + idx_bytes(_images())[2:]),
    "int32 values": ("train-images-idx3-ubyte", lambda: idx_bytes(_images(), type_code=0x0C)),
    "2 dimensions": ("train-images-idx3-ubyte", lambda: idx_bytes(_images().reshape(N_TRAIN, 784))),
    "27 rows": ("train-images-idx3-ubyte", lambda: idx_bytes(_images()[:, :27])),
    "truncated header": ("train-images-idx3-ubyte", lambda: idx_bytes(_images())[:9]),
    "truncated values": ("train-images-idx3-ubyte", lambda: idx_bytes(_images())[:-5]),
    "trailing bytes": ("train-images-idx3-ubyte", lambda: idx_bytes(_images()) + b"\0"),
    "empty": ("train-labels-idx1-ubyte", lambda: b""),
    "labels as images": ("train-labels-idx1-ubyte", lambda: idx_bytes(_images())),
    "label count": ("train-labels-idx1-ubyte", lambda: idx_bytes(_labels()[:-1])),
    "label 10": ("train-labels-idx1-ubyte", lambda: idx_bytes(np.full(N_TRAIN, 10, np.uint8))),
    "huge header": ("train-images-idx3-ubyte",  # promises 2**31 images, holds 7
                    lambda: bytes([0, 0, 8, 3]) + struct.pack(">3I", 2**31, 28, 28) + _images().tobytes()),
}


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("kind", sorted(BAD_IDX))
def test_damaged_idx_raises_value_error_naming_the_file(tmp_path, home, kind, gz):
    name, content = BAD_IDX[kind]
    folder = write_idx(tmp_path / "mine", make_arrays(), gz=gz)
    file = folder / (name + ".gz" if gz else name)
    file.write_bytes(gzip.compress(content()) if gz else content())
    with pytest.raises(ValueError, match=name):
        mnist.load_data(folder)


@pytest.mark.parametrize("kind", ["cut", "garbage"])
def test_damaged_gzip_raises_value_error_naming_the_file(tmp_path, home, kind):
    folder = write_idx(tmp_path / "mine", make_arrays())
    file = folder / "t10k-images-idx3-ubyte.gz"
    content = file.read_bytes()
    file.write_bytes(content[:len(content) // 2] if kind == "cut" else content[:10] + b"garbage" * 50)
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz"):
        fashion_mnist.load_data(folder)


def _save(file, save, *args, **kwargs):
    with open(file, "wb") as out:
        save(out, *args, **kwargs)


BAD_NPZ = {
    "not a zip": lambda file: file.write_bytes(b"not an npz at all" * 20),
    "truncated": lambda file: file.write_bytes(write_npz(file, make_arrays()).read_bytes()[:400]),
    "a plain npy": lambda file: _save(file, np.save, make_arrays()["x_train"]),
    "missing y_test": lambda file: write_npz(file, {k: v for k, v in make_arrays().items() if k != "y_test"}),
    "float images": lambda file: write_npz(file, {**make_arrays(), "x_train": make_arrays()["x_train"] / 255}),
    "colour images": lambda file: write_npz(file, {**make_arrays(), "x_test": np.zeros((N_TEST, 28, 28, 3), np.uint8)}),
    "text labels": lambda file: write_npz(file, {**make_arrays(), "y_train": np.array(["7"] * N_TRAIN)}),
    "label count": lambda file: write_npz(file, {**make_arrays(), "y_test": np.zeros(N_TEST + 1, np.uint8)}),
    "label -1": lambda file: write_npz(file, {**make_arrays(), "y_test": np.full(N_TEST, -1)}),
    "pickled objects": lambda file: _save(file, np.savez, **{**make_arrays(), "y_train": np.array([None] * N_TRAIN)}),
}


@pytest.mark.parametrize("kind", sorted(BAD_NPZ))
def test_damaged_npz_raises_value_error_naming_the_file(tmp_path, home, kind):
    file = tmp_path / "mine" / "mnist.npz"
    file.parent.mkdir()
    BAD_NPZ[kind](file)
    with pytest.raises(ValueError, match="mnist.npz"):
        mnist.load_data(file)


# --- downloads ----------------------------------------------------------------------------------

@pytest.fixture
def served(server, tmp_path):
    server.tmp = tmp_path / "served"
    return server


def _serve_mnist(server, monkeypatch, arrays):
    body = write_npz(server.tmp / "mnist.npz", arrays).read_bytes()
    server.files["mnist.npz"] = body
    monkeypatch.setattr(mnist, "URL", server.url("mnist.npz"))
    monkeypatch.setattr(mnist, "SHA256", hashlib.sha256(body).hexdigest())
    return body


def test_mnist_download_is_checked_cached_and_reused(home, served, monkeypatch, capfd):
    arrays = make_arrays(seed=9)
    body = _serve_mnist(served, monkeypatch, arrays)
    assert_loaded(mnist.load_data(), arrays)
    assert sorted(os.listdir(cache_of(home))) == ["mnist.npz"]  # no partial file left
    assert (cache_of(home) / "mnist.npz").read_bytes() == body
    assert f"Downloading data from {mnist.URL}" in capfd.readouterr().err
    assert_loaded(mnist.load_data(), arrays)
    assert served.requests == ["mnist.npz"]


def test_mnist_download_with_a_wrong_checksum_is_removed(home, served, monkeypatch):
    _serve_mnist(served, monkeypatch, make_arrays())
    monkeypatch.setattr(mnist, "SHA256", "0" * 64)
    with pytest.raises(DatasetNotFoundError, match="sha256") as raised:
        mnist.load_data()
    assert isinstance(raised.value.__cause__, _download.ChecksumError)
    assert os.listdir(cache_of(home)) == []


def test_fashion_download_fetches_only_the_missing_files(home, served, monkeypatch):
    arrays = make_arrays(seed=2)
    bodies = {name + ".gz": gzip.compress(idx_bytes(arrays[key])) for key, name in IDX.items()}
    served.files.update(bodies)
    monkeypatch.setattr(fashion_mnist, "BASE_URL", served.url())
    monkeypatch.setattr(fashion_mnist, "MD5", {name: hashlib.md5(body).hexdigest() for name, body in bodies.items()})
    folder = cache_of(home) / "fashion-mnist"
    folder.mkdir(parents=True)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(bodies["train-labels-idx1-ubyte.gz"])  # an earlier try
    assert_loaded(fashion_mnist.load_data(), arrays)
    assert sorted(served.requests) == sorted(set(bodies) - {"train-labels-idx1-ubyte.gz"})
    assert sorted(os.listdir(folder)) == sorted(bodies)
    fashion_mnist.load_data()
    assert len(served.requests) == 3


def test_fashion_download_with_a_wrong_checksum_is_removed(home, served, monkeypatch):
    arrays = make_arrays()
    served.files.update({name + ".gz": gzip.compress(idx_bytes(arrays[key])) for key, name in IDX.items()})
    monkeypatch.setattr(fashion_mnist, "BASE_URL", served.url())
    monkeypatch.setattr(fashion_mnist, "MD5", {name + ".gz": "0" * 32 for name in IDX.values()})
    with pytest.raises(DatasetNotFoundError, match="md5"):
        fashion_mnist.load_data()
    assert os.listdir(cache_of(home) / "fashion-mnist") == []


def test_published_hashes_are_the_ones_keras_and_zalando_give():
    # Keras' mnist.py file_hash; Fashion-MNIST's README md5 sums (Keras gives none for them).
    assert mnist.SHA256 == "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
    assert _download.hash_algorithm(mnist.SHA256) == "sha256"
    assert set(fashion_mnist.MD5) == {name + ".gz" for name in IDX.values()}
    assert all(_download.hash_algorithm(md5) == "md5" for md5 in fashion_mnist.MD5.values())
