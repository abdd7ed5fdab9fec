"""keras.utils.image_dataset_from_directory on Pillow: a Dataset of (images, labels) batches.

Files are indexed as Keras indexes them (sorted sub-folders as classes, sorted files, the same
extensions), and with a seed the file order and the training/validation split are Keras' own
(numpy's RandomState(seed) shuffles the list, as keras' index_directory does), so `file_paths`
match Keras'. Each epoch then visits the files in a fresh order drawn from (seed, epoch); Keras
reshuffles through tf.data's buffered shuffle instead, which cannot be reproduced outside TF.

Decoding runs in worker threads, a bounded distance ahead of the consumer, and the results are
delivered in file order, so the batches are the same for any number of threads.

cnnkit extensions (keyword-only): num_threads (decoding threads; default min(8, CPUs)) and
on_bad_file ("raise", Keras' behaviour, or "skip": a file Pillow cannot decode is left out of
its batch with a warning and listed in the dataset's `skipped_files`).
"""
import os
import warnings

import numpy as np

from . import _decode
from .dataset import Dataset, ordered_parallel_map

__all__ = ["image_dataset_from_directory"]

ALLOWLIST_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")


def default_num_threads():
    return max(1, min(8, os.cpu_count() or 1))


def _check_arguments(labels, label_mode, class_names, color_mode, image_size, batch_size,
                     validation_split, subset, shuffle, seed, crop_to_aspect_ratio,
                     pad_to_aspect_ratio, data_format, num_threads, on_bad_file):
    """Keras' argument checks and messages, plus the sizes Keras leaves to TF to reject."""
    if labels not in ("inferred", None):
        if not isinstance(labels, (list, tuple)):
            raise ValueError(
                "`labels` argument should be a list/tuple of integer labels, of the same size "
                "as the number of image files in the target directory. If you wish to infer the "
                "labels from the subdirectory names in the target directory, pass "
                '`labels="inferred"`. '
                "If you wish to get a dataset that only contains images (no labels), pass "
                f"`labels=None`. Received: labels={labels}")
        if class_names:
            raise ValueError('You can only pass `class_names` if `labels="inferred"`. '
                             f"Received: labels={labels}, and class_names={class_names}")
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0
                   for v in labels):
            raise ValueError("`labels` must hold non-negative integers. "
                             f"Received: labels={labels}")
    if label_mode not in ("int", "categorical", "binary", None):
        raise ValueError('`label_mode` argument must be one of "int", "categorical", "binary", '
                         f"or None. Received: label_mode={label_mode}")
    if color_mode not in _decode.NUM_CHANNELS:
        raise ValueError('`color_mode` must be one of {"rgb", "rgba", "grayscale"}. '
                         f"Received: color_mode={color_mode}")
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    if (not isinstance(image_size, (list, tuple)) or len(image_size) != 2
            or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
                       for s in image_size)):
        raise ValueError("Invalid `image_size` value. Expected a tuple of 2 positive integers. "
                         f"Received: image_size={image_size}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(
            batch_size, (int, np.integer)) or batch_size < 1):
        raise ValueError("`batch_size` must be a positive integer or None. "
                         f"Received: batch_size={batch_size}")
    if validation_split is not None and (isinstance(validation_split, bool) or not isinstance(
            validation_split, (int, float, np.floating, np.integer))):
        raise ValueError(f"`validation_split` must be a float. Received: {validation_split!r}")
    if validation_split and not 0 < validation_split < 1:
        raise ValueError("`validation_split` must be between 0 and 1, "
                         f"received: {validation_split}")
    if (validation_split or subset) and not (validation_split and subset):
        raise ValueError("If `subset` is set, `validation_split` must be set, and inversely.")
    if subset not in ("training", "validation", "both", None):
        raise ValueError('`subset` must be either "training", "validation" or "both", '
                         f"received: {subset}")
    if validation_split and shuffle and seed is None:
        raise ValueError("If using `validation_split` and shuffling the data, you must provide a "
                         "`seed` argument, to make sure that there is no overlap between the "
                         "training and validation subset.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                             or not 0 <= seed < 2**32):
        raise ValueError(f"`seed` must be an integer in [0, 2**32). Received: seed={seed!r}")
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError("Only one of `pad_to_aspect_ratio`, `crop_to_aspect_ratio` can be set "
                         "to `True`.")
    if data_format not in (None, "channels_last", "channels_first"):
        raise ValueError('`data_format` must be "channels_last", "channels_first" or None. '
                         f"Received: data_format={data_format!r}")
    if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(
            num_threads, (int, np.integer)) or num_threads < 1):
        raise ValueError(f"`num_threads` must be a positive integer. Received: {num_threads!r}")
    if on_bad_file not in ("raise", "skip"):
        raise ValueError(f'`on_bad_file` must be "raise" or "skip". Received: {on_bad_file!r}')
    return tuple(int(s) for s in image_size)


