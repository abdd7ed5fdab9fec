"""image_dataset_from_directory and its Dataset: labels, order, splits, determinism across
thread counts, pixel values, bad files and arguments, no threads left behind, Keras parity."""
import os
import threading
import time
import warnings

import numpy as np
import pytest

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from cnnkit.utils import Dataset, image_dataset_from_directory  # noqa: E402

CLASSES = ("cat", "dog", "eel")


def write(path, array, mode=None, **save):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array, mode).save(path, **save) if mode else Image.fromarray(array).save(
        path, **save)
    return str(path)


def solid(value, size=(6, 5)):
    """An RGB image of one colour: any resize keeps its value exactly."""
    return np.full(size + (3,), value, np.uint8)


@pytest.fixture
def folder(tmp_path):
    """3 classes, 4 + 3 + 5 PNG/JPEG/BMP/GIF files; each image's colour encodes its class and
    index so a batch tells which file each row came from."""
    root = tmp_path / "images"
    counts = {"cat": 4, "dog": 3, "eel": 5}
    extensions = [".png", ".bmp", ".png", ".gif", ".png"]
    for class_index, name in enumerate(CLASSES):
        for i in range(counts[name]):
            ext = extensions[i % len(extensions)]
            write(root / name / f"img{i}{ext}", solid(40 * class_index + 10 * i))
    (root / "dog" / "notes.txt").write_text("not an image")
    return str(root)


def threads_settle(baseline, timeout=5.0):
    deadline = time.monotonic() + timeout
    while threading.active_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.01)
    return threading.active_count()


def collect(dataset):
    images, labels = zip(*dataset)
    return np.concatenate(images), np.concatenate(labels)


def test_labels_classes_and_order(folder, capsys):
    ds = image_dataset_from_directory(folder, image_size=(4, 4), batch_size=5, shuffle=False)
    assert "Found 12 files belonging to 3 classes." in capsys.readouterr().out
    assert ds.class_names == list(CLASSES)
    assert len(ds) == 3
    names = [os.path.relpath(p, folder) for p in ds.file_paths]
    assert names == sorted(names)  # sorted within each class, classes in order
    images, labels = collect(ds)
    assert images.shape == (12, 4, 4, 3) and images.dtype == np.float32
    assert labels.dtype == np.int32 and labels.shape == (12,)
    expected = [CLASSES.index(name.split(os.sep)[0]) for name in names]
    np.testing.assert_array_equal(labels, expected)
    # The pixel value says which file each row came from.
    for row, path in zip(images, ds.file_paths):
        cls = CLASSES.index(os.path.relpath(path, folder).split(os.sep)[0])
        i = int(os.path.basename(path)[3])
        np.testing.assert_array_equal(row, 40 * cls + 10 * i)


@pytest.mark.parametrize("label_mode", ["int", "categorical", "binary", None])
def test_label_modes(tmp_path, label_mode):
    for c, name in enumerate(["a", "b"]):
        for i in range(3):
            write(tmp_path / name / f"{i}.png", solid(c * 100 + i))
    ds = image_dataset_from_directory(str(tmp_path), label_mode=label_mode, image_size=(3, 3),
                                      batch_size=4, shuffle=False, verbose=False)
    batch = next(iter(ds))
    if label_mode is None:
        assert isinstance(batch, np.ndarray) and batch.shape == (4, 3, 3, 3)
        return
    images, labels = batch
    expected = np.array([0, 0, 0, 1])
    if label_mode == "int":
        assert labels.dtype == np.int32 and labels.shape == (4,)
        np.testing.assert_array_equal(labels, expected)
    elif label_mode == "binary":
        assert labels.dtype == np.float32 and labels.shape == (4, 1)
        np.testing.assert_array_equal(labels[:, 0], expected)
    else:
        assert labels.dtype == np.float32 and labels.shape == (4, 2)
        np.testing.assert_array_equal(labels, np.eye(2)[expected])


def test_explicit_labels_and_no_labels(tmp_path):
    for i in range(4):
        write(tmp_path / "sub" / f"{i}.png", solid(i))
    ds = image_dataset_from_directory(str(tmp_path), labels=[3, 1, 3, 0], image_size=(2, 2),
                                      shuffle=False, verbose=False)
    assert ds.class_names == ["0", "1", "3"]
    _, labels = next(iter(ds))
    np.testing.assert_array_equal(labels, [3, 1, 3, 0])
    ds = image_dataset_from_directory(str(tmp_path), labels=None, image_size=(2, 2),
                                      shuffle=False, verbose=False)
    assert ds.class_names is None and next(iter(ds)).shape == (4, 2, 2, 3)


