"""cnnkit.datasets.cifar10.load_data on small synthetic CIFAR-like batches (same pickle layout as
the official files), and its download path against a local HTTP server: no real data, no network.
"""
import hashlib
import http.server
import io
import os
import pickle
import tarfile
import threading

import numpy as np
import pytest

from cnnkit.datasets import DatasetNotFoundError, _download, cifar10

BATCH_IMAGES = 6  # per batch file: 30 training and 6 test images


def make_batch(rng, n, first_label=0):
    """An official-layout batch dict: bytes keys, (n, 3072) uint8 data, a list of int labels."""
    return {b"batch_label": b"synthetic", b"labels": [(first_label + i) % 10 for i in range(n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}


def write_batches(folder, n=BATCH_IMAGES, seed=0, protocol=2):
    """Writes data_batch_1..5 and test_batch into folder/cifar-10-batches-py; returns the batches."""
    rng = np.random.default_rng(seed)
    batches_dir = folder / cifar10.FOLDER
    batches_dir.mkdir(parents=True)
    batches = {name: make_batch(rng, n, first_label=seed) for name in cifar10.BATCHES}
    for name, batch in batches.items():
        (batches_dir / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    (batches_dir / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"airplane"] * 10}))
    return batches


def tar_gz_bytes(members):
    """A .tar.gz in memory holding {name: bytes}."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def archive_bytes(seed=0, n=BATCH_IMAGES):
    rng = np.random.default_rng(seed)
    return tar_gz_bytes({f"{cifar10.FOLDER}/{name}": pickle.dumps(make_batch(rng, n, first_label=seed), protocol=2)
                         for name in cifar10.BATCHES})


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty HOME (so the cache ~/.cnnkit/datasets is empty), no $CNNKIT_DATA, and a download
    URL that refuses connections, so no test can reach the network or the real cache."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("CNNKIT_DATA", raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setattr(cifar10, "URL", "http://127.0.0.1:9/cifar-10-python.tar.gz")  # discard port
    return home


def cache_of(home):
    return home / ".cnnkit" / "datasets"


def first_label(data):
    (_, y_train), _ = data
    return int(y_train[0, 0])


# --- format -------------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_shapes_dtypes_and_pixel_order_follow_keras(tmp_path, home, protocol):
    batches = write_batches(tmp_path, protocol=protocol)
    (x_train, y_train), (x_test, y_test) = cifar10.load_data(tmp_path)
    assert x_train.shape == (5 * BATCH_IMAGES, 32, 32, 3) and x_test.shape == (BATCH_IMAGES, 32, 32, 3)
    assert y_train.shape == (5 * BATCH_IMAGES, 1) and y_test.shape == (BATCH_IMAGES, 1)
    assert {a.dtype for a in (x_train, y_train, x_test, y_test)} == {np.dtype(np.uint8)}
    assert x_train.flags.c_contiguous and x_test.flags.c_contiguous
    # Row-major R, G and B planes become channels last; batches stay in order 1..5.
    data = batches["data_batch_2"][b"data"]
    i, row, col = 1, 5, 7
    for channel in range(3):
        assert x_train[BATCH_IMAGES + i, row, col, channel] == data[i, channel * 1024 + row * 32 + col]
    np.testing.assert_array_equal(x_test.reshape(BATCH_IMAGES, -1),
                                  batches["test_batch"][b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).reshape(BATCH_IMAGES, -1))
    assert y_test[:, 0].tolist() == batches["test_batch"][b"labels"]


def test_string_keys_and_unequal_batches_load(tmp_path, home):
    rng = np.random.default_rng(1)
    folder = tmp_path / cifar10.FOLDER
    folder.mkdir()
    sizes = [4, 6, 2, 5, 3, 7]
    for name, n in zip(cifar10.BATCHES, sizes):
        batch = {key.decode(): value for key, value in make_batch(rng, n).items()}
        (folder / name).write_bytes(pickle.dumps(batch))
    (x_train, y_train), (x_test, y_test) = cifar10.load_data(folder)
    assert x_train.shape == (sum(sizes[:5]), 32, 32, 3) and y_train.shape == (sum(sizes[:5]), 1)
    assert x_test.shape == (7, 32, 32, 3)


# --- where it looks -----------------------------------------------------------------------------

def test_path_comes_before_environment_before_cache(tmp_path, home, monkeypatch):
    write_batches(tmp_path / "given", seed=1)
    write_batches(tmp_path / "env", seed=2)
    write_batches(cache_of(home), seed=3)
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path / "env"))
    assert first_label(cifar10.load_data(tmp_path / "given")) == 1
    assert first_label(cifar10.load_data(str(tmp_path / "given"))) == 1
    assert first_label(cifar10.load_data()) == 2
    monkeypatch.delenv("CNNKIT_DATA")
    assert first_label(cifar10.load_data()) == 3


def test_path_may_be_the_batches_folder_or_the_archive_itself(tmp_path, home):
    write_batches(tmp_path / "a", seed=4)
    assert first_label(cifar10.load_data(tmp_path / "a" / cifar10.FOLDER)) == 4
    (tmp_path / "b.tar.gz").write_bytes(archive_bytes(seed=5))
    assert first_label(cifar10.load_data(tmp_path / "b.tar.gz")) == 5


def test_a_path_without_the_data_warns_and_falls_back(tmp_path, home, monkeypatch):
    write_batches(tmp_path / "env", seed=6)
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path / "env"))
    (tmp_path / "empty").mkdir()
    with pytest.warns(UserWarning, match="no CIFAR-10 under"):
        assert first_label(cifar10.load_data(tmp_path / "empty")) == 6


def test_archive_under_path_or_environment_is_read_in_place_without_any_checksum(tmp_path, home, monkeypatch):
    # The archives differ from the official md5 on purpose: user-supplied data is never checked.
    for folder, seed in [("given", 7), ("env", 8)]:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / cifar10.ARCHIVE).write_bytes(archive_bytes(seed=seed))
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path / "env"))
    monkeypatch.setattr(_download, "download", lambda *a, **k: pytest.fail("must not download"))
    assert first_label(cifar10.load_data(tmp_path / "given")) == 7
    assert first_label(cifar10.load_data()) == 8
    assert sorted(os.listdir(tmp_path / "env")) == [cifar10.ARCHIVE]  # nothing written beside it


def test_archive_in_cache_is_extracted_there(home):
    cache_of(home).mkdir(parents=True)
    (cache_of(home) / cifar10.ARCHIVE).write_bytes(archive_bytes(seed=9))
    assert first_label(cifar10.load_data()) == 9
    assert sorted(os.listdir(cache_of(home) / cifar10.FOLDER)) == sorted(cifar10.BATCHES)


def test_incomplete_folder_names_the_missing_batch(tmp_path, home):
    write_batches(tmp_path)
    (tmp_path / cifar10.FOLDER / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        cifar10.load_data(tmp_path)


# --- damaged or foreign files -------------------------------------------------------------------

def valid_batch():
    return make_batch(np.random.default_rng(0), BATCH_IMAGES)


FOREIGN = {
    "truncated": lambda: pickle.dumps(valid_batch(), protocol=2)[:5000],
    "empty": lambda: b"",
    "not a pickle": lambda: b"this is not a pickle at all" * 100,
    "a list": lambda: pickle.dumps([1, 2, 3]),
    "no labels": lambda: pickle.dumps({b"data": valid_batch()[b"data"]}),
    "float data": lambda: pickle.dumps({**valid_batch(), b"data": valid_batch()[b"data"].astype(np.float32)}),
    "wrong width": lambda: pickle.dumps({**valid_batch(), b"data": np.zeros((BATCH_IMAGES, 1024), np.uint8)}),
    "flat data": lambda: pickle.dumps({**valid_batch(), b"data": np.zeros(3072 * BATCH_IMAGES, np.uint8)}),
    "label count": lambda: pickle.dumps({**valid_batch(), b"labels": [0] * (BATCH_IMAGES + 1)}),
    "label 10": lambda: pickle.dumps({**valid_batch(), b"labels": [10] * BATCH_IMAGES}),
    "label -1": lambda: pickle.dumps({**valid_batch(), b"labels": [-1] * BATCH_IMAGES}),
    "text labels": lambda: pickle.dumps({**valid_batch(), b"labels": ["cat"] * BATCH_IMAGES}),
    "object array": lambda: pickle.dumps({**valid_batch(), b"data": np.array([[1]] * BATCH_IMAGES, dtype=object)}),
}


@pytest.mark.parametrize("kind", sorted(FOREIGN))
def test_damaged_or_foreign_batch_raises_value_error_naming_the_file(tmp_path, home, kind):
    write_batches(tmp_path)
    (tmp_path / cifar10.FOLDER / "data_batch_4").write_bytes(FOREIGN[kind]())
    with pytest.raises(ValueError, match="data_batch_4"):
        cifar10.load_data(tmp_path)


class RunsCode:
    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_pickle_that_would_run_code_is_refused_without_running_it(tmp_path, home):
    write_batches(tmp_path)
    marker = tmp_path / "pwned"
    payload = RunsCode()
    payload.marker = str(marker)
    (tmp_path / cifar10.FOLDER / "test_batch").write_bytes(pickle.dumps({b"data": payload, b"labels": []}))
    with pytest.raises(ValueError, match=r"test_batch.*refusing to load global"):
        cifar10.load_data(tmp_path)
    assert not marker.exists()


def test_truncated_archive_raises_value_error_naming_it(tmp_path, home):
    (tmp_path / cifar10.ARCHIVE).write_bytes(archive_bytes()[:3000])
    with pytest.raises(ValueError, match=cifar10.ARCHIVE):
        cifar10.load_data(tmp_path)


def test_archive_without_batches_raises_value_error_naming_it(tmp_path, home):
    (tmp_path / cifar10.ARCHIVE).write_bytes(tar_gz_bytes({"something/else": b"x"}))
    with pytest.raises(ValueError, match=f"{cifar10.ARCHIVE}.*data_batch_1"):
        cifar10.load_data(tmp_path)


def test_archive_member_escaping_the_folder_is_refused_and_not_written(home):
    cache = cache_of(home)
    cache.mkdir(parents=True)
    members = {f"{cifar10.FOLDER}/{name}": b"x" for name in cifar10.BATCHES}
    members[f"{cifar10.FOLDER}/../../escaped"] = b"evil"
    (cache / cifar10.ARCHIVE).write_bytes(tar_gz_bytes(members))
    with pytest.raises(ValueError, match="escaped"):
        cifar10.load_data()
    assert not (home / ".cnnkit" / "escaped").exists() and not (cache / cifar10.FOLDER).exists()
    assert sorted(os.listdir(cache)) == [cifar10.ARCHIVE]  # no staging folder left behind


# --- not found, and the download ----------------------------------------------------------------

def test_not_found_lists_every_place_and_how_to_supply_the_data(tmp_path, home, monkeypatch):
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path / "env"))
    with pytest.warns(UserWarning), pytest.raises(DatasetNotFoundError) as raised:
        cifar10.load_data(tmp_path / "given")
    message = str(raised.value)
    assert isinstance(raised.value, FileNotFoundError)
    for place in [tmp_path / "given", tmp_path / "env", cache_of(home), cifar10.URL, "CNNKIT_DATA", "--data"]:
        assert str(place) in message, place
    assert os.listdir(cache_of(home)) == []  # the failed download left nothing


def test_not_found_says_when_nothing_was_given(home):
    with pytest.raises(DatasetNotFoundError, match=r"path argument: \(not given\)\n  \$CNNKIT_DATA: \(not set\)"):
        cifar10.load_data()


class ArchiveServer(http.server.ThreadingHTTPServer):
    """Serves `self.body` at any path; with `self.cut_at` set, promises the whole body but sends
    only that many bytes and hangs up, like a dropped connection."""
    body, cut_at, requests = b"", None, 0


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        server = self.server
        server.requests += 1
        self.send_response(200)
        self.send_header("Content-Length", str(len(server.body)))
        self.end_headers()
        self.wfile.write(server.body if server.cut_at is None else server.body[:server.cut_at])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server(home, monkeypatch):
    server = ArchiveServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    server.body = archive_bytes(seed=3, n=4)
    monkeypatch.setattr(cifar10, "URL", f"http://127.0.0.1:{server.server_address[1]}/cifar-10-python.tar.gz")
    monkeypatch.setattr(cifar10, "MD5", hashlib.md5(server.body).hexdigest())
    yield server
    server.shutdown()
    server.server_close()


def test_download_verifies_extracts_and_is_reused(home, server, capfd):
    (x_train, y_train), (x_test, _) = cifar10.load_data()
    assert x_train.shape == (20, 32, 32, 3) and x_test.shape == (4, 32, 32, 3) and y_train[0, 0] == 3
    cache = cache_of(home)
    assert sorted(os.listdir(cache)) == sorted([cifar10.ARCHIVE, cifar10.FOLDER])  # no .part left
    assert (cache / cifar10.ARCHIVE).read_bytes() == server.body
    err = capfd.readouterr().err
    assert f"Downloading data from {cifar10.URL}" in err and f"{len(server.body)}/{len(server.body)}" in err
    cifar10.load_data()
    assert server.requests == 1  # the second load found the cache


def test_bad_checksum_removes_the_file_and_raises(home, server, monkeypatch):
    monkeypatch.setattr(cifar10, "MD5", "0" * 32)
    with pytest.raises(DatasetNotFoundError, match="md5") as raised:
        cifar10.load_data()
    assert isinstance(raised.value.__cause__, _download.ChecksumError)
    assert os.listdir(cache_of(home)) == []


def test_dropped_connection_leaves_no_partial_file(home, server):
    server.cut_at = len(server.body) // 2
    with pytest.raises(DatasetNotFoundError):
        cifar10.load_data()
    assert os.listdir(cache_of(home)) == []


def test_interrupted_download_leaves_no_partial_file(home, server, monkeypatch):
    def interrupt(self, done, final=False):
        raise KeyboardInterrupt
    monkeypatch.setattr(_download, "CHUNK_BYTES", 1024)
    monkeypatch.setattr(_download._ProgressBar, "update", interrupt)
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C is not turned into a data set error
        cifar10.load_data()
    assert os.listdir(cache_of(home)) == []
