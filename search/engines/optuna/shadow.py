"""Pruning in a multi-objective Optuna study, which Optuna refuses (`trial.report` raises when a
study has several objectives; optuna/optuna#3450 and its duplicates): the study's own pruner rule
applied to the metric's learning curves, in a single-objective in-memory study that mirrors the
real study's finished trials (their curves are kept in a user attribute, `curve`)."""

from __future__ import annotations

from collections.abc import Callable

import optuna
from optuna.trial import TrialState

CURVE = "curve"  # a multi-objective trial's metric by epoch: {"0": 0.41, "1": 0.47, ...}


class ShadowPruning:
    """One trial's pruning decisions, against the finished trials of the study so far."""

    def __init__(self, study: optuna.Study, direction: str, make_pruner: Callable[[], optuna.pruners.BasePruner]):
        shadow = optuna.create_study(
            study_name=study.study_name,
            direction=optuna.study.StudyDirection[direction.upper()],
            pruner=make_pruner(),
            sampler=optuna.samplers.RandomSampler(seed=0),
        )
        for finished in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
            curve = {int(epoch): float(value) for epoch, value in (finished.user_attrs.get(CURVE) or {}).items()}
            if finished.user_attrs.get("infeasible") or not curve:
                continue
            complete = finished.state == TrialState.COMPLETE and finished.values is not None
            shadow.add_trial(
                optuna.trial.create_trial(
                    state=finished.state, value=finished.values[0] if complete else None, intermediate_values=curve
                )
            )
        self.trial = shadow.ask()

    def should_prune(self, epoch: int, value: float) -> bool:
        self.trial.report(value, step=epoch)
        return self.trial.should_prune()
