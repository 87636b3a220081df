"""The Keras callbacks of a trial's epoch loop (training/loop.py), one concept per module:
reporting each epoch to the engine, early stopping and the plateau schedule whose counters survive
a resume, the wild validation metric, and the checkpoint written after every epoch.

The other two callbacks a trial can have live with what they serve: `PreciseBatchNorm`
(training/precise_bn.py) and `HParamsLogger` (training/tensorboard_log.py).
"""

from leafsearch.training.callbacks.checkpoint import CheckpointCallback
from leafsearch.training.callbacks.reporting import ReporterCallback
from leafsearch.training.callbacks.resumable import (
    ResumableEarlyStopping,
    ResumableReduceLROnPlateau,
    callback_states,
    phase_callbacks,
)
from leafsearch.training.callbacks.wild_validation import WildValidation

__all__ = [
    "CheckpointCallback",
    "ReporterCallback",
    "ResumableEarlyStopping",
    "ResumableReduceLROnPlateau",
    "WildValidation",
    "callback_states",
    "phase_callbacks",
]