def _valid_files(directory, follow_links):
    """(root, name) of the image files under `directory`: roots sorted, names sorted."""
    walk = os.walk(directory, followlinks=follow_links)
    for root, _, files in sorted(walk, key=lambda entry: entry[0]):
        for name in sorted(files):
            if name.lower().endswith(ALLOWLIST_FORMATS):
                yield root, name


def _index_directory(directory, labels, class_names, shuffle, seed, follow_links, verbose):
    """Keras' index_directory: (file_paths, labels or None, class_names or None)."""
    if not os.path.isdir(directory):
        raise ValueError(f"`directory` must be an existing directory. Received: {directory!r}")
    if labels == "inferred":
        subdirs = [name for name in sorted(os.listdir(directory))
                   if os.path.isdir(os.path.join(directory, name)) and not name.startswith(".")]
        if class_names is not None:
            if not set(class_names).issubset(set(subdirs)):
                raise ValueError(
                    "The `class_names` passed did not match the names of the subdirectories of "
                    f"the target directory. Expected: {subdirs} (or a subset of it), but "
                    f"received: class_names={class_names}")
            subdirs = list(class_names)
    else:
        subdirs = [""]
        if class_names is not None:
            raise ValueError("When `labels=None` (no labels), argument `class_names` cannot be "
                             "specified." if labels is None else
                             "When argument `labels` is specified, argument `class_names` cannot "
                             "be specified (the `class_names` will be the sorted list of labels).")
    filenames, file_labels = [], []
    for class_index, subdir in enumerate(subdirs):
        class_dir = os.path.join(directory, subdir)
        # Keras names a file by its class folder and its path below it.
        dirname = os.path.basename(class_dir)
        for root, name in _valid_files(class_dir, follow_links):
            relative = os.path.relpath(os.path.join(root, name), class_dir)
            filenames.append(os.path.join(dirname, relative))
            file_labels.append(class_index)

    if labels == "inferred":
        labels = np.asarray(file_labels, dtype=np.int32)
        class_names = list(subdirs)
    elif labels is None:
        class_names = None
    else:
        if len(labels) != len(filenames):
            raise ValueError(
                "Expected the lengths of `labels` to match the number of files in the target "
                f"directory. len(labels) is {len(labels)} while we found {len(filenames)} files "
                f"in directory {directory}.")
        class_names = [str(label) for label in sorted(set(labels))]
        labels = np.asarray(labels, dtype=np.int32)
    if verbose:
        if labels is None:
            print(f"Found {len(filenames)} files.")
        else:
            print(f"Found {len(filenames)} files belonging to {len(class_names)} classes.")
    file_paths = [os.path.join(directory, name) for name in filenames]
    if shuffle:
        # Keras shuffles the list and the labels with two RandomStates of the same seed.
        np.random.RandomState(seed).shuffle(file_paths)
        if labels is not None:
            np.random.RandomState(seed).shuffle(labels)
    return file_paths, labels, class_names


def _split(file_paths, labels, validation_split, subset, directory, verbose):
    """Keras' split: the last int(validation_split * n) files are the validation subset."""
    if not validation_split:
        return file_paths, labels
    num_val = int(validation_split * len(file_paths))
    if num_val == 0 and file_paths:
        # Keras slices [:-0] here and ends with an empty training subset; say why instead.
        raise ValueError(f"validation_split={validation_split} of {len(file_paths)} files "
                         f"leaves no validation file in directory {directory}")
    if subset == "training":
        if verbose:
            print(f"Using {len(file_paths) - num_val} files for training.")
        keep = slice(None, len(file_paths) - num_val)
    else:
        if verbose:
            print(f"Using {num_val} files for validation.")
        keep = slice(len(file_paths) - num_val, None)
    return file_paths[keep], None if labels is None else labels[keep]


def _encode_labels(labels, label_mode, num_classes):
    if label_mode == "binary":
        return labels.astype(np.float32)[:, None]
    if label_mode == "categorical":
        if labels.size and labels.max() >= num_classes:
            raise ValueError(f"label {labels.max()} is out of range for {num_classes} classes")
        return np.eye(num_classes, dtype=np.float32)[labels]
    return labels.astype(np.int32)


class _BadFile:
    """What a worker returns for an undecodable file when on_bad_file="skip"."""

    def __init__(self, error):
        self.error = error


