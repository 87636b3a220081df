"""Training batches from the decode cache: ``tf.data`` under TensorFlow, a PyDataset elsewhere.

Under the TensorFlow backend a trial reads its batches through ``tf.data``
(:func:`make_tf_dataset`). Under any other Keras backend (JAX on a GPU machine
that has no TensorFlow) it reads them through :class:`CachedBatches`, a ``keras.utils.PyDataset``
that gathers each batch from the same uint8 array (often the read-only memmap of the decode
cache). Keras prefetches it with worker threads, so the next batches are gathered while the
device runs the current step. Both paths give a new seeded order every epoch for training and
the file order for validation; the one difference is that here the last training batch of an
epoch is filled up with the epoch's first images, so that XLA compiles one train step per trial.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import numpy as np


def batch_inputs(
    images: np.ndarray, labels: np.ndarray, indices: Sequence[int] | np.ndarray, num_classes: int, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """The checked arguments of a batch pipeline: ``indices`` as int64 and the one-hot float32
    labels of ``images[indices]``, shared by the tf.data and the NumPy input paths."""
    indices = np.asarray(indices, dtype=np.int64)
    if indices.ndim != 1 or indices.size == 0:
        raise ValueError("indices must be a non-empty 1-D array")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must have shape (N, S, S, 3), got {images.shape}")
    onehot = np.zeros((len(indices), num_classes), dtype=np.float32)
    onehot[np.arange(len(indices)), np.asarray(labels, dtype=np.int64)[indices]] = 1.0
    return indices, onehot


def make_tf_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    indices: Sequence[int] | np.ndarray,
    num_classes: int,
    batch_size: int,
    shuffle: bool,
    seed: int,
):
    """A ``tf.data.Dataset`` of ``(uint8 images (B, S, S, 3), one-hot float32 labels (B, C))``.

    Images stay 0-255 ``uint8``: the model rescales (Keras casts the batch to its input dtype on
    the device) and augmentation runs inside the model, so a batch costs a quarter of the bytes
    of float32 to move.

    How it avoids copies: only the *positions* ``0..len(indices)-1`` enter TensorFlow. They are
    shuffled (seeded, ``reshuffle_each_iteration=True``, so each epoch has a new order that is
    the same from run to run), batched, and each batch of images is gathered straight from
    ``images`` -- an in-memory array or the read-only memmap of the decode cache -- with a
    ``tf.numpy_function``. Nothing the size of the dataset is ever copied into a TF constant (so
    there is no 2 GiB graph-constant limit and no second copy in RAM); with a memmap, only the
    pages of the batches in flight are touched, and all trials share the OS page cache. The
    per-batch Python call is small next to a training step and overlaps it via ``prefetch``.
    """
    import tensorflow as tf  # lazy: the rest of the module does not need TensorFlow

    indices, onehot = batch_inputs(images, labels, indices, num_classes, batch_size)
    image_shape = tuple(int(d) for d in images.shape[1:])
    image_dtype = tf.as_dtype(images.dtype)

    def gather(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.ascontiguousarray(images[indices[positions]]), onehot[positions]

    @tf.autograph.experimental.do_not_convert  # plain Python around numpy_function; nothing to convert
    def gather_tf(positions):
        batch_images, batch_labels = tf.numpy_function(gather, [positions], (image_dtype, tf.float32), stateful=False)
        batch_images.set_shape((None, *image_shape))
        batch_labels.set_shape((None, num_classes))
        return batch_images, batch_labels

    ds = tf.data.Dataset.range(len(indices))
    if shuffle:
        ds = ds.shuffle(len(indices), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    ds = ds.map(gather_tf, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


class CachedBatches(keras.utils.PyDataset):
    """``(uint8 images (B, S, S, 3), one-hot float32 labels (B, C))`` batches of ``images[indices]``.

    With ``shuffle`` (training) the order is drawn from ``seed`` for the first epoch and drawn
    again after every epoch, so a run is repeatable, and every batch has ``batch_size`` images;
    without it (validation), batches follow ``indices`` and the last one may be smaller. ``workers``
    threads gather batches ahead of the training step (NumPy's fancy indexing releases the GIL
    for the copy); a batch of 32 images of 380 px is 14 MB, so the default queue of 4 batches
    keeps memory small.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        indices: Sequence[int] | np.ndarray,
        num_classes: int,
        batch_size: int,
        shuffle: bool,
        seed: int,
        workers: int = 2,
        max_queue_size: int = 4,
    ):
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=max_queue_size)
        self.indices, self.onehot = batch_inputs(images, labels, indices, num_classes, batch_size)
        self.images = images
        self.batch_size = batch_size
        self.shuffle = shuffle
        self._rng = np.random.default_rng(seed)
        self._order = self._draw_order()

    def _draw_order(self) -> np.ndarray:
        positions = np.arange(len(self.indices))
        return self._rng.permutation(positions) if self.shuffle else positions

    def __len__(self) -> int:
        return math.ceil(len(self.indices) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range [0, {len(self)})")
        start = index * self.batch_size
        if self.shuffle:
            # Every training batch is full: the last one wraps around to the epoch's first images.
            # A TensorFlow graph takes any batch size, but XLA under JAX compiles the train step
            # again for each new batch shape, which costs minutes for an EfficientNet on a GPU.
            positions = np.take(self._order, np.arange(start, start + self.batch_size), mode="wrap")
        else:
            positions = self._order[start : start + self.batch_size]
        rows = self.indices[positions]
        # Sorted reads touch a memmap's pages in order; the batch keeps the drawn order.
        order = np.argsort(rows, kind="stable")
        batch = np.empty((len(rows), *self.images.shape[1:]), dtype=self.images.dtype)
        batch[order] = self.images[rows[order]]
        return batch, self.onehot[positions]

    def on_epoch_end(self) -> None:
        self._order = self._draw_order()


def make_batches(
    images: np.ndarray,
    labels: np.ndarray,
    indices: Sequence[int] | np.ndarray,
    num_classes: int,
    batch_size: int,
    shuffle: bool,
    seed: int,
    backend: str | None = None,
):
    """The input for ``model.fit``: ``tf.data`` under the TensorFlow backend, else :class:`CachedBatches`."""
    backend = backend or keras.backend.backend()
    if backend == "tensorflow":
        return make_tf_dataset(images, labels, indices, num_classes, batch_size, shuffle=shuffle, seed=seed)
    return CachedBatches(images, labels, indices, num_classes, batch_size, shuffle=shuffle, seed=seed)
