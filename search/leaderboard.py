"""The leaderboard: one pandas row per trial, the same columns whichever engine ran it."""

from __future__ import annotations

import html
import io
import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from search import costs
from search.files import write_text_atomic

PARAM_PREFIX = "param_"
FORMATS = ("table", "csv", "markdown", "json", "html")


def base_columns(metric: str) -> list[str]:
    """The fixed columns, in order; `param_<name>` columns follow. The cost columns (`params`,
    `flops`, `infer_ms`, see search/costs.py) come from a row's `costs` mapping."""
    metric_cols = [metric] if metric == "val_loss" else [metric, "val_loss"]
    return ["trial", "state", *metric_cols, "best_epoch", "epochs", "duration_s", *costs.COLUMNS, "backend", "algorithm",
            "resumed_from", "error"]


def build(rows: Iterable[Mapping[str, Any]], metric: str, param_names: Iterable[str]) -> pd.DataFrame:
    """A DataFrame with the schema's columns in order (missing values are NaN / empty)."""
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
    columns = base_columns(metric) + param_cols
    frame = pd.DataFrame.from_records(records, columns=columns)
    for column in ("trial", "best_epoch", "epochs", "resumed_from", "params", "flops"):  # stay integers even when some rows are blank
        frame[column] = pd.to_numeric(frame[column]).astype("Int64")
    return frame.sort_values("trial", kind="stable").reset_index(drop=True)


def sort_best_first(frame: pd.DataFrame, metric: str, direction: str) -> pd.DataFrame:
    """Finished trials by metric (best first), then pruned, then failed and running ones."""
    if frame.empty:
        return frame
    rank = {"COMPLETE": 0, "PRUNED": 1, "RUNNING": 2, "FAIL": 3}
    ordered = frame.assign(
        _rank=frame["state"].map(rank).fillna(4),
        _value=pd.to_numeric(frame[metric], errors="coerce") * (-1 if direction == "maximize" else 1),
    )
    ordered = ordered.sort_values(["_rank", "_value", "trial"], na_position="last", kind="stable")
    return ordered.drop(columns=["_rank", "_value"]).reset_index(drop=True)


def write(frame: pd.DataFrame, path: Path) -> None:
    """Rewrite the CSV atomically, so a reader never sees half a file."""
    write_text_atomic(path, frame.to_csv(index=False))


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path)


def render(frame: pd.DataFrame, fmt: str) -> str:
    """The leaderboard as text in one of FORMATS ("table" is plain fixed-width text, "html" a
    self-contained page; `leafsearch report` adds the study's header to both)."""
    if fmt == "csv":
        return frame.to_csv(index=False)
    if fmt == "json":
        return json.dumps([_jsonable(row) for row in frame.to_dict(orient="records")], indent=2) + "\n"
    if fmt == "markdown":
        return _markdown(frame)
    if fmt == "table":
        buffer = io.StringIO()
        buffer.write(frame.to_string(index=False, na_rep="", float_format=_short_float))
        return buffer.getvalue() + "\n"
    if fmt == "html":
        from search import report_html

        return report_html.document("Leaderboard", [], [("Leaderboard", frame)])
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def _jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        if isinstance(value, float) and math.isnan(value):
            value = None
        elif hasattr(value, "item"):  # numpy scalar
            value = value.item()
        out[key] = value
    return out


def _short_float(value: float) -> str:
    return f"{value:.4g}"


def _cell(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = _short_float(value) if isinstance(value, float) else str(value)
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", " ")  # a value is never markup


def _markdown(frame: pd.DataFrame) -> str:
    lines = [
        "| " + " | ".join(frame.columns) + " |",
        "| " + " | ".join("---" for _ in frame.columns) + " |",
    ]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(value) for value in row) + " |")
    return "\n".join(lines) + "\n"
