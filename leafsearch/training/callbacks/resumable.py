"""Early stopping and the plateau schedule whose counters (patience waited, best value) survive a
resume: Keras' `BackupAndRestore` keeps only weights and epoch, so a continued trial would wait its
whole patience again. Their counters go into every checkpoint (`callback_states`) and come back
from it (`phase_callbacks`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras


class _ResumableState:
    """A Keras callback whose counters (patience waited, best value) survive a resume: they are
    saved in each checkpoint and set back after Keras resets them in `on_train_begin`."""

    STATE: tuple[str, ...] = ()

    def __init__(self, *args, state: Mapping[str, Any] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.resume_state = dict(state or {})

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        for name, value in self.resume_state.items():
            setattr(self, name, value)

    def state(self) -> dict[str, Any]:
        return {name: _plain(getattr(self, name)) for name in self.STATE}


class ResumableEarlyStopping(_ResumableState, keras.callbacks.EarlyStopping):
    STATE = ("wait", "best", "best_epoch")


class ResumableReduceLROnPlateau(_ResumableState, keras.callbacks.ReduceLROnPlateau):
    STATE = ("wait", "best", "cooldown_counter")


def _plain(value: Any) -> Any:
    return None if value is None else float(value) if not isinstance(value, int) else value


def phase_callbacks(
    recipe: Mapping[str, Any], monitor: str, mode: str, state: Mapping[str, Any] | None = None
) -> list[keras.callbacks.Callback]:
    """Early stopping (and the plateau schedule), with their counters from `state` on a resume.
    The best weights of a phase are restored from its best checkpoint, not kept in memory."""
    state = state or {}
    callbacks: list[keras.callbacks.Callback] = [
        ResumableEarlyStopping(
            monitor=monitor, mode=mode, patience=recipe["patience"], state=state.get("early_stopping")
        ),
    ]
    if recipe["lr_schedule"] == "reduce_on_plateau":
        callbacks.append(
            ResumableReduceLROnPlateau(
                monitor=monitor,
                mode=mode,
                factor=recipe["plateau_factor"],
                patience=recipe["plateau_patience"],
                state=state.get("plateau"),
            )
        )
    return callbacks


def callback_states(callbacks: list[keras.callbacks.Callback]) -> dict[str, Any]:
    """The counters of the resumable callbacks among `callbacks`, as a checkpoint keeps them
    (`phase_callbacks` reads them back by the same names)."""
    names = {ResumableEarlyStopping: "early_stopping", ResumableReduceLROnPlateau: "plateau"}
    return {names[type(c)]: c.state() for c in callbacks if type(c) in names}
