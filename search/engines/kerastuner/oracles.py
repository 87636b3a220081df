"""KerasTuner's oracles as leafsearch uses them: the space's defaults as the first trial, no
retries, no failure limit of their own (the study loop counts failures), and Hyperband's budgets."""

from __future__ import annotations

import sys
from typing import Any

import keras_tuner

from search.engines.choices import ALGORITHMS
from search.errors import UsageError

HYPERBAND_FACTOR = 3


class _BaselineFirst:
    """The space's defaults are the first trial. `_random_values` is where each of the three
    oracles draws a new trial's values (KerasTuner 1.4 has no public hook for a first trial)."""

    baseline: dict[str, Any] | None = None

    def _random_values(self):
        if self.baseline is not None and not self.trials:
            return dict(self.baseline)
        return super()._random_values()


class _RandomSearchOracle(_BaselineFirst, keras_tuner.oracles.RandomSearchOracle):
    pass


class _BayesianOptimizationOracle(_BaselineFirst, keras_tuner.oracles.BayesianOptimizationOracle):
    pass


class _HyperbandOracle(_BaselineFirst, keras_tuner.oracles.HyperbandOracle):
    pass


def make_oracle(algorithm: str, metric: str, direction: str, hp: keras_tuner.HyperParameters, seed: int,
                max_epochs: int) -> keras_tuner.Oracle:
    common = dict(
        objective=keras_tuner.Objective(metric, "max" if direction == "maximize" else "min"),
        hyperparameters=hp, allow_new_entries=False, max_retries_per_trial=0,
        seed=seed + 1,  # KerasTuner treats seed 0 as "no seed" (`seed or random.randint(...)`)
        max_consecutive_failed_trials=sys.maxsize,  # the study loop counts failures in a row itself
    )
    if algorithm == "random":
        return _RandomSearchOracle(**common)
    if algorithm == "bayesian":
        return _BayesianOptimizationOracle(**common)
    if algorithm == "hyperband":  # no fixed number of iterations: the target of trials ends the search
        return _HyperbandOracle(max_epochs=max_epochs, factor=HYPERBAND_FACTOR, hyperband_iterations=None, **common)
    raise UsageError(f"--algorithm {algorithm}: unknown for the kerastuner backend; use one of {', '.join(ALGORITHMS['kerastuner'])}")


def hyperband_budget(hp: keras_tuner.HyperParameters) -> dict[str, Any]:
    """The epoch budget Hyperband gave a trial (empty for the other oracles)."""
    values = hp.values
    if "tuner/epochs" not in values:
        return {}
    extends = values.get("tuner/trial_id")
    return {"epoch_budget": int(values["tuner/epochs"]), "initial_epoch": int(values.get("tuner/initial_epoch", 0)),
            "extends_trial": None if extends is None else int(extends), "bracket": values.get("tuner/bracket"),
            "round": values.get("tuner/round")}
