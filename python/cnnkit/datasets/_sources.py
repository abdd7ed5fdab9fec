"""Where the data set loaders look for their files, and what they say when the files are nowhere.

Every loader searches, in order: the folder (or file) the user passes, the folder named by
$CNNKIT_DATA, and the cache ~/.cnnkit/datasets; only then does it download into the cache. Files
the user points at (the first two) are read as they are, never checked against the published
checksums, so re-encoded copies work; downloads are always checked.
"""
import os

from . import _download
from ._errors import DatasetNotFoundError

ENV_VAR = "CNNKIT_DATA"
PATH_LABEL = "path argument"
ENV_LABEL = f"${ENV_VAR}"
CACHE_LABEL = "cache"


def cache_dir():
    """~/.cnnkit/datasets, looked up on every call so that HOME can change (tests do)."""
    return os.path.join(os.path.expanduser("~"), ".cnnkit", "datasets")


def environment_folder():
    """The folder $CNNKIT_DATA names (user-expanded), or None when it is unset or empty."""
    folder = os.environ.get(ENV_VAR)
    return os.path.expanduser(folder) if folder else None


def user_path(path):
    """`path` (str or os.PathLike) with ~ expanded, or None."""
    return os.path.expanduser(os.fspath(path)) if path is not None else None


def places(path):
    """[(label, folder or None)] in search order: the path argument, $CNNKIT_DATA, the cache."""
    return [(PATH_LABEL, user_path(path)), (ENV_LABEL, environment_folder()), (CACHE_LABEL, cache_dir())]


def fetch(downloads, folder, searched, title, supply):
    """Downloads each (url, file name, published hash) into `folder` (made if missing), skipping
    the files already there. Any failure (network, permission, checksum) becomes a
    DatasetNotFoundError listing the places searched and how to supply the files."""
    url = downloads[0][0]
    try:
        os.makedirs(folder, exist_ok=True)
        for url, name, file_hash in downloads:
            target = os.path.join(folder, name)
            if not os.path.isfile(target):
                _download.download(url, target, file_hash)
    except Exception as error:
        raise DatasetNotFoundError(not_found_message(title, searched, url, error, supply)) from error
    return folder


def not_found_message(title, searched, url, error, supply):
    """The DatasetNotFoundError text: every (label, place) searched in order, which download
    failed and why, then the lines of `supply` (how to provide the files by hand)."""
    lines = [f"{title} was not found, and downloading it failed.", "Searched, in order:"]
    for label, place in searched:
        where = place if place else "(not set)" if label == ENV_LABEL else "(not given)"
        lines.append(f"  {label}: {where}")
    lines.append(f"Download of {url} failed: {type(error).__name__}: {error}")
    lines += supply
    return "\n".join(lines)
