"""`--warm-start STUDY`: a new study begins from what an earlier one learned.

The earlier study is read the way `leafsearch report` reads it (its leaderboard, from the results
folder or an Optuna storage); its best complete trials are projected onto the new space
(`Space.project`): a value the new space can take is kept, any other parameter takes the new
space's default. The loop queues them first when the study is created, never on resume.
Nothing here prints: the note is returned for the command line to show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from search.errors import UsageError
from search.options import WarmStart
from search.records import leaderboard
from search.report.studies import load_study_rows
from search.space import Space
from search.urls import mask_url

MOST = 5  # never more than this many earlier trials: the rest of the budget is the new search's


def how_many(target: int) -> int:
    """How many earlier trials to run first: a quarter of the new target, at least 1, at most 5,
    so that most of the budget still goes to the new space's own search."""
    return max(1, min(MOST, target // 4))


def study_exists(results: Path, name: str, storage: str | None) -> bool:
    """Whether the study `name` is already there (then a warm start has nothing to do)."""
    if storage is None:
        folder = results / name
        return (folder / "study.json").is_file() or (folder / "leaderboard.csv").is_file()
    return name in _storage_studies(results, storage)


def _storage_studies(results: Path, storage: str) -> list[str]:
    import optuna

    from search.engines.optuna.storage import make_storage

    return [
        s.study_name for s in optuna.get_all_study_summaries(make_storage(results, storage), include_best_trial=False)
    ]


def read_best(results: Path, source: str, storage: str | None, count: int) -> list[tuple[int, dict[str, Any]]]:
    """The earlier study's `count` best COMPLETE trials by its own metric and direction, best first:
    (trial number, parameters by bare name). One UsageError when there is no such study or no
    complete trial in it."""
    where = f"the storage {mask_url(storage)}" if storage else f"{results}/"
    listing = "leafsearch studies" + (
        " --storage URL" if storage else "" if results == Path("results") else f" --results {results}"
    )
    known = _storage_studies(results, storage) if storage else None
    if (known is not None and source not in known) or (
        known is None and not (results / source / "leaderboard.csv").is_file()
    ):
        raise UsageError(f"--warm-start: no study {source!r} in {where} ({listing} lists them)")
    frame, meta = load_study_rows(results, source, storage)
    metric = meta["metric"]
    done = (
        frame[(frame["state"] == "COMPLETE") & pd.to_numeric(frame[metric], errors="coerce").notna()]
        if metric in frame
        else frame.iloc[0:0]
    )
    if done.empty:
        raise UsageError(
            f"--warm-start: study {source!r} has no complete trial yet; run it first, or start without --warm-start"
        )
    best = leaderboard.sort_best_first(done, metric, meta["direction"]).head(count)
    return [(int(row["trial"]), leaderboard.params_of(row)) for _, row in best.iterrows()]


def project_trials(
    space: Space, earlier: Sequence[tuple[int, Mapping[str, Any]]]
) -> tuple[list[tuple[int, dict[str, Any]]], dict[str, list[Any]], set[str], int]:
    """Each earlier trial projected onto `space`, duplicates left out (the first, better one kept).
    Returns (trials, {name: [values outside the new space]}, names the new space lacks, duplicates)."""
    kept: list[tuple[int, dict[str, Any]]] = []
    outside: dict[str, list[Any]] = {}
    missing: set[str] = set()
    duplicates = 0
    for number, values in earlier:
        projected, dropped = space.project(values)
        for name, value in dropped.items():
            if name not in space:
                missing.add(name)
            elif value not in outside.setdefault(name, []):
                outside[name].append(value)
        if any(projected == other for _, other in kept):
            duplicates += 1
        else:
            kept.append((number, projected))
    return kept, outside, missing, duplicates


def _value_text(value: Any) -> str:
    value = value.item() if hasattr(value, "item") and not isinstance(value, str) else value
    return f"{value:g}" if isinstance(value, float) else str(value)


def describe(
    source: str,
    space: Space,
    kept: Sequence[tuple[int, Mapping[str, Any]]],
    outside: Mapping[str, list[Any]],
    missing: set[str],
    duplicates: int,
) -> str:
    """The one line the user reads: what was queued, from which trials, and what did not carry."""
    numbers = ", ".join(str(n) for n, _ in kept)
    parts = [
        f"warm start from {source}: {len(kept)} trial{'s' if len(kept) != 1 else ''} queued first (its trial"
        f"{'s' if len(kept) != 1 else ''} {numbers}, projected onto this space)"
    ]
    baseline = space.defaults()
    if baseline and None not in baseline.values():
        parts.append(
            "the baseline (the space's defaults) is one of them"
            if any(p == baseline for _, p in kept)
            else "then the baseline (the space's defaults)"
        )
    if duplicates:
        parts.append(f"{duplicates} duplicate{'s' if duplicates != 1 else ''} left out")
    dropped = [
        f"{name}={'/'.join(_value_text(v) for v in values)} (new space: {_param_text(space, name)})"
        for name, values in outside.items()
    ]
    dropped += [f"{name} (not in the new space)" for name in sorted(missing)]
    if dropped:
        parts.append("dropped " + ", ".join(dropped))
    return "; ".join(parts)


def _param_text(space: Space, name: str) -> str:
    """The new parameter as the note names it; inactive values say so."""
    param = space[name]
    text = param.describe()
    if param.when:
        text += ", only when " + " and ".join(f"{p} in {list(v)}" for p, v in param.when)
    return text


def plan(
    results: Path, source: str, new_study: str, space: Space, target: int, storage: str | None = None
) -> WarmStart:
    """The warm start of the study `new_study` from `source`; every bad input is one UsageError,
    raised before anything is written. When `new_study` exists already nothing is read: the
    trials were queued when it was created (or it was created without them)."""
    if source == new_study:
        raise UsageError(
            f"--warm-start {source}: that is the study being run; name an earlier study (leafsearch studies lists them)"
        )
    if study_exists(results, new_study, storage):
        return WarmStart(source)
    earlier = read_best(results, source, storage, how_many(target))
    kept, outside, missing, duplicates = project_trials(space, earlier)
    return WarmStart(source, tuple(kept), describe(source, space, kept, outside, missing, duplicates))
