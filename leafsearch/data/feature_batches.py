"""Batches of cached features (training/feature_cache.py) for `fit`, under any Keras backend.

Training draws, every epoch, a new seeded order and one of the stored augmented views for each
image: the cached stand-in for augmentation drawn anew every epoch. Validation reads the plain
features in order. A `keras.utils.PyDataset`: the arrays are small next to images (1,280 numbers
per image after pooling), so there is no input pipeline to overlap with the step.
"""

from __future__ import annotations

import math

import keras
import numpy as np


class FeatureBatches(keras.utils.PyDataset):
    """`(features (B, ...) float32, one-hot labels (B, C))` batches.

    `features` is `(V, N, ...)`: V views of N rows, whose labels are `labels` (N,). With `shuffle`
    (training) each epoch has a new order and a new view per row, drawn from `seed`, and, under a
    backend that compiles one step per batch shape (JAX), every batch is full (the last wraps
    around, as data/batches.py's `CachedBatches` does); without it rows go in order, view 0.
    """

    def __init__(
        self,
        features: np.ndarray,
        labels: np.ndarray,
        num_classes: int,
        batch_size: int,
        shuffle: bool,
        seed: int,
        full_batches: bool | None = None,
    ):
        super().__init__(workers=1, use_multiprocessing=False)
        if features.ndim < 2 or features.shape[1] != len(labels):
            raise ValueError(f"features must be (views, {len(labels)}, ...), got {features.shape}")
        self.features = features
        self.onehot = np.eye(num_classes, dtype=np.float32)[np.asarray(labels, dtype=np.int64)]
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.full_batches = shuffle and (
            keras.backend.backend() != "tensorflow" if full_batches is None else full_batches
        )
        self._rng = np.random.default_rng(seed)
        self._draw()

    def _draw(self) -> None:
        rows = len(self.onehot)
        if self.shuffle:
            self._order = self._rng.permutation(rows)
            self._views = self._rng.integers(0, len(self.features), size=rows)
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
            positions = np.take(self._order, np.arange(start, start + self.batch_size), mode="wrap")
        else:
            positions = self._order[start : start + self.batch_size]
        rows = positions
        return np.asarray(self.features[self._views[rows], rows], dtype=np.float32), self.onehot[rows]

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self._draw()
