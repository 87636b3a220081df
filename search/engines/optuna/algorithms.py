"""Optuna's samplers and pruners by leafsearch's names for them."""

from __future__ import annotations

import optuna

from search.engines.choices import check_options
from search.engines.optuna.curve import CurvePruner


def make_sampler(algorithm: str, seed: int) -> optuna.samplers.BaseSampler:
    """TPE (multi-objective too), random search, or NSGA-II (Deb et al. 2002; Optuna's
    multi-objective classic). TPE and NSGA-II learn a study's constraints from the values each
    trial records (`Trial.set_constraint`)."""
    check_options("optuna", algorithm=algorithm)
    return _SAMPLERS[algorithm](seed=seed)


_SAMPLERS = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "nsga2": optuna.samplers.NSGAIISampler,
}


def make_pruner(name: str, max_resource: int | None = None) -> optuna.pruners.BasePruner:
    """Optuna's pruner by leafsearch's name for it. Steps are epochs, 0-based and counted across
    training phases, so `min_resource=1` first compares trials after their second epoch.

    - `median`: the median rule once 3 trials finished, from the third epoch on (cautious).
    - `asha`: asynchronous successive halving (Li et al. 2020): after 2, 4, 10, 28... epochs only
      the best third of the trials that reached that rung go on. Needs dozens of trials.
    - `hyperband`: several successive-halving brackets, from aggressive to none (Li et al. 2018).
    - `curve`: stop a trial whose extrapolated learning curve cannot reach the best value so far
      (search.engines.curve_rule; `max_resource` is its horizon).
    - `none`: every trial trains until its own early stopping or the epoch cap.
    """
    check_options("optuna", pruner=name)
    return _PRUNERS[name](max_resource)


_PRUNERS = {
    "none": lambda max_resource: optuna.pruners.NopPruner(),
    "median": lambda max_resource: optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2),
    "asha": lambda max_resource: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
    "hyperband": lambda max_resource: optuna.pruners.HyperbandPruner(
        min_resource=1, max_resource=max_resource or "auto", reduction_factor=3
    ),
    "curve": lambda max_resource: CurvePruner(horizon=max_resource),
}
