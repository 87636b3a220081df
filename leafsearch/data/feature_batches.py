"""Batches of cached features (training/feature_cache.py) for `fit`, under any Keras backend.

Training draws, every epoch, a new seeded order and one of the augmented views built so far for
each image: the cached stand-in for augmentation drawn anew every epoch. A phase's first
`plain_epochs` epochs read the plain (unaugmented) features instead, which every trial shares, so
a trial stopped by the pruner by then builds no view of its own. Validation reads the plain
features in order. A `keras.utils.PyDataset`: the arrays are small next to images (1,280 numbers
per image after pooling), so there is no input pipeline to overlap with the step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import numpy as np


class FeatureBatches(keras.utils.PyDataset):
    """`(features (B, ...) float32, one-hot labels (B, C))` batches.

    `view(v)` gives view v of the rows (N, ...), whose labels are `labels` (N,); there are `views`
    of them. With `shuffle` (training) each epoch has a new order and, for each row, one of the
    views 0..min(e - plain_epochs, views - 1) for the phase's epoch e (counted from `epoch`, the
    first one fed), drawn from `seed`, or `plain()` for the epochs e < `plain_epochs`; a view is
    asked for only once an epoch uses it (training/feature_cache.py builds it then). Under a
    backend that compiles one step per batch shape (JAX) every training batch is full (the last
    wraps around, as data/batches.py's `CachedBatches`). Without `shuffle` rows go in order, view 0.
    """

    def __init__(
        self,
        view: Callable[[int], np.ndarray],
        views: int,
        labels: np.ndarray,
        num_classes: int,
        batch_size: int,
        shuffle: bool,
        seed: int,
        epoch: int = 0,
        plain: Callable[[], np.ndarray] | None = None,
        plain_epochs: int = 0,
    ):
        super().__init__(workers=1, use_multiprocessing=False)
        self.view, self.views, self.epoch, self.first_epoch = view, views, epoch, epoch
        self.plain, self.plain_epochs = plain, plain_epochs if plain is not None else 0
        self._epochs_begun = 0
        self.onehot = np.eye(num_classes, dtype=np.float32)[np.asarray(labels, dtype=np.int64)]
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.full_batches = shuffle and keras.backend.backend() != "tensorflow"
        self._rng = np.random.default_rng(seed)
        self._drawn_for: int | None = None
        self._draw()

    def _draw(self) -> None:
        """The order and each row's view for `self.epoch` (once per epoch)."""
        if self._drawn_for == self.epoch:
            return
        self._drawn_for = self.epoch
        rows = len(self.onehot)
        if self.shuffle and self.epoch < self.plain_epochs:
            available, self._arrays = 1, [self.plain()]
        else:
            available = min(self.epoch - self.plain_epochs, self.views - 1) + 1 if self.shuffle else 1
            self._arrays = [self.view(v) for v in range(available)]
        for array in self._arrays:
            if len(array) != rows:
                raise ValueError(f"a view has {len(array)} rows for {rows} labels")
        if self.shuffle:
            self._order = self._rng.permutation(rows)
            self._views = self._rng.integers(0, available, size=rows)
        else:
            self._order = np.arange(rows)
            self._views = np.zeros(rows, dtype=np.int64)

    def __len__(self) -> int:
        return math.ceil(len(self.onehot) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range [0, {len(self)})")
        start = index * self.batch_size
        if self.full_batches:
            rows = np.take(self._order, np.arange(start, start + self.batch_size), mode="wrap")
        else:
            rows = self._order[start : start + self.batch_size]
        batch = np.empty((len(rows), *self._arrays[0].shape[1:]), dtype=np.float32)
        for v, array in enumerate(self._arrays):
            chosen = self._views[rows] == v
            if chosen.any():
                batch[chosen] = array[rows[chosen]]
        return batch, self.onehot[rows]

    def fed(self) -> np.ndarray:
        """What this epoch feeds in place of augmented images: the plain features in the first
        epochs, view 0 after them (in row order)."""
        return self._arrays[0]

    def on_epoch_begin(self) -> None:
        """Keras calls this once at the start of every epoch (and `on_epoch_end` more than once: at
        the end of an epoch and when `fit` resets its iterator), so the epoch advances here."""
        if self.shuffle:
            self.epoch = self.first_epoch + self._epochs_begun
            self._epochs_begun += 1
            self._draw()