def test_unbatched(folder):
    ds = image_dataset_from_directory(folder, image_size=(3, 2), batch_size=None,
                                      shuffle=False, verbose=False)
    assert len(ds) == 12
    image, label = next(iter(ds))
    assert image.shape == (3, 2, 3) and np.ndim(label) == 0


def test_validation_split_disjoint_complete_and_deterministic(folder, capsys):
    kwargs = dict(image_size=(2, 2), validation_split=0.25, seed=7, verbose=True)
    train = image_dataset_from_directory(folder, subset="training", **kwargs)
    val = image_dataset_from_directory(folder, subset="validation", **kwargs)
    out = capsys.readouterr().out
    assert "Using 9 files for training." in out and "Using 3 files for validation." in out
    assert not set(train.file_paths) & set(val.file_paths)
    assert len(set(train.file_paths) | set(val.file_paths)) == 12
    both = image_dataset_from_directory(folder, subset="both", **kwargs)
    assert isinstance(both, tuple) and len(both) == 2
    assert both[0].file_paths == train.file_paths and both[1].file_paths == val.file_paths
    other = image_dataset_from_directory(folder, subset="training", **dict(kwargs, seed=8))
    assert other.file_paths != train.file_paths
    # Labels still match their files after the split.
    _, labels = collect(val)
    images, _ = collect(val.map(lambda x, y: (x, y)))
    cls = images[:, 0, 0, 0] // 40
    np.testing.assert_array_equal(labels, cls)


def test_epochs_reshuffle_deterministically_and_threads_do_not_matter(folder):
    def epochs(num_threads, count=3):
        ds = image_dataset_from_directory(folder, image_size=(3, 3), batch_size=5, seed=11,
                                          verbose=False, num_threads=num_threads)
        return [collect(ds) for _ in range(count)]

    one, four = epochs(1), epochs(4)
    for (x1, y1), (x4, y4) in zip(one, four):
        np.testing.assert_array_equal(x1, x4)
        np.testing.assert_array_equal(y1, y4)
    firsts = [x[:, 0, 0, 0].tolist() for x, _ in one]
    assert firsts[0] != firsts[1] or firsts[1] != firsts[2]  # reshuffled each epoch
    assert all(sorted(f) == sorted(firsts[0]) for f in firsts)  # the same files each epoch


def test_pixels_equal_the_file_at_its_own_size(tmp_path):
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    write(tmp_path / "a" / "x.png", array)
    for interpolation in ("bilinear", "nearest", "bicubic", "area", "lanczos3"):
        ds = image_dataset_from_directory(str(tmp_path), image_size=(5, 7), shuffle=False,
                                          interpolation=interpolation, verbose=False)
        np.testing.assert_array_equal(next(iter(ds))[0][0], array)


def test_color_modes_and_mixed_files(tmp_path):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    write(tmp_path / "c" / "0rgb.png", rgb)
    gray16 = rng.integers(0, 65536, (4, 4)).astype(np.uint16)
    write(tmp_path / "c" / "1gray16.png", gray16)
    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    palette.info["transparency"] = 0
    palette.save(tmp_path / "c" / "2palette.png", transparency=0)
    la = np.dstack([rgb[:, :, 0], rgb[:, :, 1]])
    write(tmp_path / "c" / "3la.png", la, "LA")
    write(tmp_path / "c" / "4big.jpg", rng.integers(0, 256, (9, 3, 3), dtype=np.uint8))
    shapes = {}
    for color_mode, channels in (("rgb", 3), ("grayscale", 1), ("rgba", 4)):
        ds = image_dataset_from_directory(str(tmp_path), image_size=(4, 4), color_mode=color_mode,
                                          shuffle=False, verbose=False, interpolation="nearest")
        images, _ = next(iter(ds))
        shapes[color_mode] = images.shape
        assert images.shape == (5, 4, 4, channels)
        assert images.min() >= 0 and images.max() <= 255
        if color_mode == "rgb":
            np.testing.assert_array_equal(images[0], rgb)
        if color_mode == "grayscale":
            np.testing.assert_array_equal(images[1, :, :, 0], gray16 >> 8)  # as TF decodes it
            np.testing.assert_array_equal(images[3, :, :, 0], la[:, :, 0])
        if color_mode == "rgba":
            np.testing.assert_array_equal(images[0, :, :, 3], 255)  # opaque alpha added
            np.testing.assert_array_equal(images[3, :, :, 3], la[:, :, 1])
            assert (images[2, :, :, 3] == 0).any()  # the palette's transparent entry


