"""The report's PNG plots: optimization history, hyperparameter importance, parallel
coordinates, one slice plot per parameter, and the learning curves of the best trials.

Importance, parallel coordinates and slices are Optuna's own matplotlib plots, drawn over an
in-memory Optuna study rebuilt from the leaderboard, so a KerasTuner study gets them too. A plot
that cannot say anything (too few finished trials, nothing searched) is skipped with a note.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from search.records import leaderboard

SIZE = (9.0, 5.5)  # inches; at DPI every PNG is 900 x 550 pixels
DPI = 100
TOP_CURVES = 5  # learning curves drawn: the best trials'


@dataclasses.dataclass
class Plots:
    written: list[Path] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)  # "<plot>: why", for the user


def write_plots(
    frame: pd.DataFrame,
    metric: str,
    direction: str,
    distributions: Mapping[str, Any] | None,
    histories: Mapping[int, Sequence[Mapping[str, float]]],
    folder: Path,
    objectives: Mapping[str, str] | None = None,
) -> Plots:
    """Every plot into `folder`. `distributions` are the searched parameters' Optuna
    distributions (None: inferred from the leaderboard's values); `histories` the per-epoch
    metrics by trial number, for the learning curves; `objectives` what the Pareto front is
    drawn over (the metric first, then a cost column)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    with plt.style.context("ggplot"):  # Optuna's plots' style, for all of them; restored afterwards
        out = _write_all(frame, metric, direction, distributions, histories, folder)
        if objectives and len(objectives) > 1:
            _save(out, folder / "pareto_front.png", lambda: pareto_front(frame, objectives))
        return out


def _write_all(frame, metric, direction, distributions, histories, folder: Path) -> Plots:
    import optuna

    out = Plots()
    if distributions is None:
        distributions = infer_distributions(frame)
    study = study_from_frame(frame, metric, direction, distributions)
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    _save(out, folder / "optimization_history.png", lambda: optimization_history(frame, metric, direction))
    vm = optuna.visualization.matplotlib
    searched = sorted({name for trial in finished for name in trial.params})
    if len(finished) < 2:
        out.skipped.append(
            f"importance, parallel coordinates, slices: need 2 finished trials, the study has {len(finished)}"
        )
    elif not searched:
        out.skipped.append("importance, parallel coordinates, slices: no parameter is searched")
    else:
        _save(out, folder / "param_importances.png", lambda: vm.plot_param_importances(study, target_name=metric))
        _save(out, folder / "parallel_coordinate.png", lambda: vm.plot_parallel_coordinate(study, target_name=metric))
        for name in searched:
            _save(
                out,
                folder / f"slice_{_safe(name)}.png",
                lambda name=name: vm.plot_slice(study, params=[name], target_name=metric),
            )
    _save(out, folder / "learning_curves.png", lambda: learning_curves(frame, metric, direction, histories))
    return out


def _save(out: Plots, path: Path, draw) -> None:
    """Draw one plot (a function returning its Axes) and write it at the common size, or note why not."""
    import matplotlib.pyplot as plt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's "experimental" warnings, matplotlib's layout ones
        try:
            axes = draw()
        except (ValueError, RuntimeError) as exc:
            plt.close("all")
            out.skipped.append(f"{path.stem}: {exc}")
            return
        figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
        figure.set_size_inches(*SIZE)
        figure.tight_layout()
        figure.savefig(path, dpi=DPI)
    plt.close(figure)
    out.written.append(path)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


# -- the trials, as Optuna sees them
def study_from_frame(frame: pd.DataFrame, metric: str, direction: str, distributions: Mapping[str, Any]):
    """An in-memory Optuna study with one trial per finished leaderboard row (complete with its
    value; pruned and failed without), parameters as in the row where the distribution holds them."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    maximize = direction == "maximize"  # else minimize, as optimization_history reads it
    study = optuna.create_study(
        direction=optuna.study.StudyDirection.MAXIMIZE if maximize else optuna.study.StudyDirection.MINIMIZE
    )
    states = {
        "COMPLETE": optuna.trial.TrialState.COMPLETE,
        "PRUNED": optuna.trial.TrialState.PRUNED,
        "FAIL": optuna.trial.TrialState.FAIL,
    }
    for row in frame.to_dict(orient="records"):
        state = states.get(row["state"])
        value = pd.to_numeric(row.get(metric), errors="coerce")
        if state is None or (state == optuna.trial.TrialState.COMPLETE and pd.isna(value)):
            continue
        params, dists = {}, {}
        for name, distribution in distributions.items():
            coerced = _coerce(row.get(leaderboard.PARAM_PREFIX + name), distribution)
            if coerced is not _MISSING:
                params[name], dists[name] = coerced, distribution
        study.add_trial(
            optuna.trial.create_trial(
                state=state,
                value=float(value) if state == optuna.trial.TrialState.COMPLETE else None,
                params=params,
                distributions=dists,
                user_attrs={"trial": int(row["trial"])},
            )
        )
    return study


_MISSING = object()


def _coerce(value: Any, distribution) -> Any:
    """A leaderboard value (read back from CSV: 16.0 for 16, "True" for True) as the
    distribution's own value, or _MISSING when blank or outside it."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return _MISSING
    if isinstance(distribution, CategoricalDistribution):
        for choice in distribution.choices:
            if choice == value or str(choice) == str(value):
                return choice
        return _MISSING
    try:
        number = int(round(float(value))) if isinstance(distribution, IntDistribution) else float(value)
        inside = distribution._contains(distribution.to_internal_repr(number))  # noqa: SLF001 - Optuna's own check
    except (TypeError, ValueError):
        return _MISSING
    return number if inside else _MISSING


def infer_distributions(frame: pd.DataFrame) -> dict[str, Any]:
    """Distributions read off the leaderboard when the space is unknown: a range over a numeric
    parameter's values, the set of values otherwise; parameters with one value are not searched."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for column in frame.columns:
        if not column.startswith(leaderboard.PARAM_PREFIX):
            continue
        values = frame[column].dropna()
        if values.nunique() < 2:
            continue
        name = column.removeprefix(leaderboard.PARAM_PREFIX)
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.notna().all() and values.map(lambda v: not isinstance(v, bool)).all():
            if (numeric == numeric.round()).all():
                out[name] = IntDistribution(int(numeric.min()), int(numeric.max()))
            else:
                out[name] = FloatDistribution(float(numeric.min()), float(numeric.max()))
        else:
            out[name] = CategoricalDistribution(sorted(values.astype(str).unique()))
    return out


# -- plots drawn here (they need the leaderboard's own trial numbers and histories)
def optimization_history(frame: pd.DataFrame, metric: str, direction: str):
    """Each finished trial's value by its leaderboard number, pruned ones hollow (their best
    value before they were stopped), and the running best of the complete ones."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    values = pd.to_numeric(frame[metric], errors="coerce")
    rows = frame.assign(_value=values).dropna(subset=["_value"]).sort_values("trial")
    complete = rows[rows["state"] == "COMPLETE"]
    if complete.empty:
        raise ValueError("no complete trial yet")
    best = complete["_value"].cummax() if direction == "maximize" else complete["_value"].cummin()
    figure, axes = plt.subplots()
    axes.scatter(complete["trial"], complete["_value"], color="tab:blue", label=metric, zorder=3)
    pruned = rows[rows["state"] == "PRUNED"]
    if len(pruned):
        axes.scatter(
            pruned["trial"], pruned["_value"], facecolors="none", edgecolors="tab:gray", label="pruned", zorder=2
        )
    axes.step(complete["trial"], best, where="post", color="tab:red", label="best so far")
    axes.set(title="Optimization history", xlabel="trial", ylabel=metric)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend()
    axes.grid(alpha=0.3)
    return axes


