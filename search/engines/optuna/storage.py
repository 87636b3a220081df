"""The Optuna study's storage: opening it (a journal file, or a database with heartbeats) and
reading it back (the leaderboard rows, a stored study for a joining worker or a report).

Reports read it too, so it imports nothing of the trial loop.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState as OptunaState

from search.errors import UsageError, one_line
from search.records import leaderboard
from search.records.states import TrialState
from search.urls import mask_url

JOURNAL_NAME = "study.journal"
HEARTBEAT_S = 20  # how often a running trial says it is alive (database storages)
GRACE_S = 120  # a trial silent for this long lost its process: it is continued elsewhere


def make_storage(study_dir: Path, url: str | None) -> optuna.storages.BaseStorage:
    """The embedded journal file (no server; its file lock makes it safe for local workers) or a
    database URL, with heartbeats."""
    if url is None:
        study_dir.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(study_dir / JOURNAL_NAME)))
    try:
        with warnings.catch_warnings():  # "heartbeat_interval is an experimental feature"
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S, engine_kwargs={"pool_pre_ping": True}
            )
    except Exception as exc:  # noqa: BLE001 - any failure to open the user's URL is bad input
        reason = one_line(exc).replace(url, mask_url(url))
        raise UsageError(
            f"--storage: cannot open {mask_url(url)}: {reason}; check the URL and that the server is reachable"
        ) from None


def counts_toward_target(trial: optuna.trial.FrozenTrial) -> bool:
    """Finished trials count, except ones queued again (interrupted, or their process died), ones
    stopped by bad input (the user fixes it and runs again) and surplus ones."""
    attrs = trial.user_attrs
    return trial.state.is_finished() and not any(
        attrs.get(flag, False) for flag in ("requeued", "bad_input", "surplus")
    )


# Optuna's states of the trials a leaderboard shows (not WAITING: queued trials are not shown).
_STATES = {
    OptunaState.RUNNING: TrialState.RUNNING,
    OptunaState.COMPLETE: TrialState.COMPLETE,
    OptunaState.PRUNED: TrialState.PRUNED,
    OptunaState.FAIL: TrialState.FAIL,
}


def rows_from_study(study: optuna.Study, metric: str, algorithm: str) -> list[dict[str, Any]]:
    """Leaderboard rows from the storage, the single source of truth (all workers' trials). Not
    shown: queued trials, trials continued under another number, surplus ones."""
    trials = study.get_trials(deepcopy=False)
    continued = {
        t.user_attrs["resumes"] for t in trials if "resumes" in t.user_attrs and t.state != OptunaState.WAITING
    }
    return [
        leaderboard.row(
            t.number,
            TrialState.INFEASIBLE if t.user_attrs.get("infeasible") else _STATES[t.state],
            t.values[0] if t.state == OptunaState.COMPLETE and t.values else None,
            t.user_attrs.get("summary", {}),
            metric=metric,
            duration_s=t.duration.total_seconds() if t.duration else None,
            backend="optuna",
            algorithm=t.user_attrs.get("algorithm", algorithm),
            resumed_from=t.user_attrs.get("resumes"),
            error=t.user_attrs.get("error", ""),
            params=t.user_attrs.get("params", t.params),
            costs=t.user_attrs.get("costs"),
        )
        for t in trials
        if t.state != OptunaState.WAITING and t.number not in continued and not t.user_attrs.get("surplus")
    ]


def stored_study(study_dir: Path, name: str, url: str | None) -> optuna.Study:
    """An existing study, for a worker that joins it or a report that reads it; a missing one is
    a UsageError that says how to start it."""
    journal = study_dir / JOURNAL_NAME
    if url is None and not journal.is_file():
        raise UsageError(
            f"--study {name}: no study at {journal}; start it first with leafsearch run SPACE --study {name}, "
            f"or pass the study's --storage URL"
        )
    try:
        return optuna.load_study(study_name=name, storage=make_storage(study_dir, url))
    except KeyError:
        where = mask_url(url) or str(study_dir)
        raise UsageError(
            f"--study {name}: no such study in {where}; start it first with "
            f"leafsearch run SPACE --study {name}" + (" --storage URL" if url else "")
        ) from None
