"""`WildValidation`: the `val_wild_accuracy` metric, the validation images on new backgrounds."""

from __future__ import annotations

import keras
import numpy as np

from leafsearch.data import LeafData
from leafsearch.data.masks import with_backgrounds


class WildValidation(keras.callbacks.Callback):
    """Adds `val_wild_accuracy` to each epoch's logs: the accuracy on the validation images with
    their black backgrounds replaced, the same replacement for every trial of a study (fixed by
    image and split seed), so that a study can choose its trials by how they do off the black
    background. Runs before the callbacks that read the logs (reporter, early stopping)."""

    METRIC = "val_wild_accuracy"

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int):
        super().__init__()
        self.images, self.labels, self.batch_size = images, labels, batch_size

    @classmethod
    def of(cls, data: LeafData, batch_size: int, seed: int) -> WildValidation:
        return cls(with_backgrounds(data.images[data.val_idx], seed), data.labels[data.val_idx], batch_size)

    def on_epoch_end(self, epoch, logs=None):
        predicted = self.model.predict(self.images, batch_size=self.batch_size, verbose=0).argmax(axis=1)
        if logs is not None:
            logs[self.METRIC] = float(np.mean(predicted == self.labels))
