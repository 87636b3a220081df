"""The leaderboard: one pandas row per trial, the same columns whichever engine ran it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from search.records import costs
from search.records.files import write_text_atomic
from search.records.states import TrialState

PARAM_PREFIX = "param_"


def base_columns(metric: str) -> list[str]:
    """The fixed columns, in order; `param_<name>` columns follow. The cost columns (`params`,
    `flops`, `infer_ms`, see search/costs.py) come from a row's `costs` mapping."""
    metric_cols = [metric] if metric == "val_loss" else [metric, "val_loss"]
    return [
        "trial",
        "state",
        *metric_cols,
        "best_epoch",
        "epochs",
        "duration_s",
        *costs.COLUMNS,
        *costs.TRAINING,
        "backend",
        "algorithm",
        "resumed_from",
        "error",
    ]


def build(
    rows: Iterable[Mapping[str, Any]],
    metric: str,
    param_names: Iterable[str],
    objectives: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """A DataFrame with the schema's columns in order (missing values are NaN / empty). A
    multi-objective study (`objectives`: every objective and its direction, the metric first)
    has a `pareto` column after `error`: whether the trial is on the front."""
    param_cols = [PARAM_PREFIX + name for name in param_names]
    records = []
    for row in rows:
        record = {key: value for key, value in row.items() if key not in ("params", "costs")}
        record.update(costs.clean(row.get("costs")))
        for name, value in (row.get("params") or {}).items():
            record[PARAM_PREFIX + name] = value
            if PARAM_PREFIX + name not in param_cols:
                param_cols.append(PARAM_PREFIX + name)
        records.append(record)
    front = objectives if objectives is not None and len(objectives) > 1 else None  # what the front is over
    columns = base_columns(metric) + (["pareto"] if front is not None else []) + param_cols
    frame = pd.DataFrame.from_records(records, columns=columns)
    for column in (
        "trial",
        "best_epoch",
        "epochs",
        "resumed_from",
        "params",
        "flops",
        "cached_epochs",
    ):  # stay integers even when some rows are blank
        frame[column] = pd.to_numeric(frame[column]).astype("Int64")
    if front is not None:
        frame["pareto"] = pareto(frame, front)
    return frame.sort_values("trial", kind="stable").reset_index(drop=True)


def pareto(frame: pd.DataFrame, objectives: Mapping[str, str]) -> pd.Series:
    """Whether each row is on the Pareto front of `objectives` ({column: direction}): a COMPLETE
    trial with every objective measured that no other such trial dominates (at least as good in
    every objective, better in one). Equal trials are all on the front."""
    signs = {name: (-1.0 if direction == "maximize" else 1.0) for name, direction in objectives.items()}
    values = pd.DataFrame(
        {name: pd.to_numeric(frame[name], errors="coerce") * sign for name, sign in signs.items()}, index=frame.index
    )
    eligible = (frame["state"] == TrialState.COMPLETE) & values.notna().all(axis=1)
    points = values[eligible].to_numpy(dtype=float)
    on_front = pd.Series(False, index=frame.index)
    for index, point in zip(values.index[eligible], points):
        dominated = ((points <= point).all(axis=1) & (points < point).any(axis=1)).any()
        on_front[index] = not dominated
    return on_front


def sort_best_first(frame: pd.DataFrame, metric: str, direction: str) -> pd.DataFrame:
    """Finished trials by metric (best first), then pruned, then failed and running ones."""
    if frame.empty:
        return frame
    rank = {
        TrialState.COMPLETE: 0,
        TrialState.PRUNED: 1,
        TrialState.INFEASIBLE: 2,
        TrialState.RUNNING: 3,
        TrialState.FAIL: 4,
    }
    ordered = frame.assign(
        _rank=frame["state"].map(rank).fillna(5),
        _value=pd.to_numeric(frame[metric], errors="coerce") * (-1 if direction == "maximize" else 1),
    )
    ordered = ordered.sort_values(["_rank", "_value", "trial"], na_position="last", kind="stable")
    return ordered.drop(columns=["_rank", "_value"]).reset_index(drop=True)


def write(frame: pd.DataFrame, path: Path) -> None:
    """Rewrite the CSV atomically, so a reader never sees half a file."""
    write_text_atomic(path, frame.to_csv(index=False))


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path)


def best_trial(frame: pd.DataFrame, metric: str, direction: str) -> pd.Series | None:
    """The best COMPLETE trial's row (ties: the lowest number), or None before any completed: the
    one rule that the run's summary, the report's header and `evaluate`/`export` all use."""
    done = frame[(frame["state"] == TrialState.COMPLETE) & pd.to_numeric(frame[metric], errors="coerce").notna()]
    if done.empty:
        return None
    return sort_best_first(done, metric, direction).iloc[0]


def row(
    number: int,
    state: TrialState,
    value: float | None,
    summary: Mapping[str, Any],
    *,
    metric: str,
    duration_s: float | None,
    backend: str,
    algorithm: str,
    resumed_from: int | None,
    error: str,
    params: Mapping[str, Any],
    costs: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """One trial's leaderboard row, the same whichever engine ran it. `value` is the engine's
    score of a complete trial; other trials show their best epoch's metric (`summary`)."""
    return {
        "trial": number,
        "state": state,
        metric: summary.get(metric) if value is None else value,
        "val_loss": summary.get("val_loss"),
        "best_epoch": summary.get("best_epoch"),
        "epochs": summary.get("epochs"),
        "duration_s": None if duration_s is None else round(duration_s, 2),
        "backend": backend,
        "algorithm": algorithm,
        "resumed_from": resumed_from,
        "error": error or "",
        "params": dict(params),
        "costs": costs,
    }


def params_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row's parameters by bare name, inactive (blank) ones left out."""
    return {
        column.removeprefix(PARAM_PREFIX): value
        for column, value in row.items()
        if column.startswith(PARAM_PREFIX) and not pd.isna(value)
    }
