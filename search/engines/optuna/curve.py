"""`--pruner curve` for Optuna: the learning-curve rule (search.engines.curve_rule) as a pruner."""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.engines.curve_rule import CurveRule
from search.engines.pruning import Reference


def _curve(trial: FrozenTrial) -> list[float | None]:
    values = trial.intermediate_values
    return [values.get(step) for step in range(max(values) + 1)] if values else []


class CurvePruner(optuna.pruners.BasePruner):
    """Stops a trial whose extrapolated curve cannot reach the study's best value so far.

    `horizon` is the most epochs a trial may train (Hyperband's `max_resource`); None: the most
    any finished trial reported, as Hyperband's "auto". The best so far counts pruned trials too:
    their values were measured all the same."""

    def __init__(self, horizon: int | None = None, rule: CurveRule | None = None):
        self.horizon = horizon
        self.rule = rule or CurveRule()

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if trial.last_step is None:
            return False
        others = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
            if t.number != trial.number and t.intermediate_values
        ]
        finished = [_curve(t) for t in others if t.state == TrialState.COMPLETE]
        if len(finished) < self.rule.n_startup_trials:
            return False
        pick = max if study.direction == optuna.study.StudyDirection.MAXIMIZE else min
        best = pick(v for t in others for v in t.intermediate_values.values())
        horizon = self.horizon or max(len(c) for c in finished)
        direction = "maximize" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "minimize"
        return self.rule.should_prune(_curve(trial), horizon, Reference(direction, finished, best))
