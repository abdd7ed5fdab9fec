"""The files of MNIST-like data sets (MNIST, Fashion-MNIST), found in a folder and read checked.

Two layouts are read: Keras' single .npz (arrays x_train, y_train, x_test, y_test) and the four
original IDX files, plain or gzipped, under their official names (also the 'train-images.idx3-ubyte'
spelling some unpackers produce). Both give Keras' arrays: images uint8 (n, 28, 28), labels uint8
(n,) in 0..9. A file that is damaged, truncated or shaped otherwise raises ValueError naming it.
"""
import os

import numpy as np

from . import _idx

IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
KEYS = ("x_train", "y_train", "x_test", "y_test")
IDX_NAMES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}


def _idx_spellings(name):
    dotted = name.replace("-idx", ".idx")
    return (name + ".gz", name, dotted + ".gz", dotted)


def idx_files(folder):
    """{array key: file} for the IDX files present in `folder` (any subset of the four)."""
    found = {}
    for key, name in IDX_NAMES.items():
        for spelling in _idx_spellings(name):
            if os.path.isfile(os.path.join(folder, spelling)):
                found[key] = os.path.join(folder, spelling)
                break
    return found


def locate(place, npz_name, subfolder, top_level_idx):
    """What `place` holds: ('npz', file), ('idx', folder, {key: file}) (perhaps incomplete) or None.

    Looked for: `place` itself when it is a file (an .npz); `npz_name` in `place` and in
    place/subfolder; the IDX files in place/subfolder, and in `place` itself when `top_level_idx`
    (only for a folder the user names: in $CNNKIT_DATA or the cache, MNIST's and Fashion-MNIST's
    IDX files share their names, so each keeps to its own subfolder)."""
    if os.path.isfile(place):
        return "npz", place
    if not os.path.isdir(place):
        return None
    for folder, idx_allowed in ((place, top_level_idx), (os.path.join(place, subfolder), True)):
        if os.path.isfile(os.path.join(folder, npz_name)):
            return "npz", os.path.join(folder, npz_name)
        found = idx_files(folder) if idx_allowed and os.path.isdir(folder) else {}
        if found:
            return "idx", folder, found
    return None


def is_complete(found):
    return found is not None and (found[0] == "npz" or len(found[2]) == len(KEYS))


def load_found(title, found):
    """`load`, or FileNotFoundError naming the IDX files missing from a folder of the user's."""
    if not is_complete(found):
        _, folder, files = found
        missing = [IDX_NAMES[key] + "[.gz]" for key in KEYS if key not in files]
        raise FileNotFoundError(f"{folder} holds only some of the {title} IDX files; it lacks {', '.join(missing)}")
    return load(found)


def load(found):
    """((x_train, y_train), (x_test, y_test)) from what `locate` found (complete)."""
    if found[0] == "npz":
        return _load_npz(found[1])
    files = found[2]
    arrays = {}
    for key in KEYS:
        images = key.startswith("x")
        arrays[key] = _idx.read(files[key], 3 if images else 1, IMAGE_SHAPE if images else ())
    return _checked(arrays, {key: files[key] for key in KEYS})


def _load_npz(file):
    try:
        with open(file, "rb") as stream:
            # allow_pickle=False: an .npz holding pickled objects could run code when loaded.
            archive = np.load(stream, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ValueError("a single .npy array or plain text, not an .npz archive")
            with archive:
                missing = [key for key in KEYS if key not in archive.files]
                if missing:
                    raise ValueError(f"no array(s) {', '.join(missing)} (holds {', '.join(archive.files) or 'none'})")
                arrays = {key: archive[key] for key in KEYS}
    except (PermissionError, IsADirectoryError, MemoryError):
        raise
    except Exception as error:  # not a zip, truncated, pickled content, damaged member
        raise ValueError(f"{file}: not a readable MNIST-style .npz ({type(error).__name__}: {error})") from error
    return _checked(arrays, {key: file for key in KEYS})


def _checked(arrays, files):
    """Keras' arrays from raw ones, after checking dtypes, shapes, counts and label range; labels
    of any integer type become uint8. `files` names where each array came from, for errors."""
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        x_file, y_file = files[f"x_{split}"], files[f"y_{split}"]
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE:
            raise ValueError(f"{x_file}: x_{split} must be uint8 images (n, 28, 28), got {x.dtype} {x.shape}")
        if y.ndim != 1 or y.dtype.kind not in "iu":
            raise ValueError(f"{y_file}: y_{split} must be integer labels (n,), got {y.dtype} {y.shape}")
        if len(y) != len(x):
            raise ValueError(f"{y_file}: {len(y)} {split} labels for the {len(x)} images of {x_file}")
        if len(y) and (y.min() < 0 or y.max() >= NUM_CLASSES):
            raise ValueError(f"{y_file}: labels must lie in 0..{NUM_CLASSES - 1}, found {y.min()}..{y.max()}")
        arrays[f"y_{split}"] = y.astype(np.uint8, copy=False)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
