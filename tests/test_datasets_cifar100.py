"""cnnkit.datasets.cifar100 on small synthetic files in the official layout (cifar-100-python/
train, test, meta pickles, as a folder or a .tar.gz), its checks on damaged files, where it looks,
and its download from a local HTTP server: no real data, no network."""
import hashlib
import io
import os
import pickle
import tarfile

import numpy as np
import pytest

from cnnkit.datasets import DatasetNotFoundError, _download, cifar100
import datasets_helpers
from datasets_helpers import cache_of

home, server = datasets_helpers.home, datasets_helpers.server  # fixtures

os.environ.setdefault("KERAS_BACKEND", "numpy")  # for the Keras-parity test, before keras loads

N = {"train": 8, "test": 5}


def make_split(rng, n, first_fine=0):
    """An official-layout CIFAR-100 dict: bytes keys, (n, 3072) uint8 data, lists of int labels
    (fine 0-99, coarse 0-19); the first fine label is `first_fine` (to tell copies apart)."""
    fine = [first_fine] + rng.integers(0, 100, n - 1).tolist()
    return {b"filenames": [b"x.png"] * n, b"batch_label": b"synthetic",
            b"fine_labels": fine, b"coarse_labels": [label // 5 for label in fine],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}


def make_files(seed=0, protocol=2):
    rng = np.random.default_rng(seed)
    files = {name: make_split(rng, n, first_fine=seed) for name, n in N.items()}
    meta = {b"fine_label_names": [name.encode() for name in cifar100.FINE_CLASS_NAMES],
            b"coarse_label_names": [name.encode() for name in cifar100.COARSE_CLASS_NAMES]}
    return {name: pickle.dumps(content, protocol=protocol) for name, content in files.items()} | {
        "meta": pickle.dumps(meta, protocol=protocol)}, files


def write_folder(place, seed=0, protocol=2):
    blobs, files = make_files(seed, protocol)
    folder = place / cifar100.FOLDER
    folder.mkdir(parents=True)
    for name, blob in blobs.items():
        (folder / name).write_bytes(blob)
    return files


def tar_gz_bytes(members):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def archive_bytes(seed=0):
    blobs, _ = make_files(seed)
    return tar_gz_bytes({f"{cifar100.FOLDER}/{name}": blob for name, blob in blobs.items()})


def first_fine(data):
    return int(data[0][1][0, 0])


# --- format -------------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", [2, 5])
@pytest.mark.parametrize("label_mode", ["fine", "coarse"])
def test_shapes_dtypes_pixel_order_and_label_modes(tmp_path, home, label_mode, protocol):
    files = write_folder(tmp_path, protocol=protocol)
    (x_train, y_train), (x_test, y_test) = cifar100.load_data(label_mode, path=tmp_path)
    assert x_train.shape == (N["train"], 32, 32, 3) and x_test.shape == (N["test"], 32, 32, 3)
    assert y_train.shape == (N["train"], 1) and y_test.shape == (N["test"], 1)
    assert x_train.dtype == x_test.dtype == np.uint8
    assert y_train.dtype == y_test.dtype == np.int64  # as Keras' cifar100 returns them
    data = files["train"][b"data"]
    i, row, col = 3, 5, 7
    for channel in range(3):
        assert x_train[i, row, col, channel] == data[i, channel * 1024 + row * 32 + col]
    key = f"{label_mode}_labels".encode()
    assert y_train[:, 0].tolist() == files["train"][key] and y_test[:, 0].tolist() == files["test"][key]
    assert home.requested == []


@pytest.mark.parametrize("label_mode", ["fine", "coarse"])
def test_matches_keras_on_the_same_files(tmp_path, home, monkeypatch, label_mode):
    keras_cifar100 = pytest.importorskip("keras.src.datasets.cifar100")
    write_folder(tmp_path, protocol=4)  # Keras' unpickler refuses protocol 2's _codecs.encode
    monkeypatch.setattr(keras_cifar100, "get_file", lambda **kwargs: str(tmp_path))
    expected = keras_cifar100.load_data(label_mode)
    got = cifar100.load_data(label_mode, path=tmp_path)
    for want, have in zip(sum(expected, ()), sum(got, ())):
        assert have.dtype == want.dtype and have.shape == want.shape
        np.testing.assert_array_equal(have, want)


@pytest.mark.parametrize("label_mode", ["Fine", "", None, 1, "coarse_labels"])
def test_unknown_label_mode_is_refused_before_looking_for_files(home, label_mode):
    with pytest.raises(ValueError, match="label_mode"):
        cifar100.load_data(label_mode)
    assert home.requested == []


def test_class_names_follow_the_official_meta_order():
    assert len(set(cifar100.FINE_CLASS_NAMES)) == 100 and len(set(cifar100.COARSE_CLASS_NAMES)) == 20
    assert list(cifar100.FINE_CLASS_NAMES) == sorted(cifar100.FINE_CLASS_NAMES)
    assert list(cifar100.COARSE_CLASS_NAMES) == sorted(cifar100.COARSE_CLASS_NAMES)


# --- where it looks -----------------------------------------------------------------------------

def test_path_before_environment_before_cache(tmp_path, home, monkeypatch):
    write_folder(tmp_path / "given", seed=1)
    write_folder(tmp_path / "env", seed=2)
    write_folder(cache_of(home), seed=3)
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path / "env"))
    assert first_fine(cifar100.load_data(path=tmp_path / "given")) == 1
    assert first_fine(cifar100.load_data()) == 2
    monkeypatch.delenv("CNNKIT_DATA")
    assert first_fine(cifar100.load_data()) == 3


