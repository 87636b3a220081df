"""A trial's folder, `results/<study>/trials/<n>/`: the files the study loop writes there.

- `params.json`: the parameters trained (all of them, fixed ones included);
- `run.json`: seed, engine, algorithm, library versions, what it continues, and once it ended its
  leaderboard state, duration and error (a KerasTuner study's leaderboard is read from these);
- `history.json`: one row per epoch (written by the reporter), `costs.json` (by the objective),
  `checkpoints/` (records/checkpoints.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from search.records.files import read_json

PARAMS, RUN, HISTORY = "params.json", "run.json", "history.json"


def trial_dir(study_dir: Path, number: int) -> Path:
    return Path(study_dir) / "trials" / str(number)


def numbered(study_dir: Path) -> list[Path]:
    """The trial folders that hold a run.json, by trial number."""
    folders = [f for f in (Path(study_dir) / "trials").glob("*") if f.name.isdigit() and (f / RUN).is_file()]
    return sorted(folders, key=lambda f: int(f.name))


def read(folder: Path, name: str, default: Any = None) -> Any:
    return read_json(Path(folder) / name, default)
