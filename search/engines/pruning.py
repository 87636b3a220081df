"""Pruning rules on plain curves: the one signature every rule of ours has, and what it sees.

An engine that takes no intermediate values (KerasTuner's RandomSearch and BayesianOptimization)
cannot stop a bad trial early, so its adapter applies one of these rules itself; a rule no engine
offers (the learning-curve rule) becomes an Optuna pruner too (engines/optuna/curve.py). Like
Optuna's `BasePruner.prune(study, trial)` or Ray Tune's `on_trial_result`, a rule is one method,
`should_prune(curve, horizon, reference)`, and sees a read-only `Reference` of the study, never an
engine's objects. The rules by name are search.engines.rules.RULES.

A curve is one trial's objective metric per epoch, indexed by the epoch counted across training
phases (transfer, then fine-tune), so no trial is cut at a phase boundary. A missing epoch is None
(or a non-finite number: the reporter sends only finite values to an engine).
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

Curve = Sequence[float | None]
DIRECTIONS = ("maximize", "minimize")


@dataclasses.dataclass(frozen=True)
class Reference:
    """What a rule weighs a trial against: the study so far."""

    direction: str  # the study's: "maximize" or "minimize"
    finished: Sequence[Curve] = ()  # the curves of the study's completed trials (not pruned, not failed)
    best: float | None = None  # the best value any trial reached, pruned ones too, where the caller knows it

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be 'maximize' or 'minimize'. Received: direction={self.direction!r}")


class PruningRule(abc.ABC):
    """A way to stop unpromising trials early, on plain curves."""

    @abc.abstractmethod
    def should_prune(self, curve: Curve, horizon: int, reference: Reference) -> bool:
        """Whether a trial should stop after the latest value of `curve`; `horizon` is the number
        of epochs it may reach (its epoch budget, or the study's most epochs a trial)."""


class NoPruning(PruningRule):
    """`--pruner none`: every trial trains until its own early stopping or the epoch cap (Optuna's
    `NopPruner`)."""

    def should_prune(self, curve: Curve, horizon: int, reference: Reference) -> bool:
        return False


def reported(curve: Curve) -> dict[int, float]:
    """{epoch: value} of the finite values, as Optuna's `trial.intermediate_values` would hold them."""
    return {epoch: float(v) for epoch, v in enumerate(curve) if v is not None and math.isfinite(v)}


def curve_of(history: Sequence[Mapping[str, Any]], metric: str) -> list[float | None]:
    """A trial's curve from its per-epoch history rows (`{"epoch": 0, "val_accuracy": ...}`)."""
    out: list[float | None] = []
    for row in history:
        epoch, value = row.get("epoch"), row.get(metric)
        if not isinstance(epoch, int) or epoch < 0:
            continue
        out.extend([None] * (epoch + 1 - len(out)))
        out[epoch] = float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
    return out
