"""What `leafsearch report` shows besides the rows: the study's header, the choice and order of
rows (--state, --sort), stored test-set evaluations, and the text formats that carry a header.

CSV and JSON stay pure data (they are read back by programs); markdown, HTML and the plain table
start with the header, so a report file says which study it is about.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from search.errors import UsageError
from search.records import leaderboard
from search.report import formats
from search.report.display import duration_text, format_value

STATES = ("complete", "pruned", "infeasible", "fail", "running", "all")
EVALUATION_COLUMNS = ["trial", "data", "accuracy", "subsets", "images", "evaluated_at"]
Header = list[tuple[str, str]]  # (label, text), in display order


# -- which rows, in which order
def filter_state(frame: pd.DataFrame, state: str) -> pd.DataFrame:
    """Rows of one state (`all` keeps every row)."""
    if state == "all":
        return frame
    return frame[frame["state"] == state.upper()].reset_index(drop=True)


def sort_by(frame: pd.DataFrame, spec: str, metric: str, direction: str) -> pd.DataFrame:
    """Rows ordered by `spec` = COLUMN or COLUMN:asc|desc. Without an order the metric follows
    the study's direction, accuracies go high first, and everything else (losses, times,
    costs, trial numbers, parameters) goes low first. Blanks go last."""
    name, _, order = spec.partition(":")
    column = resolve_column(frame, name)
    if order not in ("", "asc", "desc"):
        raise UsageError(f"--sort {spec}: the order must be asc or desc, e.g. --sort {column}:desc")
    if not order:
        higher_first = direction == "maximize" if column == metric else column.endswith("accuracy")
        order = "desc" if higher_first else "asc"
    values = frame[column]
    numeric = pd.to_numeric(values, errors="coerce")
    key = numeric if numeric.notna().sum() == values.notna().sum() else values.astype("string")
    ordered = frame.assign(_key=key).sort_values(
        ["_key", "trial"], ascending=[order == "asc", True], na_position="last", kind="stable"
    )
    return ordered.drop(columns="_key").reset_index(drop=True)


def resolve_column(frame: pd.DataFrame, name: str) -> str:
    """A leaderboard column by its name, or a parameter by its bare name (`learning_rate`)."""
    for candidate in (name, leaderboard.PARAM_PREFIX + name):
        if candidate in frame.columns:
            return candidate
    raise UsageError(f"--sort {name}: no such column; use one of {', '.join(frame.columns)}")


# -- the header
def header(frame: pd.DataFrame, meta: Mapping[str, Any]) -> Header:
    """The study at a glance, under its name: engine, storage, counts by state, best trial, time
    spent. `meta` holds backend, algorithm, pruner (studies before it was recorded have none),
    storage (already masked), metric and direction."""
    metric, direction = meta["metric"], meta["direction"]
    pruner = meta.get("pruner")
    pruning = "" if not pruner else ", no pruning" if pruner == "none" else f", {pruner} pruning"
    lines: Header = [
        ("Engine", f"{meta.get('backend') or '?'}/{meta.get('algorithm') or '?'}{pruning}"),
        ("Storage", str(meta.get("storage") or "")),
        ("Metric", f"{metric} ({direction})"),
        ("Trials", state_counts(frame)),
    ]
    if meta.get("constraints"):
        lines.insert(
            3, ("Constraints", ", ".join(f"{name} <= {bound:g}" for name, bound in meta["constraints"].items()))
        )
    if meta.get("objectives"):
        lines.insert(
            3,
            (
                "Objectives",
                ", ".join(f"{name} ({way})" for name, way in {metric: direction, **meta["objectives"]}.items()),
            ),
        )
    warm = meta.get("warm_start")
    if warm:
        numbers = ", ".join(str(n) for n in warm.get("trials", []))
        lines.append(("Warm start", f"from study {warm.get('study')} (its trials {numbers}, run first)"))
    best = leaderboard.best_trial(frame, metric, direction)
    if best is not None:
        lines.append(("Best", f"trial {best['trial']}: {metric}={format_value(float(best[metric]))}"))
        lines.append(
            ("Best parameters", " ".join(f"{k}={format_value(v)}" for k, v in leaderboard.params_of(best).items()))
        )
    durations = pd.to_numeric(frame["duration_s"], errors="coerce").dropna() if "duration_s" in frame else pd.Series([])
    if len(durations):
        lines.append(
            (
                "Trial time",
                f"{duration_text(durations.sum())} in total, "
                f"{duration_text(durations.mean())} a trial on average ({len(durations)} timed)",
            )
        )
    return lines


def state_counts(frame: pd.DataFrame) -> str:
    """'3 complete, 1 pruned, 1 fail', in the leaderboard's state order."""
    counts = frame["state"].value_counts() if len(frame) else pd.Series(dtype=int)
    order = ["COMPLETE", "PRUNED", "FAIL", "RUNNING"] + sorted(
        set(counts.index) - {"COMPLETE", "PRUNED", "FAIL", "RUNNING"}
    )
    text = ", ".join(f"{counts[state]} {str(state).lower()}" for state in order if state in counts)
    return f"{len(frame)} ({text})" if text else "none yet"