def test_crop_and_pad_to_aspect_ratio(tmp_path):
    array = np.zeros((4, 8, 3), np.uint8)
    array[:, 2:6] = 200  # a centred square of 200 in a wide black image
    write(tmp_path / "a" / "wide.png", array)
    common = dict(image_size=(4, 4), shuffle=False, verbose=False, interpolation="nearest")
    cropped = next(iter(image_dataset_from_directory(str(tmp_path), crop_to_aspect_ratio=True,
                                                     **common)))[0][0]
    np.testing.assert_array_equal(cropped, 200)
    padded = next(iter(image_dataset_from_directory(str(tmp_path), pad_to_aspect_ratio=True,
                                                    **common)))[0][0]
    np.testing.assert_array_equal(padded[[0, 3]], 0)  # padding rows above and below
    np.testing.assert_array_equal(padded[1:3, 1:3], 200)
    stretched = next(iter(image_dataset_from_directory(str(tmp_path), **common)))[0][0]
    np.testing.assert_array_equal(stretched[:, 0], 0)
    channels_first = next(iter(image_dataset_from_directory(
        str(tmp_path), data_format="channels_first", **common)))[0]
    assert channels_first.shape == (1, 3, 4, 4)


def bad_files(root):
    write(root / "a" / "good.png", solid(5))
    (root / "a" / "empty.png").write_bytes(b"")
    (root / "a" / "text.jpg").write_text("hello, not a jpeg")
    (root / "a" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    write(root / "a" / "photo.jpg", np.random.default_rng(0).integers(0, 256, (64, 64, 3),
                                                                         dtype=np.uint8))
    jpeg = (root / "a" / "photo.jpg").read_bytes()
    (root / "a" / "photo.jpg").unlink()
    (root / "a" / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    noisy = write(root / "a" / "noisy.png", np.random.default_rng(1).integers(
        0, 256, (32, 32, 3), dtype=np.uint8))
    png = open(noisy, "rb").read()
    os.remove(noisy)
    (root / "a" / "truncated2.png").write_bytes(png[: len(png) // 2])
    return ["empty.png", "text.jpg", "corrupt.png", "truncated.jpg", "truncated2.png"]


@pytest.mark.parametrize("num_threads", [1, 3])
def test_each_bad_file_is_a_clear_error_naming_it(tmp_path, num_threads):
    names = bad_files(tmp_path)
    for name in names:
        sub = tmp_path / f"only_{name}"
        (sub / "a").mkdir(parents=True)
        os.link(tmp_path / "a" / name, sub / "a" / name)
        write(sub / "a" / "0good.png", solid(1))
        baseline = threading.active_count()
        ds = image_dataset_from_directory(str(sub), image_size=(2, 2), batch_size=1,
                                          shuffle=False, verbose=False, num_threads=num_threads)
        with pytest.raises(ValueError, match=name):
            list(ds)
        assert threads_settle(baseline) == baseline


def test_skip_bad_files_opt_in(tmp_path):
    names = bad_files(tmp_path)
    ds = image_dataset_from_directory(str(tmp_path), image_size=(2, 2), shuffle=False,
                                      verbose=False, on_bad_file="skip")
    with pytest.warns(UserWarning, match="cannot be decoded"):
        images, labels = next(iter(ds))
    assert images.shape[0] == 1 and labels.shape == (1,)
    assert sorted(os.path.basename(p) for p in ds.skipped_files) == sorted(names)


def test_folders_classes_and_counts(tmp_path, capsys):
    write(tmp_path / "a" / "0.png", solid(1))
    write(tmp_path / "a" / "1.png", solid(2))
    (tmp_path / "b").mkdir()  # an empty class: Keras counts it and finds no files in it
    ds = image_dataset_from_directory(str(tmp_path), image_size=(2, 2), label_mode="categorical")
    assert "Found 2 files belonging to 2 classes." in capsys.readouterr().out
    assert ds.class_names == ["a", "b"] and next(iter(ds))[1].shape == (2, 2)
    with pytest.raises(ValueError, match="exactly 2"):
        image_dataset_from_directory(str(tmp_path), class_names=["a"], label_mode="binary")
    one = image_dataset_from_directory(str(tmp_path), class_names=["a"],
                                       label_mode="categorical", image_size=(2, 2))
    assert next(iter(one))[1].shape == (2, 1)  # one class, categorical: fine in Keras too
    (tmp_path / "empty" / "c").mkdir(parents=True)
    with pytest.raises(ValueError, match="No images found"):
        image_dataset_from_directory(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="existing directory"):
        image_dataset_from_directory(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="class_names"):
        image_dataset_from_directory(str(tmp_path), class_names=["a", "zzz"])
    with pytest.raises(ValueError, match="No validation file|no validation"):
        image_dataset_from_directory(str(tmp_path), validation_split=0.2, subset="training",
                                     seed=1)


@pytest.mark.parametrize("kwargs, match", [
    (dict(labels="folders"), "labels"),
    (dict(labels=[0, 1], class_names=["a"]), "class_names"),
    (dict(label_mode="sparse"), "label_mode"),
    (dict(color_mode="cmyk"), "color_mode"),
    (dict(image_size=(3,)), "image_size"),
    (dict(image_size=(0, 3)), "image_size"),
    (dict(batch_size=0), "batch_size"),
    (dict(validation_split=1.5, subset="training", seed=1), "validation_split"),
    (dict(validation_split=0.2), "subset"),
    (dict(subset="training"), "validation_split"),
    (dict(validation_split=0.2, subset="test", seed=1), "subset"),
    (dict(validation_split=0.2, subset="training"), "seed"),
    (dict(interpolation="cubic"), "interpolation"),
    (dict(crop_to_aspect_ratio=True, pad_to_aspect_ratio=True), "pad_to_aspect_ratio"),
    (dict(data_format="NCHW"), "data_format"),
    (dict(format="torch"), "format"),
    (dict(num_threads=0), "num_threads"),
    (dict(on_bad_file="ignore"), "on_bad_file"),
])
def test_bad_arguments(folder, kwargs, match):
    with pytest.raises(ValueError, match=match):
        image_dataset_from_directory(folder, verbose=False, **kwargs)


def test_abandoned_iterators_leave_no_threads(folder):
    baseline = threading.active_count()
    ds = image_dataset_from_directory(folder, image_size=(3, 3), batch_size=2, seed=1,
                                      verbose=False, num_threads=4)
    for pipeline in (ds, ds.prefetch(2), ds.map(lambda x, y: (x + 1, y), num_parallel_calls=3),
                     ds.unbatch().shuffle(4, seed=0).batch(3).prefetch(1).cache()):
        for _ in pipeline:
            assert threading.active_count() > baseline  # the workers run ahead
            break
        assert threads_settle(baseline) == baseline
        it = iter(pipeline)
        next(it)
        it.close()
        assert threads_settle(baseline) == baseline
    list(ds.prefetch(3))
    assert threads_settle(baseline) == baseline


def test_errors_cross_the_prefetch_and_map_threads(tmp_path):
    bad_files(tmp_path)
    ds = image_dataset_from_directory(str(tmp_path), image_size=(2, 2), batch_size=2,
                                      shuffle=False, verbose=False)
    baseline = threading.active_count()
    with pytest.raises(ValueError, match="Cannot decode image file"):
        list(ds.map(lambda x, y: (x, y), num_parallel_calls=2).prefetch(2))

    def fail(x, y):
        raise KeyError("from map")
    good = image_dataset_from_directory(str(tmp_path), image_size=(2, 2), class_names=["a"],
                                        labels="inferred", verbose=False, on_bad_file="skip")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(KeyError, match="from map"):
            list(good.map(fail, num_parallel_calls=2).prefetch(1))
    assert threads_settle(baseline) == baseline


def test_dataset_transformations(folder):
    ds = image_dataset_from_directory(folder, image_size=(2, 2), batch_size=5, shuffle=False,
                                      verbose=False)
    images, labels = collect(ds)
    assert len(ds.take(2)) == 2 and len(list(ds.take(2))) == 2
    assert len(ds.take(10)) == 3 and len(list(ds.take(-1))) == 3
    mapped = ds.map(lambda x, y: (x / 255.0, y * 2))
    x, y = collect(mapped)
    np.testing.assert_allclose(x, images / 255.0)
    np.testing.assert_array_equal(y, labels * 2)
    assert mapped.class_names == ds.class_names and mapped.file_paths == ds.file_paths
    flat = ds.unbatch()
    assert len(flat) == 12
    samples = list(flat)
    assert len(samples) == 12 and samples[3][0].shape == (2, 2, 3)
    rebatched = flat.batch(4)
    assert len(rebatched) == 3
    x, y = collect(rebatched)
    np.testing.assert_array_equal(x, images)
    assert len(flat.batch(5, drop_remainder=True)) == 2
    assert len(list(flat.batch(5, drop_remainder=True))) == 2
    x, y = collect(ds.prefetch(2))
    np.testing.assert_array_equal(x, images)
    shuffled = flat.shuffle(6, seed=3).batch(12)
    first, second = next(iter(shuffled)), next(iter(shuffled))
    assert sorted(first[1].tolist()) == sorted(labels.tolist())
    assert not np.array_equal(first[0], second[0])  # reshuffled each epoch
    again = flat.shuffle(6, seed=3).batch(12)
    np.testing.assert_array_equal(next(iter(again))[0], first[0])
    with pytest.raises(TypeError):
        len(ds.map(lambda x, y: x).unbatch().take(3).unbatch())
    with pytest.raises(ValueError):
        ds.batch(0)
    with pytest.raises(TypeError):
        ds.map("not callable")


def test_cache_replays_the_first_full_epoch(tmp_path):
    paths = [write(tmp_path / "a" / f"{i}.png", solid(10 * i)) for i in range(3)]
    ds = image_dataset_from_directory(str(tmp_path), image_size=(2, 2), batch_size=2,
                                      shuffle=False, verbose=False)
    cached = ds.cache()
    for _ in cached:  # an abandoned epoch caches nothing
        break
    first, _ = collect(cached)
    for path in paths:  # change the files: the cache must not read them again
        write(path, solid(99))
    second, _ = collect(cached)
    np.testing.assert_array_equal(first, second)
    assert collect(ds)[0].max() == 99
    batch = next(iter(cached))[0]
    with pytest.raises(ValueError):
        batch[0, 0, 0, 0] = 1  # read-only: an in-place change cannot corrupt later epochs


def test_dataset_from_any_epoch_function():
    ds = Dataset(lambda: iter([(np.zeros(2), np.ones(2))]), length=1)
    assert len(ds) == 1 and len(list(ds.unbatch())) == 2


# --- Keras parity (TensorFlow's tf.data behind keras.utils.image_dataset_from_directory) ---

@pytest.fixture(scope="module")
def keras_utils():
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    return keras.utils


def test_keras_parity_classes_file_order_and_split(folder, keras_utils):
    for kwargs in (dict(shuffle=False), dict(seed=5),
                   dict(seed=5, validation_split=0.3, subset="training"),
                   dict(seed=5, validation_split=0.3, subset="validation")):
        theirs = keras_utils.image_dataset_from_directory(folder, image_size=(2, 2),
                                                          verbose=False, **kwargs)
        ours = image_dataset_from_directory(folder, image_size=(2, 2), verbose=False, **kwargs)
        assert ours.class_names == theirs.class_names
        assert ours.file_paths == theirs.file_paths
        assert len(ours) == len(theirs)
    theirs = keras_utils.image_dataset_from_directory(folder, seed=5, validation_split=0.3,
                                                      subset="both", verbose=False)
    ours = image_dataset_from_directory(folder, seed=5, validation_split=0.3, subset="both",
                                        verbose=False)
    assert [o.file_paths for o in ours] == [t.file_paths for t in theirs]


@pytest.mark.parametrize("labels", ["inferred", "explicit"])
def test_keras_parity_labels_follow_their_files(folder, keras_utils, labels):
    """Keras reshuffles each epoch through tf.data, so compare (file colour, label) pairs."""
    if labels == "explicit":
        labels = [(7 * i) % 3 for i in range(12)]
    kwargs = dict(labels=labels, image_size=(2, 2), seed=3, validation_split=0.25,
                  subset="training", verbose=False, interpolation="nearest")

    def pairs(dataset):
        return sorted((float(x[0, 0, 0]), int(y)) for xs, ys in dataset
                      for x, y in zip(np.asarray(xs), np.asarray(ys)))
    assert pairs(image_dataset_from_directory(folder, **kwargs)) == pairs(
        keras_utils.image_dataset_from_directory(folder, **kwargs))


@pytest.mark.parametrize("interpolation, size, pad", [
    ("nearest", (9, 13), False), ("nearest", (3, 4), False), ("bilinear", (10, 14), False),
    ("bilinear", (12, 20), False), ("bilinear", (3, 4), False), ("bilinear", (4, 11), False),
    ("bilinear", (5, 3), True), ("nearest", (4, 4), True), ("bilinear", (12, 12), True),
    ("bicubic", (10, 14), False), ("bicubic", (4, 3), True), ("area", (9, 9), False),
    ("area", (4, 3), True), ("lanczos3", (11, 17), False), ("lanczos3", (3, 5), False),
    ("lanczos5", (4, 9), False), ("gaussian", (8, 4), False), ("gaussian", (5, 12), True),
    ("mitchellcubic", (5, 12), True), ("mitchellcubic", (7, 9), False),
])
def test_keras_parity_pixels(tmp_path, keras_utils, interpolation, size, pad):
    """Every interpolation is tf.image.resize's arithmetic, shrinking or enlarging, with or
    without crop/pad to the aspect ratio."""
    rng = np.random.default_rng(2)
    write(tmp_path / "a" / "0.png", rng.integers(0, 256, (5, 7, 3), dtype=np.uint8))
    write(tmp_path / "b" / "1.bmp", rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
    write(tmp_path / "b" / "2.png", rng.integers(0, 256, (6, 6, 4), dtype=np.uint8))
    write(tmp_path / "b" / "3.png", rng.integers(0, 256, (41, 29, 3), dtype=np.uint8))
    kwargs = dict(image_size=size, shuffle=False, verbose=False, interpolation=interpolation,
                  pad_to_aspect_ratio=pad)
    if interpolation == "bicubic" and not pad:
        kwargs["crop_to_aspect_ratio"] = True
    (x_theirs, y_theirs), = keras_utils.image_dataset_from_directory(str(tmp_path), **kwargs)
    x_ours, y_ours = next(iter(image_dataset_from_directory(str(tmp_path), **kwargs)))
    np.testing.assert_array_equal(y_ours, np.asarray(y_theirs))
    x_theirs = np.asarray(x_theirs)
    np.testing.assert_allclose(x_ours, x_theirs, atol=1e-2)


def test_workers_decode_concurrently_and_a_bounded_distance_ahead(folder, monkeypatch):
    """No timing: the first two decodes meet at a barrier, which only works if two worker
    threads decode at once; and after one batch, the workers have not run far ahead."""
    from cnnkit.utils import _decode
    decode = _decode.decode_image
    barrier = threading.Barrier(2, timeout=10)
    calls = []
    lock = threading.Lock()

    def watched(path, *args, **kwargs):
        with lock:
            calls.append(path)
            first_two = len(calls) <= 2
        if first_two:
            barrier.wait()
        return decode(path, *args, **kwargs)
    monkeypatch.setattr(_decode, "decode_image", watched)
    ds = image_dataset_from_directory(folder, image_size=(2, 2), batch_size=1, shuffle=False,
                                      verbose=False, num_threads=2)
    it = iter(ds)
    next(it)
    time.sleep(0.2)  # give runaway workers the chance to show (none should)
    assert 2 <= len(calls) <= 1 + 2 * 2  # readahead: twice max(threads, batch size)
    it.close()


def test_resize_matches_tf_image_resize_for_every_interpolation():
    """_resize against tf.image.resize itself (what Keras calls), over shrinking, enlarging,
    same-size and one-pixel shapes."""
    tf = pytest.importorskip("tensorflow")
    from cnnkit.utils import _resize
    rng = np.random.default_rng(4)
    for shape in [(7, 9, 3), (41, 29, 1), (1, 5, 4)]:
        image = rng.integers(0, 256, shape).astype(np.float32)
        for size in [(13, 20), (4, 5), (7, 9), (3, 11), (1, 1)]:
            for interpolation in _resize.INTERPOLATIONS:
                ours = _resize.resize(image, size, interpolation)
                theirs = tf.image.resize(image, size, method=interpolation).numpy()
                assert ours.shape == theirs.shape and ours.dtype == np.float32
                np.testing.assert_allclose(ours, theirs, atol=2e-3,
                                           err_msg=f"{interpolation} {shape} -> {size}")
                from_bytes = _resize.resize(image.astype(np.uint8), size, interpolation)
                assert from_bytes.dtype == np.float32  # no uint8 arithmetic anywhere
                np.testing.assert_allclose(from_bytes, ours, atol=1e-3)

