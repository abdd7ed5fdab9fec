"""Pieces the data set tests share: an isolated HOME with no network, and a local HTTP server
standing in for the download sites (no test touches the network or the real cache)."""
import http.server
import pathlib
import threading
import urllib.error

import pytest

from cnnkit.datasets import _download

REAL_DOWNLOAD = _download.download


class Home(type(pathlib.Path())):
    """The test HOME folder; `requested` lists the URLs a loader tried to download."""
    requested: list


def cache_of(home):
    return home / ".cnnkit" / "datasets"


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty HOME (so the cache ~/.cnnkit/datasets is empty), no $CNNKIT_DATA, and a download
    function that fails as an offline machine does, recording the URLs asked for."""
    home = Home(tmp_path / "home")
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("CNNKIT_DATA", raising=False)
    home.requested = []

    def offline(url, destination, file_hash, **kwargs):
        home.requested.append(url)
        raise urllib.error.URLError("no network in tests")
    monkeypatch.setattr(_download, "download", offline)
    return home


class FileServer(http.server.ThreadingHTTPServer):
    """Serves `files` ({name: bytes}) at /<name>, and counts the requests per name."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files, self.requests = {}, []

    def url(self, name=""):
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        name = self.path.lstrip("/")
        self.server.requests.append(name)
        body = self.server.files.get(name)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server(home, monkeypatch):
    """A local FileServer, with the real downloader restored (it only reaches 127.0.0.1)."""
    monkeypatch.setattr(_download, "download", REAL_DOWNLOAD)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    server = FileServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
