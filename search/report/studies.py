"""Reading studies back for a report: the leaderboard from its file (or rebuilt from an Optuna
storage URL), what the header says about the study, its space, its plots, the list of studies.

Nothing here loads Keras or KerasTuner: `leafsearch report` answers in about a second.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from search.engines.choices import KERASTUNER_IDENTITY
from search.errors import UsageError
from search.records import leaderboard, trial_files
from search.records.files import read_json
from search.report import summary
from search.space import Space
from search.urls import mask_url


def latest_study(results: Path) -> str:
    boards = sorted(results.glob("*/leaderboard.csv"), key=lambda p: p.stat().st_mtime) if results.is_dir() else []
    if not boards:
        raise UsageError(
            f"no study found in {results}/; run `leafsearch run spaces/cnn.py` first or pass --results DIR"
        )
    return boards[-1].parent.name


def load_study_rows(results: Path, name: str | None, storage: str | None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(frame, meta): the leaderboard (from its file, or rebuilt from an Optuna storage URL) and
    what the report's header says about the study: study, metric, direction, backend, algorithm,
    pruner, storage (password masked) and, when the storage was read, its space."""
    if storage:
        import optuna

        from search.engines.optuna.storage import make_storage, rows_from_study

        opened = make_storage(results, storage)
        names = [s.study_name for s in optuna.get_all_study_summaries(opened, include_best_trial=False)]
        name = name or (names[0] if len(names) == 1 else None)
        if name not in names:
            raise UsageError(f"--study: pass one of the storage's studies: {', '.join(names) or '(none)'}")
        study = optuna.load_study(study_name=name, storage=opened)
        metric = study.user_attrs.get("metric", "value")
        settings = study.user_attrs.get("settings", {})
        algorithm = settings.get("algorithm", "tpe")
        space = study.user_attrs.get("space", {})
        direction = study.directions[0].name.lower()
        objectives = study.user_attrs.get("objectives") or {}
        frame = leaderboard.build(
            rows_from_study(study, metric, algorithm), metric, list(space), {metric: direction, **objectives}
        )
        return frame, {
            "study": name,
            "metric": metric,
            "direction": direction,
            "backend": "optuna",
            "algorithm": algorithm,
            "pruner": settings.get("pruner"),
            "storage": mask_url(storage),
            "space": space or None,
            "objectives": objectives,
            "warm_start": study.user_attrs.get("warm_start"),
        }
    name = name or latest_study(results)
    study_dir = results / name
    board = study_dir / "leaderboard.csv"
    if not board.is_file():
        raise UsageError(
            f"--study {name}: no leaderboard at {board}; run the study first (leafsearch run SPACE --study {name})"
        )
    meta = read_json(study_dir / "study.json", {}) or {}
    frame = leaderboard.read(board)
    stored = meta.get("storage") or "study.journal"
    first = frame.iloc[0] if len(frame) else {}
    return frame, {
        "study": name,
        "metric": meta.get("metric", "val_accuracy"),
        "direction": meta.get("direction", "maximize"),
        "backend": meta.get("backend") or first.get("backend"),
        "algorithm": meta.get("algorithm") or first.get("algorithm"),
        "pruner": meta.get("pruner"),
        "storage": stored if "://" in stored else str(study_dir / stored),
        "space": None,
        "objectives": meta.get("objectives") or {},
        "constraints": meta.get("constraints") or {},
        "warm_start": meta.get("warm_start"),
    }


def study_space(study_dir: Path, meta: dict[str, Any]) -> Space | None:
    """The study's space, for plots that need the parameters' ranges: from the storage that
    recorded it (Optuna's study, KerasTuner's project); None when it cannot be read here."""
    data = meta.get("space")
    storage = Path(meta.get("storage") or "")
    if data is None and (storage / KERASTUNER_IDENTITY).is_file():
        data = read_json(storage / KERASTUNER_IDENTITY, {}).get("space")
    elif data is None and storage.name == "study.journal" and storage.is_file():
        import optuna

        from search.engines.optuna.storage import make_storage

        try:
            data = optuna.load_study(study_name=meta["study"], storage=make_storage(study_dir, None)).user_attrs.get(
                "space"
            )
        except KeyError:  # the journal holds no study of that name
            data = None
    return Space.from_dict(data) if data else None


