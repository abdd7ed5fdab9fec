"""FlipTranslateBatches: batches of image arrays with airbench94's augmentation (K. Jordan,
2024), a PyDataset for fit. A cnnkit addition: Keras' RandomFlip and RandomTranslation layers
draw each epoch's flips independently; here they are derandomised.

- flip="alternate": a random half of the images (drawn once, from seed) is mirrored in even
  epochs, the other half in odd epochs, so every image is seen both ways every two epochs (the
  "alternating flip" of airbench, worth a few tenths of a point over random flips);
  "random": a fresh half each epoch; None: no flips.
- translate=r: each image is shifted by a random (dy, dx) in [-r, r]^2, drawn per image and
  epoch, reflecting the border (a crop of the image reflect-padded by r, as airbench crops).
- shuffle: a new order of the samples each epoch; drop_remainder: the last partial batch is
  left out (airbench drops it, so every step has the same batch size).

Images are NHWC; the padded copy is made once (float32 images of 32x32 padded by 2: 1.27x the
data). The epoch's order, shifts and flips are drawn in on_epoch_begin, which fit calls; a batch
is then one gather per shift (at most (2r+1)^2), so __getitem__ is safe from several worker
threads.
"""
import numbers

import numpy as np

from .py_dataset import PyDataset

__all__ = ["FlipTranslateBatches"]


class FlipTranslateBatches(PyDataset):
    def __init__(self, x, y, batch_size, flip="alternate", translate=2, shuffle=True,
                 drop_remainder=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        who = "FlipTranslateBatches"
        x = np.asarray(x)
        if x.ndim != 4:
            raise ValueError(f"{who}: x must be images (N, height, width, channels), got shape "
                             f"{x.shape}")
        y = np.asarray(y)
        if len(y) != len(x):
            raise ValueError(f"{who}: x and y hold {len(x)} and {len(y)} samples")
        for name, value, low in (("batch_size", batch_size, 1), ("translate", translate, 0)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                raise ValueError(f"{who}: {name} must be an integer >= {low}, got {value!r}")
        if flip not in ("alternate", "random", None):
            raise ValueError(f"{who}: flip must be 'alternate', 'random' or None, got {flip!r}")
        if translate >= min(x.shape[1], x.shape[2]):
            raise ValueError(f"{who}: translate={translate} must be smaller than the images "
                             f"({x.shape[1]}x{x.shape[2]})")
        self.x, self.y = x, y
        self.batch_size, self.flip, self.translate = int(batch_size), flip, int(translate)
        self.shuffle, self.drop_remainder = bool(shuffle), bool(drop_remainder)
        r = self.translate
        self._padded = np.pad(x, ((0, 0), (r, r), (r, r), (0, 0)), mode="reflect") if r else x
        self._rng = np.random.default_rng(seed)
        self._flip_half = self._rng.random(len(x)) < 0.5 if flip == "alternate" else None
        self.epoch = -1
        self._order = np.arange(len(x))
        self._shifts = np.full((len(x), 2), r, np.int64)  # offsets into the padded images
        self._flips = np.zeros(len(x), bool)

    def __len__(self):
        n, b = len(self.x), self.batch_size
        return n // b if self.drop_remainder else -(-n // b)

    def on_epoch_begin(self):
        self.epoch += 1
        n, r = len(self.x), self.translate
        if self.shuffle:
            self._order = self._rng.permutation(n)
        if r:
            self._shifts = self._rng.integers(0, 2 * r + 1, size=(n, 2))
        if self.flip == "alternate":
            self._flips = self._flip_half ^ bool(self.epoch % 2)
        elif self.flip == "random":
            self._flips = self._rng.random(n) < 0.5

    def __getitem__(self, index):
        if self.epoch < 0:  # read outside fit: the first epoch's draws
            self.on_epoch_begin()
        if not 0 <= index < len(self):
            raise IndexError(f"FlipTranslateBatches: batch {index} of {len(self)}")
        samples = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        h, w = self.x.shape[1:3]
        out = np.empty((len(samples),) + self.x.shape[1:], self.x.dtype)
        shifts = self._shifts[samples]
        if self.translate:
            keys = shifts[:, 0] * (2 * self.translate + 1) + shifts[:, 1]
            for key in np.unique(keys):
                rows = np.flatnonzero(keys == key)
                dy, dx = shifts[rows[0]]
                out[rows] = self._padded[samples[rows], dy:dy + h, dx:dx + w]
        else:
            out[...] = self.x[samples]
        flipped = np.flatnonzero(self._flips[samples])
        out[flipped] = out[flipped, :, ::-1]
        return out, self.y[samples]