def test_path_may_be_the_folder_itself_or_the_archive(tmp_path, home):
    write_folder(tmp_path / "a", seed=4)
    assert first_fine(cifar100.load_data(path=tmp_path / "a" / cifar100.FOLDER)) == 4
    (tmp_path / "b.tar.gz").write_bytes(archive_bytes(seed=5))
    assert first_fine(cifar100.load_data("coarse", tmp_path / "b.tar.gz")) == 5 // 5


def test_archive_in_environment_is_read_in_place(tmp_path, home, monkeypatch):
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / cifar100.ARCHIVE).write_bytes(archive_bytes(seed=6))
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path / "env"))
    assert first_fine(cifar100.load_data()) == 6
    assert os.listdir(tmp_path / "env") == [cifar100.ARCHIVE]


def test_archive_in_cache_is_extracted_there(home):
    cache_of(home).mkdir(parents=True)
    (cache_of(home) / cifar100.ARCHIVE).write_bytes(archive_bytes(seed=7))
    assert first_fine(cifar100.load_data()) == 7
    assert sorted(os.listdir(cache_of(home) / cifar100.FOLDER)) == ["meta", "test", "train"]


def test_a_path_without_the_data_warns_and_falls_back(tmp_path, home, monkeypatch):
    write_folder(tmp_path / "env", seed=8)
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path / "env"))
    (tmp_path / "empty").mkdir()
    with pytest.warns(UserWarning, match="no CIFAR-100 under"):
        assert first_fine(cifar100.load_data(path=tmp_path / "empty")) == 8


def test_missing_test_file_is_named(tmp_path, home):
    write_folder(tmp_path)
    (tmp_path / cifar100.FOLDER / "test").unlink()
    with pytest.raises(FileNotFoundError, match="test"):
        cifar100.load_data(path=tmp_path)


def test_offline_names_the_url_and_the_folders_to_fill(tmp_path, home, monkeypatch):
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path / "env"))
    with pytest.raises(DatasetNotFoundError) as raised:
        cifar100.load_data()
    message = str(raised.value)
    assert isinstance(raised.value, FileNotFoundError)
    for text in [f"Download of {cifar100.URL} failed", cifar100.SHA256, tmp_path / "env", cache_of(home), "CNNKIT_DATA",
                 "path argument: (not given)", cifar100.FOLDER]:
        assert str(text) in message, text
    assert home.requested == [cifar100.URL]


