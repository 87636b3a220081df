"""The one place that maps the space DSL onto Optuna's `suggest_*` API."""

from __future__ import annotations

from typing import Any

import optuna

from search.space import Bool, Choice, Float, Int, Param, Space


def suggest(trial: optuna.Trial, name: str, param: Param) -> Any:
    if isinstance(param, Float):
        return trial.suggest_float(name, param.low, param.high, log=param.log, step=param.step)
    if isinstance(param, Int):
        return trial.suggest_int(name, param.low, param.high, step=param.step, log=param.log)
    if isinstance(param, Choice):
        return trial.suggest_categorical(name, list(param.values))
    if isinstance(param, Bool):
        return trial.suggest_categorical(name, [False, True])
    raise TypeError(f"no Optuna mapping for {type(param).__name__} (parameter `{name}`)")


def distributions(space: Space) -> dict[str, optuna.distributions.BaseDistribution]:
    """The searched parameters as Optuna distributions (fixed ones are not searched), to rebuild
    trials Optuna did not run itself (a KerasTuner study's leaderboard, for Optuna's plots)."""
    out: dict[str, optuna.distributions.BaseDistribution] = {}
    for name, param in space.items():
        if isinstance(param, Float):
            out[name] = optuna.distributions.FloatDistribution(param.low, param.high, log=param.log, step=param.step)
        elif isinstance(param, Int):
            out[name] = optuna.distributions.IntDistribution(param.low, param.high, log=param.log, step=param.step)
        elif isinstance(param, Choice):
            out[name] = optuna.distributions.CategoricalDistribution(list(param.values))
        elif isinstance(param, Bool):
            out[name] = optuna.distributions.CategoricalDistribution([False, True])
    return out


def sample(space: Space, trial: optuna.Trial) -> dict[str, Any]:
    """The trial's parameter values: suggested where searched, fixed values as given."""
    return space.sample(lambda name, param: suggest(trial, name, param))
