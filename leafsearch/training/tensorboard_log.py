"""TensorBoard logging of every trial with the HParams plugin, whichever engine runs the study.

Each trial writes `results/<study>/tb/<trial>/`: its parameters as an HParams session (the
plugin's `hp.hparams`) and every epoch's metrics as scalars, so `tensorboard --logdir
results/<study>/tb` shows the HParams dashboard with one row per trial. It uses `tf.summary`, so
under a Keras backend without TensorFlow installed it logs nothing.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras

from leafsearch.runtime import import_tensorflow_quietly

FOLDER = "tb"


def log_dir(trial_dir: Path, trial_number: int) -> Path:
    """`<study>/tb/<trial>/` for a trial folder `<study>/trials/<trial>/`."""
    return Path(trial_dir).parent.parent / FOLDER / str(trial_number)


def _hparam_values(params: Mapping[str, Any]) -> dict[str, bool | int | float | str]:
    """The parameters HParams can show (it takes booleans, numbers and strings only)."""
    return {name: value for name, value in params.items() if isinstance(value, (bool, int, float, str))}


class HParamsLogger(keras.callbacks.Callback):
    """Writes the trial's HParams session once, then the metrics of every epoch it sees.

    One instance serves the whole trial: `epoch_offset` is set before each training phase so the
    steps count epochs across phases, as the reporter does."""

    def __init__(self, folder: Path, trial_id: str, params: Mapping[str, Any]):
        super().__init__()
        tf = import_tensorflow_quietly()  # under JAX, the trial's first import of TensorFlow

        self.folder = Path(folder)
        self.trial_id = trial_id
        self.params = _hparam_values(params)
        self.epoch_offset = 0
        self._tf = tf
        self._writer = None

    def on_train_begin(self, logs=None):
        if self._writer is None:  # once per trial, not per phase
            from tensorboard.plugins.hparams import api as hp

            self._writer = self._tf.summary.create_file_writer(str(self.folder))
            with self._writer.as_default():
                hp.hparams(self.params, trial_id=self.trial_id)

    def on_epoch_end(self, epoch, logs=None):
        with self._writer.as_default():
            for name, value in (logs or {}).items():
                self._tf.summary.scalar(name, float(value), step=self.epoch_offset + epoch)
        self._writer.flush()

    def close(self, outcome: str | None = None) -> None:
        """End the trial's session with `outcome` ("complete", "pruned" or "failed"; None: it
        was interrupted and will go on). HParams knows four statuses: a complete trial is a
        success, a pruned or failed one (stopped before its end) a failure; the leaderboard tells
        the two apart."""
        if self._writer is not None:
            if outcome is not None:
                from tensorboard.plugins.hparams import api_pb2
                from tensorboard.plugins.hparams import summary as hparams_summary

                status = api_pb2.STATUS_SUCCESS if outcome == "complete" else api_pb2.STATUS_FAILURE
                with self._writer.as_default():
                    self._tf.summary.experimental.write_raw_pb(
                        hparams_summary.session_end_pb(status).SerializeToString(), step=0
                    )
            self._writer.close()
            self._writer = None


def hparams_logger(trial_dir: Path, trial_number: int, params: Mapping[str, Any]) -> HParamsLogger | None:
    """The trial's logger, or None where TensorFlow (and so tf.summary) is not installed."""
    if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("tensorboard") is None:
        return None
    return HParamsLogger(log_dir(trial_dir, trial_number), str(trial_number), params)
