"""The Optuna study's storage: opening it (a journal file, or a database with heartbeats) and
reading it back (the leaderboard rows, a stored study for a joining worker or a report).

Reports read it too, so it imports nothing of the trial loop.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState as OptunaState

from search.engines.optuna.faults import reason, transient
from search.engines.patience import Patience, StorageUnreachable
from search.errors import UsageError, one_line
from search.records import leaderboard
from search.records.states import TrialState
from search.urls import mask_url

JOURNAL_NAME = "study.journal"
HEARTBEAT_S = 20  # how often a running trial says it is alive (database storages)
GRACE_S = 120  # a trial silent for this long lost its process: it is continued elsewhere
CONNECT_TIMEOUT_S = 10  # PostgreSQL: a server that does not answer is an outage, not a hang


def make_storage(study_dir: Path, url: str | None, patience: Patience | None = None) -> optuna.storages.BaseStorage:
    """The embedded journal file (no server; its file lock makes it safe for local workers) or a
    database URL, with heartbeats. With `patience`, every call to the database waits out an outage
    (`PatientStorage`); without, any failure to open it is a UsageError at once (a report, a
    worker joining, the first check of a run: the user is there to fix the URL)."""
    if url is None:
        study_dir.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(study_dir / JOURNAL_NAME)))
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}  # a pooled connection the server dropped is replaced
    if url.startswith("postgresql") and "connect_timeout" not in url:
        engine_kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    try:
        with warnings.catch_warnings():  # "heartbeat_interval is an experimental feature"
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            options: dict[str, Any] = {
                "heartbeat_interval": HEARTBEAT_S,
                "grace_period": GRACE_S,
                "engine_kwargs": engine_kwargs,
            }
            if patience is not None:
                return PatientStorage(url, patience, **options)
            return RDBStorage(url, **options)
    except StorageUnreachable:
        raise
    except Exception as exc:  # noqa: BLE001 - any other failure to open the user's URL is bad input
        reason = one_line(exc).replace(url, mask_url(url))
        raise UsageError(
            f"--storage: cannot open {mask_url(url)}: {reason}; check the URL and that the server is reachable"
        ) from None


def storage_patience(url: str, window_s: float, note: Callable[[str], None] | None = None) -> Patience:
    """How long calls to the database at `url` wait out an outage, and where the user hears of it."""
    return Patience(f"Storage {mask_url(url)}", transient, window_s, note, describe=reason)


class PatientStorage(RDBStorage):
    """Optuna's RDBStorage, each of whose calls waits out an outage of the database (`Patience`).

    Each wrapped method is one transaction of RDBStorage's (it opens a session, works, commits),
    so a call that failed is tried again whole. Optuna wraps this storage in its `_CachedStorage`
    as it wraps any RDBStorage, which calls the private methods listed in `_CALLS` too. A write
    whose commit reached the server just as the connection dropped cannot be told from one that
    did not: a state change tried again finds the trial in the state it asked for (accepted as
    done, below); a trial created twice is never claimed by a process and is hidden as surplus
    (the adapter's `requeue_orphans`).

    The heartbeat is not retried: a beat missed in an outage is noted, and the next one, one
    interval on, tries again, so the heartbeat thread outlives the outage (Optuna's thread ends at
    the first error). The other workers do not declare the trial dead meanwhile: see
    `OptunaEngine.requeue_orphans`.
    """

    def __init__(self, url: str, patience: Patience, **kwargs: Any):
        self.patience = patience
        patience.call(super().__init__, url, **kwargs)  # it connects: creates the tables, checks the schema

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except Exception as exc:
            if not self.patience.transient(exc):
                raise
            self.patience.missed(exc)
        else:
            self.patience.reached()

    def set_trial_state_values(self, trial_id: int, state: OptunaState, values: Any = None) -> bool:
        tries = 0

        def once() -> bool:
            nonlocal tries
            tries += 1
            try:
                return RDBStorage.set_trial_state_values(self, trial_id, state, values)
            except optuna.exceptions.UpdateFinishedTrialError:
                # Tried again after a dropped connection: the first try's commit may have landed.
                if tries > 1 and state.is_finished() and RDBStorage.get_trial(self, trial_id).state == state:
                    return True
                raise

        return self.patience.call(once)


# RDBStorage's methods that each run one transaction, by the names _CachedStorage and Optuna's
# Study call them (set_trial_state_values and record_heartbeat are above). Methods that only
# combine these (get_all_trials, create_new_trial, get_best_trial, set_trial_param) are not
# wrapped again.
_CALLS = (
    "create_new_study",
    "delete_study",
    "set_study_user_attr",
    "set_study_system_attr",
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_directions",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "get_trial_user_attrs",
    "get_trial_system_attrs",
    "get_all_studies",
    "_create_new_trial",
    "_set_trial_param",
    "get_trial_param",
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
    "get_trial_id_from_study_id_trial_number",
    "get_trial",
    "_get_trials",
    "_get_best_trial_id",
    "_get_stale_trial_ids",
)


def _patient(name: str) -> Callable[..., Any]:
    method = getattr(RDBStorage, name)

    @functools.wraps(method)
    def call(self: PatientStorage, *args: Any, **kwargs: Any) -> Any:
        return self.patience.call(method, self, *args, **kwargs)

    return call


for _name in _CALLS:
    setattr(PatientStorage, _name, _patient(_name))


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
