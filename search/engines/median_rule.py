"""Median pruning without an engine: the rule of Optuna's `MedianPruner`, on plain curves.

KerasTuner's RandomSearch and BayesianOptimization take no intermediate values, so they cannot
stop a bad trial early; the reporter applies this rule for them. A curve is one trial's objective
metric per epoch, indexed by the epoch counted across training phases (transfer, then fine-tune),
so no trial is cut at a phase boundary. A missing epoch is None (or a non-finite number: the
reporter sends only finite values to an engine).
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

Curve = Sequence[float | None]


def reported(curve: Curve) -> dict[int, float]:
    """{epoch: value} of the finite values, as Optuna's `trial.intermediate_values` would hold them."""
    return {epoch: float(v) for epoch, v in enumerate(curve) if v is not None and math.isfinite(v)}


def median_should_prune(
    curve: Curve,
    finished_curves: Iterable[Curve],
    direction: str,
    n_startup_trials: int = 3,
    n_warmup_steps: int = 2,
) -> bool:
    """Whether a trial should stop after the latest value of `curve`.

    The rule of `optuna.pruners.MedianPruner(n_startup_trials, n_warmup_steps)` (one check per
    step, `n_min_trials=1`), step by step as in `optuna/pruners/_percentile.py`:
    - `finished_curves` are the curves of the study's completed trials (not pruned, not failed);
      fewer than `n_startup_trials` of them: keep going;
    - the step is the latest epoch with a value; before `n_warmup_steps` (0-based): keep going;
    - prune when the trial's best value so far is worse than the median of the completed trials'
      values at that same epoch (only those that reached it count; none did: keep going).
    """
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize'. Received: direction={direction!r}")
    finished = [reported(c) for c in finished_curves]
    if not finished or len(finished) < n_startup_trials:
        return False
    values = reported(curve)
    if not values:
        return False
    step = max(values)
    if step < n_warmup_steps:
        return False
    best = max(values.values()) if direction == "maximize" else min(values.values())
    at_step = [c[step] for c in finished if step in c]
    if not at_step:
        return False
    median = float(np.percentile(np.array(at_step, dtype=float), 50.0))
    return best < median if direction == "maximize" else best > median


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
