"""Median pruning without an engine: the rule of Optuna's `MedianPruner`, on plain curves.

The KerasTuner adapter applies it when a study asks for `--pruner median` (KerasTuner's oracles
take no intermediate values); Optuna studies use Optuna's own `MedianPruner`, which this rule
matches decision for decision (tests/search/test_pruning.py).
"""

from __future__ import annotations

import dataclasses

import numpy as np

# `curve_of` is read from here by bench/pruning_replay.py.
from search.engines.pruning import Curve, PruningRule, Reference, curve_of, reported

__all__ = ["MedianRule", "curve_of"]


@dataclasses.dataclass(frozen=True)
class MedianRule(PruningRule):
    """The rule of `optuna.pruners.MedianPruner(n_startup_trials, n_warmup_steps)` (one check per
    step, `n_min_trials=1`), step by step as in `optuna/pruners/_percentile.py`:
    - the reference's finished curves are the study's completed trials' (not pruned, not failed);
      fewer than `n_startup_trials` of them: keep going;
    - the step is the latest epoch with a value; before `n_warmup_steps` (0-based): keep going;
    - prune when the trial's best value so far is worse than the median of the completed trials'
      values at that same epoch (only those that reached it count; none did: keep going).
    The horizon plays no part: the rule compares epochs that were trained, not what is to come.
    """

    n_startup_trials: int = 3
    n_warmup_steps: int = 2

    def should_prune(self, curve: Curve, horizon: int, reference: Reference) -> bool:
        finished = [reported(c) for c in reference.finished]
        if not finished or len(finished) < self.n_startup_trials:
            return False
        values = reported(curve)
        if not values:
            return False
        step = max(values)
        if step < self.n_warmup_steps:
            return False
        maximize = reference.direction == "maximize"
        best = max(values.values()) if maximize else min(values.values())
        at_step = [c[step] for c in finished if step in c]
        if not at_step:
            return False
        median = float(np.percentile(np.array(at_step, dtype=float), 50.0))
        return best < median if maximize else best > median
