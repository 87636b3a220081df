"""`ReporterCallback`: each epoch's logs to the reporter (and so to the engine), and training
stopped when the engine prunes the trial or the loss is no longer a number."""

from __future__ import annotations

import math

import keras

from search.errors import TrialFailed
from search.reporter import Reporter


class ReporterCallback(keras.callbacks.Callback):
    """Sends each epoch's logs to the reporter and stops training when the engine prunes.

    `epoch_offset` turns the phase's epoch numbers into the trial's (counted across phases)."""

    def __init__(self, reporter: Reporter, epoch_offset: int):
        super().__init__()
        self.reporter = reporter
        self.epoch_offset = epoch_offset
        self.pruned = False
        self.epochs_done = 0

    def on_train_begin(self, logs=None):
        self.pruned = False
        self.epochs_done = 0

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items() if not k.startswith("learning_rate")}
        if "loss" in logs and not math.isfinite(logs["loss"]):
            self.model.stop_training = True
            raise TrialFailed("nan loss")
        self.reporter.report(self.epoch_offset + epoch, logs)
        self.epochs_done += 1
        if self.reporter.should_prune():
            self.pruned = True
            self.model.stop_training = True
