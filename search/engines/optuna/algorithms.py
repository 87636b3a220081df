"""Optuna's samplers and pruners by leafsearch's names for them."""

from __future__ import annotations

import optuna

from search.engines.choices import ALGORITHMS, PRUNERS
from search.engines.optuna.curve import CurvePruner
from search.errors import UsageError


def make_sampler(algorithm: str, seed: int) -> optuna.samplers.BaseSampler:
    """TPE (multi-objective too), random search, or NSGA-II (Deb et al. 2002; Optuna's
    multi-objective classic). TPE and NSGA-II learn a study's constraints from the values each
    trial records (`Trial.set_constraint`)."""
    if algorithm == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if algorithm == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if algorithm == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    raise UsageError(f"--algorithm {algorithm}: unknown for the optuna backend; use one of {', '.join(ALGORITHMS['optuna'])}")


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
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_resource or "auto", reduction_factor=3)
    if name == "curve":
        return CurvePruner(horizon=max_resource)
    raise UsageError(f"--pruner {name}: unknown for the optuna backend; use one of {', '.join(PRUNERS['optuna'])}")