def _make_dataset(file_paths, labels, label_mode, num_classes, decode_options, batch_size,
                  shuffle, seed, num_threads, on_bad_file, class_names, channels_first):
    encoded = None if label_mode is None else _encode_labels(labels, label_mode, num_classes)
    count = len(file_paths)
    epochs = [0]
    skipped = []

    def decode(index):
        try:
            image = _decode.decode_image(file_paths[index], **decode_options)
        except ValueError as error:
            if on_bad_file == "skip":
                return index, _BadFile(error)
            raise
        return index, image

    def decode_chunk(indices):
        return [decode(index) for index in indices]

    # Up to 2 * max(threads, batch size) images are decoded ahead of the consumer, in tasks of
    # a few consecutive images: a task per image cost as much in the pool's hand-offs (a future,
    # a lock, a GIL switch) as decoding a 32x32 JPEG itself. Each thread gets two tasks at least.
    readahead = 2 * max(num_threads, batch_size or 1)
    chunk = max(1, min(8, readahead // (2 * num_threads)))

    def samples():
        order = np.arange(count)
        if shuffle:
            order = np.random.default_rng([seed, epochs[0]]).permutation(count)
        epochs[0] += 1
        chunks = (order[start:start + chunk] for start in range(0, count, chunk))
        decoded = ordered_parallel_map(decode_chunk, chunks, num_threads,
                                       max(1, readahead // chunk))
        try:
            for results in decoded:
                for index, image in results:
                    if isinstance(image, _BadFile):
                        if file_paths[index] not in skipped:
                            skipped.append(file_paths[index])
                        warnings.warn(f"Skipped an image file that cannot be decoded: "
                                      f"{image.error}", stacklevel=2)
                        continue
                    if channels_first:
                        image = image.transpose(2, 0, 1)
                    yield image if encoded is None else (image, encoded[index])
        finally:
            decoded.close()  # stops and joins the workers now, not when garbage-collected

    # One element per file; batches are Dataset.batch's (the last one may be short, as Keras').
    dataset = Dataset(samples, count)
    if batch_size is not None:
        dataset = dataset.batch(batch_size)
    dataset.class_names = class_names
    dataset.file_paths = list(file_paths)
    dataset.skipped_files = skipped
    return dataset


def image_dataset_from_directory(directory, labels="inferred", label_mode="int",
                                 class_names=None, color_mode="rgb", batch_size=32,
                                 image_size=(256, 256), shuffle=True, seed=None,
                                 validation_split=None, subset=None, interpolation="bilinear",
                                 follow_links=False, crop_to_aspect_ratio=False,
                                 pad_to_aspect_ratio=False, data_format=None, format="tf",
                                 verbose=True, *, num_threads=None, on_bad_file="raise"):
    """Generates a Dataset of images from the image files of a directory, as Keras 3's.

    Yields `(images, labels)`: images float32 (batch, height, width, channels) of values
    0..255; labels int32 (batch,) for label_mode "int", float32 (batch, 1) for "binary",
    float32 one-hot (batch, num_classes) for "categorical"; images alone when labels or
    label_mode is None. batch_size=None yields single samples. subset="both" returns the
    (training, validation) pair. `format` is accepted for Keras' signature; the result is a
    cnnkit Dataset either way.
    """
    image_size = _check_arguments(labels, label_mode, class_names, color_mode, image_size,
                                  batch_size, validation_split, subset, shuffle, seed,
                                  crop_to_aspect_ratio, pad_to_aspect_ratio, data_format,
                                  num_threads, on_bad_file)
    interpolation = _decode.check_interpolation(interpolation)
    if format not in ("tf", "grain"):
        raise ValueError(f'`format` should be either "tf" or "grain". Received: format={format}')
    _decode.pil()  # fail now, not in a worker, when Pillow is missing
    if labels is None or label_mode is None:
        labels = label_mode = None
    if seed is None:
        seed = np.random.randint(1e6)  # as Keras: set_random_seed decides it
    seed = int(seed)
    file_paths, labels, class_names = _index_directory(
        os.fspath(directory), labels, class_names, shuffle, seed, follow_links, verbose)
    if label_mode == "binary" and len(class_names) != 2:
        raise ValueError('When passing `label_mode="binary"`, there must be exactly 2 '
                         f"class_names. Received: class_names={class_names}")
    decode_options = dict(image_size=image_size, color_mode=color_mode,
                          interpolation=interpolation, crop_to_aspect_ratio=crop_to_aspect_ratio,
                          pad_to_aspect_ratio=pad_to_aspect_ratio)
    channels_first = data_format == "channels_first"
    options = dict(label_mode=label_mode, num_classes=len(class_names) if class_names else 0,
                   decode_options=decode_options, batch_size=batch_size, seed=seed,
                   num_threads=num_threads or default_num_threads(), on_bad_file=on_bad_file,
                   class_names=class_names, channels_first=channels_first)
    subsets = ["training", "validation"] if subset == "both" else [subset]
    datasets = []
    for name in subsets:
        paths, subset_labels = _split(file_paths, labels, validation_split, name, directory,
                                      verbose)
        if not paths:
            which = {"training": "training ", "validation": "validation "}.get(name, "")
            raise ValueError(f"No {which}images found in directory {directory}. "
                             f"Allowed formats: {ALLOWLIST_FORMATS}")
        # As Keras, the validation half of subset="both" is never shuffled.
        datasets.append(_make_dataset(paths, subset_labels,
                                      shuffle=shuffle and not (subset == "both"
                                                               and name == "validation"),
                                      **options))
    return tuple(datasets) if subset == "both" else datasets[0]