def write_plots(frame: pd.DataFrame, meta: dict[str, Any], study_dir: Path):
    """The plots of `frame` into results/<study>/plots/, with the space's ranges when it can be read."""
    from search.engines.optuna.space import distributions
    from search.report import plots

    space = study_space(study_dir, meta)
    histories = {}
    for number in frame["trial"].dropna():
        history = trial_files.read(trial_files.trial_dir(study_dir, int(number)), trial_files.HISTORY)
        if history:
            histories[int(number)] = history
    try:
        return plots.write_plots(
            frame,
            meta["metric"],
            meta["direction"],
            distributions(space) if space is not None else None,
            histories,
            study_dir / "plots",
            front_objectives(meta),
        )
    except OSError as exc:
        raise UsageError(f"--plots: cannot write to {study_dir / 'plots'} ({exc.strerror})") from None


def confusion_images(evaluations: pd.DataFrame, study_dir: Path) -> list[Path]:
    """The evaluations' confusion-matrix PNGs that exist (paths relative to the study folder or
    to its evaluations folder)."""
    found = []
    for relative in evaluations["confusion_png"].dropna():
        for base in (study_dir, study_dir / "evaluations"):
            if (base / str(relative)).is_file():
                found.append(base / str(relative))
                break
    return found


def studies_in_folder(results: Path) -> list[dict[str, Any]]:
    """One summary row per study of a results folder."""
    rows = []
    for study_dir in sorted(results.iterdir()) if results.is_dir() else []:
        board = study_dir / "leaderboard.csv"
        if study_dir.name.startswith(".") or not (board.is_file() or (study_dir / "study.json").is_file()):
            continue
        meta = read_json(study_dir / "study.json", {}) or {}
        frame = (
            leaderboard.read(board)
            if board.is_file()
            else leaderboard.build([], meta.get("metric", "val_accuracy"), [])
        )
        last = max(p.stat().st_mtime for p in (board, study_dir / "study.json") if p.is_file())
        rows.append(summary.study_summary(study_dir.name, frame, meta, datetime.datetime.fromtimestamp(last)))
    return rows


def studies_in_storage(results: Path, storage: str) -> list[dict[str, Any]]:
    """One summary row per study of an Optuna storage."""
    import optuna

    from search.engines.optuna.storage import make_storage, rows_from_study

    opened = make_storage(results, storage)
    rows = []
    for found in optuna.get_all_study_summaries(opened, include_best_trial=False):
        study = optuna.load_study(study_name=found.study_name, storage=opened)
        meta = {
            "metric": study.user_attrs.get("metric", "value"),
            "direction": study.directions[0].name.lower(),
            "backend": "optuna",
            "algorithm": study.user_attrs.get("settings", {}).get("algorithm", "tpe"),
        }
        frame = leaderboard.build(rows_from_study(study, meta["metric"], meta["algorithm"]), meta["metric"], [])
        times = [t.datetime_complete or t.datetime_start for t in study.get_trials(deepcopy=False)]
        last = max((t for t in times if t is not None), default=found.datetime_start)
        rows.append(summary.study_summary(found.study_name, frame, meta, last))
    return rows


def front_objectives(meta: dict[str, Any]) -> dict[str, str]:
    """The objectives a Pareto front is drawn over: the study's own, or for a single-objective
    study its metric against inference time (the seed's own trade-off)."""
    objectives = meta.get("objectives") or {}
    return {meta["metric"]: meta["direction"], **(objectives or {"infer_ms": "minimize"})}


def pareto_front(frame: pd.DataFrame, meta: dict[str, Any]) -> pd.DataFrame:
    """The trials on the front, best metric first."""
    objectives = front_objectives(meta)
    if any(name not in frame for name in objectives):
        return frame.iloc[0:0]
    on_front = frame["pareto"].astype(bool) if "pareto" in frame else leaderboard.pareto(frame, objectives)
    return leaderboard.sort_best_first(frame[on_front.fillna(False).astype(bool)], meta["metric"], meta["direction"])
