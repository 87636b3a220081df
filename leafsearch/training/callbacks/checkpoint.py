"""`CheckpointCallback`: the trial's checkpoint at the end of every epoch (what it holds:
training/loop.py)."""

from __future__ import annotations

from collections.abc import Callable

import keras

from leafsearch.training.callbacks.reporting import ReporterCallback


class CheckpointCallback(keras.callbacks.Callback):
    """Writes the trial's checkpoint at the end of every epoch (after the other callbacks, so
    their counters and the learning rate they set are in it)."""

    def __init__(self, save: Callable[[int, bool], None], reporting: ReporterCallback):
        super().__init__()
        self.save = save
        self.reporting = reporting

    def on_epoch_end(self, epoch, logs=None):
        if not self.reporting.pruned:
            self.save(epoch + 1, bool(self.model.stop_training))
