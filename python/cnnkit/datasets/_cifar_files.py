"""Where the CIFAR data sets' pickled files are (a folder, or a .tar.gz read in place), and reading
one file with the safe unpickler. Shared by cifar10 and cifar100, which differ in file names,
label keys and label counts only.
"""
import gzip
import os
import tarfile
import warnings
import zlib

import numpy as np

from . import _archive, _safe_pickle, _sources

IMAGE_SHAPE = (32, 32, 3)


def checked_batch(batch, where, title, label_key, num_classes):
    """(data (n, 3072) uint8, labels (n,) integers in 0..num_classes-1) from a batch dict, after
    checking both; ValueError naming `where` otherwise."""
    if "data" not in batch or label_key not in batch:
        raise ValueError(f"{where}: not a {title} batch (no 'data' and '{label_key}' entries)")
    data = batch["data"]
    pixels = int(np.prod(IMAGE_SHAPE))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != pixels:
        shape = getattr(data, "shape", None)
        raise ValueError(f"{where}: 'data' must be a uint8 array (n, {pixels}), "
                         f"got {type(data).__name__} {getattr(data, 'dtype', '')} {shape}")
    try:
        labels = np.asarray(batch[label_key])
    except Exception as error:
        raise ValueError(f"{where}: '{label_key}' is not a list of integers ({error})") from error
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(f"{where}: '{label_key}' must be a flat list of integers, got {labels.dtype} {labels.shape}")
    if len(labels) != len(data):
        raise ValueError(f"{where}: {len(labels)} labels for {len(data)} images")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{where}: labels must lie in 0..{num_classes - 1}, "
                         f"found {labels.min()}..{labels.max()}")
    return data, labels


def search(title, path, folder, archive, names):
    """(places searched, found) where found is ('folder', path) or ('archive', .tar.gz to read in
    place) from the first of the path argument, $CNNKIT_DATA and the cache that holds the data
    set, or None. A path argument without it warns; an archive in the cache is extracted there
    (the cache is ours to write; the user's folders are read as they are)."""
    searched = []
    for label, place in _sources.places(path):
        found = locate(place, folder, archive, names) if place else None
        searched.append((label, place))
        if label == _sources.PATH_LABEL and place and not found:
            warnings.warn(f"no {title} under {place!r}; looking elsewhere", stacklevel=3)
        if found:
            kind, location = found
            if label == _sources.CACHE_LABEL and kind == "archive":
                return searched, ("folder", _archive.extract_folder(location, folder, place))
            return searched, found
    return searched, None


def download(title, url, file_hash, folder, archive, searched, supply):
    """The data set's folder, extracted in the cache from the archive downloaded (and checked)
    from `url`; DatasetNotFoundError listing `searched` and `supply` when that fails."""
    cache = _sources.cache_dir()
    _sources.fetch([(url, archive, file_hash)], cache, searched, title, supply)
    return _archive.extract_folder(os.path.join(cache, archive), folder, cache)


def locate(place, folder, archive, names):
    """('folder', path) or ('archive', .tar.gz file) if `place` holds the data set, else None.

    `place` may be the .tar.gz itself, the extracted `folder` itself (or any folder holding one
    of the `names`), or a folder holding `folder` or `archive`."""
    if os.path.isfile(place) and place.endswith(".tar.gz"):
        return "archive", place
    if not os.path.isdir(place):
        return None
    if os.path.basename(os.path.normpath(place)) == folder or any(
            os.path.exists(os.path.join(place, name)) for name in names):
        return "folder", place
    if os.path.isdir(os.path.join(place, folder)):
        return "folder", os.path.join(place, folder)
    if os.path.isfile(os.path.join(place, archive)):
        return "archive", os.path.join(place, archive)
    return None


def read_archive(archive, folder, names, parse):
    """{name: parse(stream, where)} for the members folder/<name> of the .tar.gz `archive`, read in
    place in archive order (a gzip stream cannot seek back cheaply). ValueError naming the
    archive when it is damaged or lacks one of `names`."""
    parsed = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for name, member in _archive.regular_files(tar, archive, folder):
                if name in names:
                    with tar.extractfile(member) as stream:
                        parsed[name] = parse(stream, f"{archive}:{member.name}")
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise ValueError(f"{archive}: damaged or not a .tar.gz archive ({error})") from error
    missing = [name for name in names if name not in parsed]
    if missing:
        raise ValueError(f"{archive} lacks {folder}/ file(s) {', '.join(missing)}")
    return parsed


def load_dict(stream, where, title):
    """The dict pickled in `stream`, keys decoded to str; ValueError naming `where` when the file
    is truncated, not a pickle, holds forbidden globals, or is not a dict."""
    try:
        batch = _safe_pickle.load(stream)
    except (OSError, MemoryError):
        raise
    except Exception as error:  # truncated, not a pickle, or forbidden content
        raise ValueError(f"{where}: not a readable {title} batch pickle ({type(error).__name__}: {error})") from error
    if not isinstance(batch, dict):
        raise ValueError(f"{where}: not a {title} batch (holds a {type(batch).__name__}, not a dict)")
    return {key.decode("latin1") if isinstance(key, bytes) else key: value for key, value in batch.items()}