def learning_curves(
    frame: pd.DataFrame, metric: str, direction: str, histories: Mapping[int, Sequence[Mapping[str, float]]]
):
    """The metric per epoch of the TOP_CURVES best trials that have a history."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    ranked = leaderboard.sort_best_first(frame, metric, direction)
    chosen = [int(n) for n in ranked["trial"] if any(metric in epoch for epoch in histories.get(int(n), ()))][
        :TOP_CURVES
    ]
    if not chosen:
        raise ValueError(f"no trial has a per-epoch history of {metric}")
    figure, axes = plt.subplots()
    for number in chosen:
        epochs = [row for row in histories[number] if metric in row]
        axes.plot(
            [int(row.get("epoch", i)) + 1 for i, row in enumerate(epochs)],
            [row[metric] for row in epochs],
            marker="o",
            label=f"trial {number}",
        )
    axes.set(title=f"Learning curves of the {len(chosen)} best trials", xlabel="epoch", ylabel=metric)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend()
    axes.grid(alpha=0.3)
    return axes


def pareto_front(frame: pd.DataFrame, objectives: Mapping[str, str]):
    """The metric against the first cost objective: every complete trial, the front joined up."""
    import matplotlib.pyplot as plt

    (metric, _), (cost, _) = list(objectives.items())[:2]
    if cost not in frame or metric not in frame:
        raise ValueError(f"the leaderboard has no {cost} column")
    done = (
        frame[(frame["state"] == "COMPLETE")]
        .assign(
            x=lambda f: pd.to_numeric(f[cost], errors="coerce"), y=lambda f: pd.to_numeric(f[metric], errors="coerce")
        )
        .dropna(subset=["x", "y"])
    )
    if done.empty:
        raise ValueError(f"no complete trial has both {metric} and {cost}")
    front = done[leaderboard.pareto(done, objectives)].sort_values("x")
    figure, axes = plt.subplots()
    axes.scatter(done["x"], done["y"], color="0.6", label="complete trials")
    axes.plot(front["x"], front["y"], marker="o", color="C0", label="Pareto front")
    for trial, x, y in zip(front["trial"], front["x"], front["y"]):
        axes.annotate(f"{int(trial)}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    axes.set(title=f"{metric} against {cost}: the Pareto front", xlabel=cost, ylabel=metric)
    axes.legend()
    return axes