# --- damaged or foreign files -------------------------------------------------------------------

def valid():
    return make_split(np.random.default_rng(0), N["train"])


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


FOREIGN = {
    "truncated": lambda tmp: pickle.dumps(valid(), protocol=2)[:3000],
    "not a pickle": lambda tmp: b"not a pickle" * 100,
    "a list": lambda tmp: pickle.dumps([1, 2]),
    "no coarse labels": lambda tmp: pickle.dumps({k: v for k, v in valid().items() if k != b"coarse_labels"}),
    "fine label 100": lambda tmp: pickle.dumps({**valid(), b"fine_labels": [100] * N["train"]}),
    "coarse label 20": lambda tmp: pickle.dumps({**valid(), b"coarse_labels": [20] * N["train"]}),
    "label count": lambda tmp: pickle.dumps({**valid(), b"coarse_labels": [0] * (N["train"] + 1)}),
    "wrong width": lambda tmp: pickle.dumps({**valid(), b"data": np.zeros((N["train"], 1024), np.uint8)}),
    "runs code": lambda tmp: pickle.dumps({**valid(), b"data": RunsCode(str(tmp / "pwned"))}),
}


@pytest.mark.parametrize("kind", sorted(FOREIGN))
def test_damaged_or_foreign_file_raises_value_error_naming_it(tmp_path, home, kind):
    write_folder(tmp_path)
    (tmp_path / cifar100.FOLDER / "train").write_bytes(FOREIGN[kind](tmp_path))
    # 'coarse' reads (and so checks) the coarse labels; the fine ones are checked in fine mode.
    label_mode = "fine" if kind == "fine label 100" else "coarse"
    with pytest.raises(ValueError, match=f"{cifar100.FOLDER}.train"):
        cifar100.load_data(label_mode, path=tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_truncated_archive_raises_value_error_naming_it(tmp_path, home):
    (tmp_path / cifar100.ARCHIVE).write_bytes(archive_bytes()[:2000])
    with pytest.raises(ValueError, match=cifar100.ARCHIVE):
        cifar100.load_data(path=tmp_path)


def test_archive_without_test_file_names_it(tmp_path, home):
    blobs, _ = make_files()
    (tmp_path / cifar100.ARCHIVE).write_bytes(tar_gz_bytes({f"{cifar100.FOLDER}/train": blobs["train"]}))
    with pytest.raises(ValueError, match=f"{cifar100.ARCHIVE} lacks.*test"):
        cifar100.load_data(path=tmp_path)


# --- download -----------------------------------------------------------------------------------

def test_download_is_checked_extracted_and_reused(home, server, monkeypatch):
    body = archive_bytes(seed=9)
    server.files[cifar100.ARCHIVE] = body
    monkeypatch.setattr(cifar100, "URL", server.url(cifar100.ARCHIVE))
    monkeypatch.setattr(cifar100, "SHA256", hashlib.sha256(body).hexdigest())
    assert first_fine(cifar100.load_data()) == 9
    assert sorted(os.listdir(cache_of(home))) == sorted([cifar100.ARCHIVE, cifar100.FOLDER])
    assert cifar100.load_data("coarse")[1][1].shape == (N["test"], 1)
    assert server.requests == [cifar100.ARCHIVE]


def test_download_with_a_wrong_checksum_is_removed(home, server, monkeypatch):
    server.files[cifar100.ARCHIVE] = archive_bytes()
    monkeypatch.setattr(cifar100, "URL", server.url(cifar100.ARCHIVE))
    with pytest.raises(DatasetNotFoundError, match="sha256") as raised:
        cifar100.load_data()
    assert isinstance(raised.value.__cause__, _download.ChecksumError)
    assert os.listdir(cache_of(home)) == []


def test_published_hash_is_keras_one():
    assert cifar100.SHA256 == "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"
    assert cifar100.URL == "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
