"""The pruning rules leafsearch applies itself, by `--pruner` name (search/engines/pruning.py
has their one signature). The KerasTuner adapter applies the one its study names; Optuna studies
use Optuna's pruners, and ours where Optuna has none (engines/optuna/algorithms.py)."""

from __future__ import annotations

from search.engines.curve_rule import CurveRule
from search.engines.median_rule import MedianRule
from search.engines.pruning import NoPruning, PruningRule

RULES: dict[str, type[PruningRule]] = {"curve": CurveRule, "median": MedianRule, "none": NoPruning}


def pruning_rule(name: str) -> PruningRule:
    """The rule named `name`, with its default constants."""
    if name not in RULES:
        raise ValueError(f"A pruning rule must be one of {', '.join(RULES)}. Received: name={name!r}")
    return RULES[name]()
