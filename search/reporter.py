"""The reporter: the objective's only channel back to the engine.

The objective calls `report(epoch, metrics)` after every epoch and stops when `should_prune()`
says so; it keeps its checkpoints under `checkpoint_dir`. It has two subclasses, whichever the
engine: the study process's (`EngineReporter` in search/loop.py, which gives each finite epoch
value to the engine's `report` and keeps its answer) and a trial's child process's
(`ChildReporter` in search/execution/executor.py, which sends every call to the former).

Continuing a trial: when `checkpoint_dir` already holds a checkpoint (its own, when a stopped
trial runs again; moved there by the study loop from the interrupted trial it continues; copied
from the Hyperband trial it extends), the objective loads it and calls `restore(history)` with
the epochs it already has, then trains on. `epoch_budget`, when set, is the total number of
epochs (across phases) the engine allows this trial to reach.
"""

from __future__ import annotations

import abc
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from search.errors import ConstraintViolated
from search.records.files import write_json_atomic
from search.study import violated

ENDED_AT = "ended_at"  # history.json: when an epoch ended

EpochListener = Callable[[int, int, Mapping[str, float]], None]


class Reporter(abc.ABC):
    """Keeps the trial's per-epoch history (on disk too) and forwards the metric to the engine."""

    def __init__(
        self,
        trial_number: int,
        trial_dir: Path,
        metric: str,
        listener: EpochListener | None = None,
        seed: int = 0,
        epoch_budget: int | None = None,
    ):
        self.trial_number = trial_number
        self.trial_dir = Path(trial_dir)
        self.metric = metric
        self.seed = seed
        self.epoch_budget = epoch_budget
        self.constraints: Mapping[str, float] = {}  # the study's upper bounds on cost columns
        # Whether the objective must measure the model's costs before its first epoch (the study
        # bounds or optimises a cost); otherwise it may measure only the trials that train to the end.
        self.costs_first = False
        self.history: list[dict[str, float]] = []
        self.resumed_from_epoch: int | None = None  # set by restore(): epochs taken from a checkpoint
        self._listener = listener

    @property
    def checkpoint_dir(self) -> Path:
        """Where the objective keeps this trial's checkpoints (created by whoever writes there)."""
        return self.trial_dir / "checkpoints"

    def report(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Record one finished epoch (0-based, counted across training phases)."""
        row = {"epoch": int(epoch), **{k: float(v) for k, v in metrics.items() if k != ENDED_AT}}
        self.history.append(stamped(row, metrics))
        write_json_atomic(self.trial_dir / "history.json", self.history)
        value = row.get(self.metric)
        if value is not None and math.isfinite(value):
            self._send(epoch, value)
        if self._listener is not None:
            self._listener(self.trial_number, epoch, row)

    def restore(self, history: list[dict[str, float]]) -> None:
        """Take the epochs of a checkpoint the objective continues from, as if just reported (the
        engine sees one continuous curve; the listener is not told again)."""
        self.history = [dict(row) for row in history]
        self.resumed_from_epoch = len(self.history)
        write_json_atomic(self.trial_dir / "history.json", self.history)
        for row in self.history:
            value = row.get(self.metric)
            if value is not None and math.isfinite(value):
                self._send(int(row["epoch"]), value)

    def measured(self, costs: Mapping[str, Any]) -> None:
        """The model's costs, once it is built and before its first epoch: raises
        ConstraintViolated when they break a bound of the study, so no epoch is spent on it."""
        broken = self.broken_bounds(costs)
        if broken:
            raise ConstraintViolated("constraint broken: " + "; ".join(broken))

    def broken_bounds(self, costs: Mapping[str, Any]) -> list[str]:
        return violated(self.constraints, costs)

    @abc.abstractmethod
    def _send(self, epoch: int, value: float) -> None:
        """Give the engine the objective metric of one epoch (for pruning and plots)."""

    @abc.abstractmethod
    def should_prune(self) -> bool:
        """Whether the engine wants this trial stopped now."""


def stamped(row: Mapping[str, float], metrics: Mapping[str, float]) -> dict[str, float]:
    """The history row of an epoch with when it ended (Unix seconds; kept if the trial's own
    process stamped it), so a study's curves can be read over compute time, not only epochs."""
    return {**row, ENDED_AT: float(metrics.get(ENDED_AT, time.time()))}


def summarise(history: list[dict[str, float]], metric: str, direction: str) -> dict[str, Any]:
    """The best epoch of a history by the study's metric: its metrics, its number (1-based, as
    progress lines show it), and the epoch count."""
    scored = [row for row in history if isinstance(row.get(metric), float) and math.isfinite(row[metric])]
    if not scored:
        return {"epochs": len(history)}
    pick = max if direction == "maximize" else min
    best = pick(scored, key=lambda row: row[metric])
    return {
        metric: best[metric],
        "val_loss": best.get("val_loss"),
        "best_epoch": int(best["epoch"]) + 1,
        "epochs": len(history),
    }
