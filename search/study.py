"""The study spec: what to optimise, under which bounds, and the default budget, declared next to
the space."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any

from search.records.costs import COLUMNS as COST_COLUMNS

DIRECTIONS = ("maximize", "minimize")
_BOUND = re.compile(r"^\s*([A-Za-z_]+)\s*<=\s*([0-9.eE+-]+)\s*$")


@dataclasses.dataclass(frozen=True)
class Study:
    """What a space file's `STUDY` holds.

    `pipeline` names the application's training pipeline (leafsearch: "cnn" or "efficientnet");
    `trials` is the default target of finished trials, `max_epochs` the default cap of epochs per
    training phase. Command-line flags override both.

    `objectives` adds objectives beside the metric: cost columns (`params`, `flops`, `infer_ms`,
    known once the model is built) with their directions, e.g. `{"infer_ms": "minimize"}`: the
    study is then multi-objective and its result a Pareto front. `constraints` are upper bounds on
    cost columns, e.g. `{"infer_ms": 10, "params": 5e6}`: a trial whose model breaks one ends
    before its first epoch.
    """

    pipeline: str = "cnn"
    metric: str = "val_accuracy"
    direction: str = "maximize"
    trials: int = 20
    max_epochs: int = 30
    objectives: Mapping[str, str] = dataclasses.field(default_factory=dict)
    constraints: Mapping[str, float] = dataclasses.field(default_factory=dict)

    @property
    def multi_objective(self) -> bool:
        return bool(self.objectives)

    @property
    def all_objectives(self) -> dict[str, str]:
        """Every objective, the metric first: {name: direction}."""
        return {self.metric: self.direction, **self.objectives}

    def problems(self, pipelines: set[str] | None = None, metrics: set[str] | None = None) -> list[str]:
        out = []
        if metrics is not None and self.metric not in metrics:
            out.append(f"STUDY metric must be one of {', '.join(sorted(metrics))}. Received: {self.metric!r}")
        if pipelines is not None and self.pipeline not in pipelines:
            out.append(f"STUDY pipeline must be one of {', '.join(sorted(pipelines))}. Received: {self.pipeline!r}")
        if self.direction not in DIRECTIONS:
            out.append(f"STUDY direction must be 'maximize' or 'minimize'. Received: {self.direction!r}")
        if not isinstance(self.metric, str) or not self.metric:
            out.append(f"STUDY metric must be a metric name such as 'val_accuracy'. Received: {self.metric!r}")
        for name in ("trials", "max_epochs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                out.append(f"STUDY {name} must be an integer >= 1. Received: {name}={value!r}")
        return out + objective_problems(self.objectives) + constraint_problems(self.constraints, self.metric)


def objective_problems(objectives: Any) -> list[str]:
    if not isinstance(objectives, Mapping):
        return [
            f"STUDY objectives must be a dict of cost column to direction, e.g. {{'infer_ms': 'minimize'}}. Received: {objectives!r}"
        ]
    out = []
    for name, direction in objectives.items():
        if name not in COST_COLUMNS:
            out.append(f"STUDY objectives: {name!r} is not a cost column; use one of {', '.join(COST_COLUMNS)}")
        if direction not in DIRECTIONS:
            out.append(
                f"STUDY objectives: the direction of {name} must be 'maximize' or 'minimize'. Received: {direction!r}"
            )
    return out


def constraint_problems(constraints: Any, metric: str) -> list[str]:
    if not isinstance(constraints, Mapping):
        return [
            f"STUDY constraints must be a dict of cost column to upper bound, e.g. {{'infer_ms': 10}}. Received: {constraints!r}"
        ]
    out = []
    for name, bound in constraints.items():
        if name == metric:
            out.append(
                f"STUDY constraints: {name} is the metric the study optimises; constraints bound cost columns "
                f"({', '.join(COST_COLUMNS)}), from above"
            )
        elif name not in COST_COLUMNS:
            out.append(f"STUDY constraints: {name!r} is not a cost column; use one of {', '.join(COST_COLUMNS)}")
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not math.isfinite(bound) or bound <= 0:
            out.append(
                f"STUDY constraints: the bound of {name} must be a number > 0 (an upper bound). Received: {bound!r}"
            )
    return out


def parse_objective(text: str) -> tuple[str, str]:
    """`infer_ms:minimize` (the direction defaults to minimize: costs are minimised)."""
    name, _, direction = text.partition(":")
    return name.strip(), (direction.strip() or "minimize")


def parse_constraint(text: str) -> tuple[str, float]:
    """`infer_ms<=10` -> ("infer_ms", 10.0); anything else is a ValueError saying the form."""
    match = _BOUND.match(text)
    if match is None:
        raise ValueError(f"expected NAME<=BOUND, e.g. infer_ms<=10 or params<=5e6. Received: {text!r}")
    return match.group(1), float(match.group(2))


def violated(constraints: Mapping[str, float], costs: Mapping[str, Any]) -> list[str]:
    """The bounds `costs` break, as 'infer_ms 14.2 > 10'; a cost not measured breaks nothing."""
    return [
        f"{name} {costs[name]:.4g} > {bound:.4g}"
        for name, bound in constraints.items()
        if isinstance(costs.get(name), (int, float)) and costs[name] > bound
    ]
