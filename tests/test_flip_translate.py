"""FlipTranslateBatches (airbench94's augmentation): each batch against NumPy's own crop of the
reflect-padded image and mirror, the alternating flips, and fit reading it."""
import numpy as np
import pytest

import cnnkit
from cnnkit import layers as L
from cnnkit.utils import FlipTranslateBatches


def _images(n=20, size=6):
    rng = np.random.default_rng(0)
    return rng.random((n, size, size, 2)).astype(np.float32), np.arange(n)


def _identify(batch_x, x, r):
    """For each augmented image: (sample, dy, dx, flipped) that reproduces it."""
    padded = np.pad(x, ((0, 0), (r, r), (r, r), (0, 0)), mode="reflect")
    h, w = x.shape[1:3]
    found = []
    for image in batch_x:
        matches = [(s, dy, dx, f) for s in range(len(x)) for dy in range(2 * r + 1)
                   for dx in range(2 * r + 1) for f in (False, True)
                   if np.array_equal(image, (lambda c: c[:, ::-1] if f else c)(
                       padded[s, dy:dy + h, dx:dx + w]))]
        assert matches, "an augmented image that no crop and mirror of the data gives"
        found.append(matches[0])
    return found


def test_batches_are_crops_of_the_reflect_padded_images_mirrored_as_drawn():
    x, y = _images()
    data = FlipTranslateBatches(x, y, batch_size=6, translate=2, drop_remainder=False, seed=3)
    assert len(data) == 4
    data.on_epoch_begin()
    seen = []
    for i in range(len(data)):
        bx, by = data[i]
        for (sample, dy, dx, flipped), label in zip(_identify(bx, x, 2), by):
            assert sample == label  # the labels follow their images
            assert (dy, dx) == tuple(data._shifts[sample]) and flipped == data._flips[sample]
        seen.extend(by)
    assert sorted(seen) == list(range(20))  # each sample once an epoch


def test_alternating_flips_mirror_every_image_once_in_two_epochs():
    x, y = _images(n=200)
    data = FlipTranslateBatches(x, y, batch_size=50, translate=0, seed=1)
    data.on_epoch_begin()
    first = data._flips.copy()
    data.on_epoch_begin()
    np.testing.assert_array_equal(data._flips, ~first)
    data.on_epoch_begin()
    np.testing.assert_array_equal(data._flips, first)
    assert 70 < first.sum() < 130
    bx, by = data[0]
    np.testing.assert_array_equal(bx, np.where(first[by][:, None, None, None],
                                               x[by][:, :, ::-1], x[by]))


def test_no_augmentation_and_no_shuffle_gives_the_data_in_order():
    x, y = _images(n=10)
    data = FlipTranslateBatches(x, y, batch_size=4, flip=None, translate=0, shuffle=False)
    assert len(data) == 2  # the last partial batch is dropped
    np.testing.assert_array_equal(data[1][0], x[4:8])


def test_fit_reads_it():
    x, y = _images(n=32, size=8)
    labels = np.eye(2, dtype=np.float32)[y % 2]
    model = cnnkit.Sequential([cnnkit.Input((8, 8, 2)), L.Conv2D(3, 3), L.Flatten(),
                               L.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    data = FlipTranslateBatches(x, labels, batch_size=8, seed=0)
    history = model.fit(data, epochs=3, verbose=0, shuffle=False)
    assert len(history.history["loss"]) == 3 and data.epoch == 2


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0}, "batch_size"), ({"flip": "sometimes"}, "flip"),
    ({"translate": 6}, "translate=6 must be smaller"), ({"translate": -1}, "translate")])
def test_arguments_are_checked(kwargs, match):
    x, y = _images()
    with pytest.raises(ValueError, match=match):
        FlipTranslateBatches(x, y, **{"batch_size": 4, **kwargs})