# -- stored test-set evaluations (written by `leafsearch evaluate`)
def load_evaluations(folder: Path) -> pd.DataFrame:
    """One row per stored evaluation, `evaluations/*.json` (one per trial and test folder):
    trial, data, accuracy, subsets (each subset's accuracy, for a test folder in subsets), images,
    evaluated_at. Unreadable files are left out; empty when there are none."""
    records = []
    for path in sorted(Path(folder).glob("*.json")) if Path(folder).is_dir() else []:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict):
            records.append({**record, "subsets": subsets_text(record.get("subsets"))})
    frame = pd.DataFrame.from_records(records)
    for column in EVALUATION_COLUMNS + ["confusion_png"]:
        if column not in frame:
            frame[column] = pd.Series(dtype=object)
    frame = frame[EVALUATION_COLUMNS + ["confusion_png"]]
    if not frame.empty:
        frame["trial"] = pd.to_numeric(frame["trial"], errors="coerce").astype("Int64")
        frame = frame.sort_values(["trial", "data"], kind="stable").reset_index(drop=True)
    return frame


def subsets_text(subsets: Mapping[str, Any] | None) -> str:
    """'clean 0.8125 (112), wild 0.1071 (112)': each subset's accuracy and images."""
    return ", ".join(
        f"{name} {format_value(float(scored['accuracy']))} ({scored['images']})"
        for name, scored in (subsets or {}).items()
        if isinstance(scored, dict) and "accuracy" in scored
    )


# -- text formats that carry the header
def header_markdown(lines: Header) -> str:
    return "\n".join(f"- **{label}:** {html.escape(text, quote=False)}" for label, text in lines) + "\n"


def header_text(title: str, lines: Header) -> str:
    width = max(len(label) for label, _ in lines)
    return "\n".join([title, *(f"{label + ':':<{width + 1}} {text}" for label, text in lines)]) + "\n"


def compose(fmt: str, title: str, frame: pd.DataFrame, lines: Header, evaluations: pd.DataFrame) -> str:
    """The report as text: csv and json are the rows alone; markdown and the plain table add the
    header and the evaluations (HTML is search.report.html's)."""
    if fmt in ("csv", "json"):
        return formats.render(frame, fmt)
    if fmt not in ("markdown", "table"):
        raise ValueError(f"compose: unknown format {fmt!r}")
    shown = evaluations[EVALUATION_COLUMNS] if len(evaluations) else evaluations
    if fmt == "markdown":
        parts = [
            f"# {html.escape(title, quote=False)}\n",
            header_markdown(lines),
            "## Leaderboard\n",
            formats.render(frame, "markdown"),
        ]
        if len(shown):
            parts += ["## Test-set evaluations\n", formats.render(shown, "markdown")]
        return "\n".join(parts)
    parts = [header_text(title, lines), formats.render(frame, "table")]
    if len(shown):
        parts += ["Test-set evaluations:\n" + formats.render(shown, "table")]
    return "\n".join(parts)


# -- one line per study (`leafsearch studies`)
def study_summary(name: str, frame: pd.DataFrame, meta: Mapping[str, Any], last_activity) -> dict[str, Any]:
    """A study's row in the list of studies: engine, trials by state, best value, last activity."""
    metric, direction = meta.get("metric", "val_accuracy"), meta.get("direction", "maximize")
    counts = frame["state"].value_counts() if len(frame) else pd.Series(dtype=int)
    best = leaderboard.best_trial(frame, metric, direction) if metric in frame else None
    return {
        "study": name,
        "engine": f"{meta.get('backend') or '?'}/{meta.get('algorithm') or '?'}",
        "trials": len(frame),
        **{state.lower(): int(counts.get(state, 0)) for state in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")},
        "best": f"{metric}={format_value(float(best[metric]))} (trial {best['trial']})" if best is not None else "",
        "last activity": last_activity.strftime("%Y-%m-%d %H:%M") if last_activity else "",
    }
