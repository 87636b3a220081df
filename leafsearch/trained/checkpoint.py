"""A trial's trained model, for `evaluate` and `export`: rebuilt from the trial's parameters by the
training's own `build_model`, with the weights of the trial's best checkpoint. Nothing only
training reads is needed (ImageNet weights, background photos): a study's results stand alone.

What it reads, all under `results/<study>/`: `study.json` (the pipeline), `leaderboard.csv` (the
best complete trial, the default), and `trials/<n>/`: `params.json`, `run.json` (seed, data folder),
`classes.json` (the class names in output order) and `checkpoints/` (see search/checkpoints.py).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras

from leafsearch.data import scan_folder
from leafsearch.training.loop import CLASSES
from leafsearch.training.phases import build_model
from leafsearch.training.recipe import rebuilt
from leafsearch.training.weights_files import load_weights_only
from search.errors import UsageError
from search.records import leaderboard
from search.records.checkpoints import CheckpointStore
from search.records.files import read_json


@dataclasses.dataclass(frozen=True)
class TrialModel:
    study: str
    study_dir: Path
    trial: int
    model: keras.Model
    class_names: tuple[str, ...]
    image_size: int
    epoch: int  # the checkpoint's epoch, 0-based across phases


def study_dir(results: Path, study: str) -> Path:
    folder = Path(results) / study
    if not study or "/" in study or not (folder / "study.json").is_file():
        found = sorted(p.parent.name for p in Path(results).glob("*/study.json"))
        hint = (
            f"one of: {', '.join(found)}"
            if found
            else f"none found in {results}/; run a study first or pass --results DIR"
        )
        raise UsageError(f"--study {study}: no study at {folder} (no study.json); pass a study name ({hint})")
    return folder


def best_trial(folder: Path) -> int:
    """The best COMPLETE trial of the study's leaderboard."""
    board_path = folder / "leaderboard.csv"
    if not board_path.is_file():
        raise UsageError(
            f"--study {folder.name}: no leaderboard at {board_path}; run the study first or pass --trial N"
        )
    meta = read_json(folder / "study.json", {}) or {}
    metric, direction = meta.get("metric", "val_accuracy"), meta.get("direction", "maximize")
    best = leaderboard.best_trial(leaderboard.read(board_path), metric, direction)
    if best is None:
        raise UsageError(
            f"--study {folder.name}: no complete trial yet; let a trial finish, or pass --trial N of a trial with a checkpoint"
        )
    return int(best["trial"])


def class_names(trial_dir: Path) -> tuple[str, ...]:
    """The class names in the order of the model's outputs: recorded by the objective, or (for a
    trial from before it recorded them) the sorted sub-folders of the data folder it trained on."""
    recorded = read_json(trial_dir / CLASSES)
    if recorded:
        return tuple(recorded)
    data = (read_json(trial_dir / "run.json", {}) or {}).get("data")
    if data and Path(data).is_dir():
        return scan_folder(data).class_names
    raise UsageError(
        f"{trial_dir}: no classes.json and its data folder {data} is not here; "
        f"run the study again (it records the class names) or restore the data folder"
    )


def best_checkpoint(trial_dir: Path) -> tuple[Path, int]:
    """The folder and epoch of the trial's best checkpoint (its latest when no epoch scored)."""
    store = CheckpointStore(trial_dir / "checkpoints")
    latest = store.latest()
    if latest is None:
        raise UsageError(
            f"trial {trial_dir.name}: no checkpoint in {store.folder}; the trial finished no epoch, pick another --trial"
        )
    folder, state = latest
    best = state.get("best")
    if best is not None and store.load(best) is not None:
        return store.path(best), int(best)
    return folder, int(state["epoch"])


def load(results: Path, study: str, trial: int | None = None) -> TrialModel:
    """The trial's model (the best complete trial by default) with its best checkpoint's weights."""
    folder = study_dir(results, study)
    number = best_trial(folder) if trial is None else trial
    trial_dir = folder / "trials" / str(number)
    params = read_json(trial_dir / "params.json")
    if params is None:
        numbers = sorted(int(p.name) for p in (folder / "trials").glob("*") if p.name.isdigit())
        raise UsageError(
            f"--trial {number}: study {study} has no trial {number} (trials: {', '.join(map(str, numbers)) or 'none'})"
        )
    checkpoint, epoch = best_checkpoint(trial_dir)
    names = class_names(trial_dir)
    pipeline = (read_json(folder / "study.json", {}) or {}).get("pipeline", "cnn")
    seed = (read_json(trial_dir / "run.json", {}) or {}).get("seed", 0)
    # Without what only training reads (recipe.REBUILD): every weight comes from the checkpoint (no
    # ImageNet download), and no background photos are read (their folder may be gone by now).
    recipe = rebuilt(params, pipeline)
    # The training's own builder: the same model as in training (the phases' lengths do not matter).
    model, _ = build_model(pipeline, recipe, len(names), seed, max_epochs=1)
    load_weights_only(model, checkpoint)
    return TrialModel(study, folder, number, model, names, int(recipe["image_size"]), epoch)
