"""Per-epoch trial checkpoints that survive a kill at any instant.

Each checkpoint is a folder `epoch-NNNN/` (N = the 0-based epoch it ends, counted across training
phases) holding whatever the objective writes plus `state.json`. It is written whole under a
temporary name and renamed into place, then `latest.json` is replaced atomically to point at it:
a kill during the write leaves the previous checkpoint as the latest. Older folders are deleted
except the ones the caller asks to keep (the best epochs), so disk use stays bounded.

The objective decides what goes in a checkpoint; runners only move them between trials
(`move_checkpoints`, for a trial continued under a new number).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from search.records.files import read_json, write_json_atomic

LATEST = "latest.json"
STATE = "state.json"


def _name(epoch: int) -> str:
    return f"epoch-{epoch:04d}"


class CheckpointStore:
    """The checkpoints of one trial, in `folder`."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def path(self, epoch: int) -> Path:
        return self.folder / _name(epoch)

    def save(self, epoch: int, write: Callable[[Path], None], state: dict[str, Any], keep: Iterable[int] = ()) -> Path:
        """Write checkpoint `epoch` with `write(folder)` and `state`, make it the latest, and delete
        every other checkpoint but those of the epochs in `keep`."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".tmp-{_name(epoch)}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            write(tmp)
            write_json_atomic(tmp / STATE, {**state, "epoch": epoch})
            _fsync_folder(tmp)
            final = self.path(epoch)
            if final.exists():  # left by a run killed between the rename and the pointer update
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        write_json_atomic(self.folder / LATEST, {"epoch": epoch, "folder": final.name})
        self._prune(keep={epoch, *keep})
        return final

    def latest(self) -> tuple[Path, dict[str, Any]] | None:
        """The newest complete checkpoint and its state, or None when the trial has none."""
        pointer = read_json(self.folder / LATEST)
        if pointer is not None:
            found = self.load(int(pointer["epoch"]))
            if found is not None:
                return found
        # No (or a dangling) pointer: fall back on the newest complete folder.
        for folder in sorted(self.folder.glob("epoch-*"), reverse=True):
            state = read_json(folder / STATE)
            if state is not None:
                return folder, state
        return None

    def load(self, epoch: int) -> tuple[Path, dict[str, Any]] | None:
        folder = self.path(epoch)
        state = read_json(folder / STATE)
        return None if state is None else (folder, state)

    def epochs(self) -> list[int]:
        return sorted(int(p.name.split("-")[1]) for p in self.folder.glob("epoch-*") if (p / STATE).is_file())

    def clear(self) -> None:
        """Forget every checkpoint (the trial starts again from epoch 0)."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def _prune(self, keep: set[int]) -> None:
        for folder in self.folder.iterdir():
            if folder.name.startswith(".tmp-") or (
                folder.name.startswith("epoch-") and int(folder.name.split("-")[1]) not in keep
            ):
                shutil.rmtree(folder, ignore_errors=True)


def move_checkpoints(source_trial_dir: Path, target_trial_dir: Path) -> bool:
    """Give a trial continued under a new number the checkpoints of the one it continues.
    Returns whether there was anything to move."""
    source = Path(source_trial_dir) / "checkpoints"
    if not (source / LATEST).is_file() and not any(source.glob("epoch-*")):
        return False
    target = Path(target_trial_dir) / "checkpoints"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(source, target)
    return True


def copy_checkpoints(source_trial_dir: Path, target_trial_dir: Path) -> bool:
    """Like `move_checkpoints`, but the source keeps its own (a Hyperband trial extending another)."""
    source = Path(source_trial_dir) / "checkpoints"
    if not source.is_dir():
        return False
    target = Path(target_trial_dir) / "checkpoints"
    tmp = target.with_name(f".tmp-checkpoints-{os.getpid()}")  # whole or not at all, as a save
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp, ignore=shutil.ignore_patterns(".tmp-*"))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return True


def _fsync_folder(folder: Path) -> None:
    """Flush the folder's files to disk before it is renamed into place."""
    for item in folder.iterdir():
        if item.is_file():
            with open(item, "rb") as handle:
                os.fsync(handle.fileno())
