"""The Optuna trial runner: ask, train through the objective, tell, rewrite the leaderboard.

The study is its storage (a journal file under the study folder by default, any Optuna storage
URL otherwise), so running the same command again resumes it: `trials` is the target number of
finished trials in total, not a number to add.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import math
import os
import platform
import re
import socket
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import optuna
from optuna.storages import JournalStorage
from optuna.storages._heartbeat import get_heartbeat_thread, is_heartbeat_enabled  # noqa: PLC2701 - Optuna's own helpers
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from search import costs, engines, leaderboard, processes
from search.display import Display
from search.errors import TrialFailed, TrialPruned, UsageError
from search.checkpoints import CheckpointStore, move_checkpoints
from search.files import read_json, write_json_atomic
from search.optuna_space import sample
from search.reporter import Reporter, summarise
from search.space import Space
from search.study import Study
from search.trial_exec import TrialExecutor

ALGORITHMS = engines.ALGORITHMS["optuna"]
JOURNAL_NAME = "study.journal"
HEARTBEAT_S = 20  # how often a running trial says it is alive (database storages)
GRACE_S = 120  # a trial silent for this long lost its process: it is continued elsewhere
POLL_S = 2.0  # how often a worker waiting for other workers' trials looks again
BACKEND = "optuna"

Objective = Callable[[dict, Reporter], Mapping[str, float]]


class SearchAborted(Exception):
    """The search cannot usefully go on (e.g. too many failures in a row)."""


@dataclasses.dataclass
class RunOptions:
    study_name: str
    study_dir: Path
    trials: int
    storage: str | None = None
    algorithm: str = "tpe"
    pruner: str = "median"  # one of engines.PRUNERS["optuna"]
    max_resource: int | None = None  # the most epochs (counted across phases) a trial can train: Hyperband's top rung
    seed: int = 0
    timeout_s: float | None = None
    max_consecutive_failures: int = 3
    identity: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # must match to resume (data, split seed)
    run_info: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # recorded in every trial folder
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # kept in the study for `leafsearch worker`
    worker: int = 0  # this worker's index among those sharing the study (seeds its sampler apart)
    in_process: bool = False  # train in this process instead of a child process per trial (debugging)
    preload: tuple[str, ...] = ()  # modules the trial processes' fork server imports once (e.g. Keras)

    @property
    def prune(self) -> bool:
        return self.pruner != "none"


class OptunaReporter(Reporter):
    """Forwards epoch metrics to `trial.report`, so Optuna's pruners can act on them."""

    def __init__(self, trial: optuna.Trial, **kwargs: Any):
        super().__init__(trial_number=trial.number, **kwargs)
        self._trial = trial
        self._sent: set[int] = set()
        self.taken_over = False  # another worker ended this trial in the storage (it thought us dead)

    def _send(self, epoch: int, value: float) -> None:
        if epoch in self._sent:  # a retry after out-of-memory reports its epochs again
            return
        self._sent.add(epoch)
        try:
            self._trial.report(value, step=epoch)
        except optuna.exceptions.UpdateFinishedTrialError:
            self.taken_over = True

    def should_prune(self) -> bool:
        return self.taken_over or self._trial.should_prune()


def make_storage(study_dir: Path, url: str | None) -> optuna.storages.BaseStorage:
    """The embedded journal file (no server; its file lock makes it safe for local workers) or a
    database URL. A database storage records heartbeats, so a trial whose machine is lost is
    found (by its stale heartbeat) and continued by another worker."""
    if url is None:
        study_dir.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(study_dir / JOURNAL_NAME)))
    try:
        with warnings.catch_warnings():  # "heartbeat_interval is an experimental feature"
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                                              engine_kwargs={"pool_pre_ping": True})
    except Exception as exc:  # noqa: BLE001 - any failure to open the user's URL is bad input
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if url in reason:
            reason = reason.replace(url, mask_url(url))
        raise UsageError(f"--storage: cannot open {mask_url(url)}: {type(exc).__name__}: {reason}; "
                         f"check the URL and that the server is reachable") from None


def mask_url(url: str | None) -> str:
    """A storage URL without its password, safe to print and to write into files."""
    if url is None:
        return ""
    url = re.sub(r"(?i)([?&](?:password|pwd)=)[^&]*", r"\1***", url)
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url


def make_sampler(algorithm: str, seed: int) -> optuna.samplers.BaseSampler:
    if algorithm == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if algorithm == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise UsageError(f"--algorithm {algorithm}: unknown for the optuna backend; use one of {', '.join(ALGORITHMS)}")


def make_pruner(name: str, max_resource: int | None = None) -> optuna.pruners.BasePruner:
    """Optuna's pruner by leafsearch's name for it. Steps are epochs, 0-based and counted across
    training phases, so `min_resource=1` first compares trials after their second epoch (the
    first is the noisiest).

    - `median`: the median rule once 3 trials finished, from the third epoch on. Cautious: it
      rarely stops the eventual best, and saves about a third to a half of the epochs.
    - `asha`: asynchronous successive halving (Li et al. 2020, Optuna's SuccessiveHalvingPruner):
      after 2, 4, 10, 28... epochs only the best third of the trials that reached that rung go on.
      It saves the most epochs, and needs many trials (dozens) to pick from.
    - `hyperband`: several successive-halving brackets, from aggressive to none (Li et al. 2018,
      Optuna's HyperbandPruner), hedging against an early ranking that misleads.
    - `none`: every trial trains until its own early stopping or the epoch cap.
    """
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_resource or "auto", reduction_factor=3)
    raise UsageError(f"--pruner {name}: unknown for the optuna backend; use one of {', '.join(engines.PRUNERS[BACKEND])}")


def counts_toward_target(trial: optuna.trial.FrozenTrial) -> bool:
    """Finished trials count, except ones that were queued again (interrupted, or their process
    died) and ones stopped by bad input (the user fixes it and runs again)."""
    attrs = trial.user_attrs
    return trial.state.is_finished() and not any(attrs.get(flag, False) for flag in ("requeued", "bad_input", "surplus"))


def shown(trial: optuna.trial.FrozenTrial, continued: set[int]) -> bool:
    """Whether the leaderboard shows a trial: not a queued one, not one continued under another
    number, not a surplus one a worker started past the target."""
    return trial.state != TrialState.WAITING and trial.number not in continued and not trial.user_attrs.get("surplus", False)


@contextlib.contextmanager
def heartbeat(storage: optuna.storages.BaseStorage, trial_id: int):
    """While a trial trains, tell a database storage it is alive, with the same heartbeat thread
    Optuna's own `optimize` loop uses (a no-op for storages without heartbeats)."""
    thread = get_heartbeat_thread(trial_id, storage)
    thread.start()
    try:
        yield
    finally:
        thread.join()


def identity_differences(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What differs between two studies' identities, named for the user."""
    out = []
    for key, value in current.items():
        old = stored.get(key)
        if old == value:
            continue
        if key == "space" and isinstance(old, dict):
            changed = [n for n in value if n in old and old[n] != value[n]]
            added = [n for n in value if n not in old]
            removed = [n for n in old if n not in value]
            parts = [f"{label} {', '.join(names)}" for label, names in
                     (("changed", changed), ("added", added), ("removed", removed)) if names]
            out.append("space " + "; ".join(parts))
        else:
            out.append(f"{key} {old!r} -> {value!r}")
    return out


def open_study(space: Space, spec: Study, options: RunOptions) -> optuna.Study:
    backend = (read_json(options.study_dir / "study.json", {}) or {}).get("backend", BACKEND)
    if options.storage is None and backend != BACKEND:
        raise UsageError(f"study {options.study_name!r} was run with the {backend} backend; pass --backend {backend}, or a new --study NAME")
    storage = make_storage(options.study_dir, options.storage)
    summaries = {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    n_existing = summaries.get(options.study_name, 0)
    # A resumed run must not replay the first run's random draws, nor a worker another's:
    # offset the seed by the trials so far and by the worker's index.
    sampler = make_sampler(options.algorithm, (options.seed + n_existing + 7919 * options.worker) % 2**32)
    identity = {"metric": spec.metric, "pipeline": spec.pipeline, "space": space.to_dict(), **options.identity}
    if options.study_name in summaries:  # resume: read only, so a refused run changes nothing
        study = optuna.load_study(study_name=options.study_name, storage=storage, sampler=sampler, pruner=make_pruner(options.pruner, options.max_resource))
        if study.direction.name.lower() != spec.direction:
            raise UsageError(
                f"study {options.study_name!r} was created to {study.direction.name.lower()} its metric, "
                f"this space asks to {spec.direction}; pass a new --study NAME"
            )
        differences = identity_differences(study.user_attrs, identity)
        if differences:
            raise UsageError(
                f"study {options.study_name!r} was run with a different setup ({'; '.join(differences)}): "
                f"its trials would not be comparable; pass a new --study NAME, or undo the change to resume"
            )
        if options.settings and study.user_attrs.get("settings") != dict(options.settings):
            study.set_user_attr("settings", dict(options.settings))
        return study
    study = optuna.create_study(
        storage=storage, study_name=options.study_name, direction=spec.direction, sampler=sampler, pruner=make_pruner(options.pruner, options.max_resource)
    )
    for key, value in {**identity, "settings": dict(options.settings)}.items():
        study.set_user_attr(key, value)
    baseline = space.defaults()
    if baseline and None not in baseline.values():
        # The space's defaults (the seed's recipe in leafsearch's spaces) are trial 0: a baseline.
        study.enqueue_trial(baseline, user_attrs={"baseline": True})
    return study


def rows_from_study(study: optuna.Study, metric: str, algorithm: str) -> list[dict[str, Any]]:
    """Leaderboard rows from the storage, the single source of truth (all workers' trials)."""
    rows = []
    trials = study.get_trials(deepcopy=False)
    continued = {t.user_attrs["resumes"] for t in trials if "resumes" in t.user_attrs and t.state != TrialState.WAITING}
    for trial in trials:
        if not shown(trial, continued):
            continue
        attrs = trial.user_attrs
        summary = attrs.get("summary", {})
        value = trial.value if trial.state == TrialState.COMPLETE else summary.get(metric)
        rows.append(
            {
                "trial": trial.number,
                "state": trial.state.name,
                metric: value,
                "val_loss": summary.get("val_loss"),
                "best_epoch": summary.get("best_epoch"),
                "epochs": summary.get("epochs"),
                "duration_s": round(trial.duration.total_seconds(), 2) if trial.duration else None,
                "backend": BACKEND,
                "algorithm": attrs.get("algorithm", algorithm),
                "resumed_from": attrs.get("resumes"),
                "error": attrs.get("error", ""),
                "params": attrs.get("params", trial.params),
                "costs": attrs.get("costs"),
            }
        )
    return rows


class OptunaRunner:
    """Runs trials until the study has `options.trials` finished ones (or the timeout passes)."""

    def __init__(self, space: Space, spec: Study, objective: Objective, options: RunOptions, display: Display):
        self.space = space
        self.spec = spec
        self.objective = objective
        self.options = options
        self.display = display
        self.study: optuna.Study | None = None
        self.executor = TrialExecutor(isolate=not options.in_process, preload=options.preload)

    def finished_count(self) -> int:
        return sum(counts_toward_target(t) for t in self.study.get_trials(deepcopy=False))

    def run(self) -> optuna.Study:
        optuna.logging.set_verbosity(logging.WARNING)
        options = self.options
        self.study = open_study(self.space, self.spec, options)
        self.requeue_orphans()
        write_json_atomic(
            options.study_dir / "study.json",
            {"study": options.study_name, "metric": self.spec.metric, "direction": self.spec.direction,
             "pipeline": self.spec.pipeline, "backend": BACKEND, "algorithm": options.algorithm, "pruner": options.pruner,
             "storage": mask_url(options.storage) or JOURNAL_NAME, "params": self.space.names},
        )
        self._refresh_best()
        self.display.study_started(
            options.study_name,
            self.finished_count(),
            options.trials,
            f"optuna/{options.algorithm}, " + ("no pruning" if options.pruner == "none" else f"{options.pruner} pruning"),
            mask_url(options.storage) or str(options.study_dir / JOURNAL_NAME),
        )
        self.write_leaderboard()
        try:
            self._loop()
        finally:
            self.executor.close()
        self._refresh_best()
        self.write_leaderboard()  # with what other workers finished meanwhile
        return self.study

    def _loop(self) -> None:
        options = self.options
        started = time.monotonic()
        failures_in_a_row = 0
        waiting_noted = False
        while True:
            self.requeue_orphans()
            trials = self.study.get_trials(deepcopy=False)
            if sum(counts_toward_target(t) for t in trials) >= options.trials:
                break
            if options.timeout_s is not None and time.monotonic() - started >= options.timeout_s:
                self.display.note(f"Timeout of {options.timeout_s:.0f}s reached: no new trial started; run again to continue.")
                break
            queued = any(t.state == TrialState.WAITING for t in trials)
            if not queued and self._claimed(trials, len(trials)) >= options.trials:
                # Other workers' trials will meet the target, unless one dies: then it is queued again here.
                if not waiting_noted:
                    running = sum(t.state == TrialState.RUNNING for t in trials)
                    self.display.note(f"Waiting for {running} trial(s) running in other workers to finish.")
                    waiting_noted = True
                time.sleep(POLL_S)
                continue
            waiting_noted = False
            state = self.run_one_trial()
            if state is None:  # another worker took the last place first
                continue
            failures_in_a_row = failures_in_a_row + 1 if state == TrialState.FAIL else 0
            if failures_in_a_row >= options.max_consecutive_failures:
                raise SearchAborted(
                    f"{failures_in_a_row} trials failed in a row; the last error is in the leaderboard "
                    f"({options.study_dir / 'leaderboard.csv'}). Fix the cause and run again to resume."
                )

    @staticmethod
    def _claimed(trials: list[optuna.trial.FrozenTrial], before: int) -> int:
        """Places toward the target taken by trials numbered below `before`: counted finished
        ones, running ones, and queued ones (every queued trial will run)."""
        return sum(
            t.number < before and (counts_toward_target(t) or t.state in (TrialState.RUNNING, TrialState.WAITING))
            for t in trials
        )

    def requeue_orphans(self) -> None:
        """RUNNING trials whose process died (kill -9, a crash, a lost machine) are marked failed
        and their parameters queued again with the same seed, so no budget is lost."""
        here = socket.gethostname()
        storage = self.study._storage  # noqa: SLF001 - Optuna has no public API for another process's trial
        stale: set[int] = set()
        if is_heartbeat_enabled(storage):
            stale = set(storage._get_stale_trial_ids(self.study._study_id))  # noqa: SLF001 - what fail_stale_trials uses
        trials = self.study.get_trials(deepcopy=False)
        continued = {t.user_attrs.get("resumes") for t in trials}
        for frozen in trials:
            if frozen.state != TrialState.RUNNING:
                continue
            attrs = frozen.user_attrs
            died_here = attrs.get("host") == here and (
                attrs.get("pid") == os.getpid() or not processes.alive(attrs.get("pid"), attrs.get("pid_start"))
            )  # this process's own RUNNING trial, seen between trials, is a previous life's (a reused pid)
            started = frozen.datetime_start or datetime.datetime.now()
            never_claimed = attrs.get("pid") is None and (datetime.datetime.now() - started).total_seconds() > GRACE_S
            if not (died_here or never_claimed or frozen._trial_id in stale):  # noqa: SLF001
                continue
            if never_claimed:  # killed between ask and claim: it never trained, nothing to continue
                with contextlib.suppress(RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
                    storage.set_trial_user_attr(frozen._trial_id, "surplus", True)  # noqa: SLF001
                    storage.set_trial_state_values(frozen._trial_id, TrialState.FAIL)  # noqa: SLF001
                continue
            try:
                storage.set_trial_user_attr(frozen._trial_id, "requeued", True)  # noqa: SLF001
                storage.set_trial_user_attr(frozen._trial_id, "error", "its process died; queued to continue from its last checkpoint")  # noqa: SLF001
                # Of several workers finding the same orphan, only the one that ends it queues it again.
                storage.set_trial_state_values(frozen._trial_id, TrialState.FAIL)  # noqa: SLF001
            except (RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
                continue
            if frozen.number in continued:  # already queued to continue (a Ctrl-C cut short)
                continue
            params = attrs.get("params") or frozen.params
            self.study.enqueue_trial(params, user_attrs={"seed": attrs.get("seed"), "resumes": frozen.number})
            self.display.note(f"Trial {frozen.number} was left running by a process that died: queued to continue from its last checkpoint.")

    def run_one_trial(self) -> TrialState | None:
        """Ask, train, tell. None when the trial was not run: another worker had already taken
        the study's last place (it is recorded as surplus and hidden)."""
        study, options = self.study, self.options
        trial = study.ask()
        if "resumes" not in trial.user_attrs and self._claimed(study.get_trials(deepcopy=False), trial.number) >= options.trials:
            trial.set_user_attr("surplus", True)
            study.tell(trial, state=TrialState.FAIL)
            return None
        seed = trial.user_attrs.get("seed")
        seed = options.seed + trial.number if seed is None else seed
        for key, value in processes.owner().items():
            trial.set_user_attr(key, value)
        trial.set_user_attr("seed", seed)
        trial.set_user_attr("algorithm", options.algorithm)
        params = sample(self.space, trial)
        trial.set_user_attr("params", params)
        trial_dir = options.study_dir / "trials" / str(trial.number)
        resumes = trial.user_attrs.get("resumes")
        if resumes is not None:
            move_checkpoints(options.study_dir / "trials" / str(resumes), trial_dir)
            latest = CheckpointStore(trial_dir / "checkpoints").latest()
            where = f"after epoch {latest[1]['epoch'] + 1}" if latest else "from epoch 1 (it had no checkpoint yet)"
            self.display.note(f"Trial {trial.number} continues trial {resumes} {where}.")
        write_json_atomic(trial_dir / "params.json", params)
        write_json_atomic(
            trial_dir / "run.json",
            {"trial": trial.number, "seed": seed, "backend": BACKEND, "algorithm": options.algorithm, "resumes": resumes,
             "python": platform.python_version(), "optuna": optuna.__version__, **options.run_info},
        )
        reporter = OptunaReporter(trial, seed=seed, trial_dir=trial_dir, metric=self.spec.metric, listener=self.display.epoch_finished)
        self.display.trial_started(trial.number, params)
        self.write_leaderboard()  # shows it RUNNING
        error = ""
        try:
            with heartbeat(study._storage, trial._trial_id):  # noqa: SLF001
                metrics, trained = self.executor.run(self.objective, params, reporter, on_retry=self.display.note)
            if trained != params:
                trial.set_user_attr("params", trained)
                error = "out of memory at " + ", ".join(f"{k}={params[k]}" for k in params if trained[k] != params[k]) + "; trained with smaller"
            value = metrics.get(self.spec.metric)
            if value is None or not math.isfinite(value):
                raise TrialFailed(f"the objective returned no finite {self.spec.metric!r}: {metrics}")
            state = TrialState.COMPLETE
        except TrialPruned:
            if reporter.taken_over:
                self.display.note(f"Trial {trial.number} was taken over by another worker (its heartbeat looked stale): "
                                  f"left to it.")
                return None
            state, value = TrialState.PRUNED, None
        except KeyboardInterrupt:
            self._interrupted(trial, params, reporter)
            raise
        except UsageError as exc:
            trial.set_user_attr("bad_input", True)
            self._record(trial, reporter, TrialState.FAIL, None, str(exc))
            raise
        except TrialFailed as exc:  # recorded, and the search goes on
            state, value, error = TrialState.FAIL, None, str(exc)
        self._record(trial, reporter, state, value, error)
        return state

    def _record(self, trial: optuna.Trial, reporter: Reporter, state: TrialState, value: float | None, error: str) -> None:
        summary = summarise(reporter.history, self.spec.metric, self.spec.direction)
        trial.set_user_attr("summary", summary)
        measured = costs.read(reporter.trial_dir)  # in the storage too, for a report from the storage alone
        if measured:
            trial.set_user_attr("costs", measured)
        if error:
            trial.set_user_attr("error", error)
        self.study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
        start = trial.datetime_start
        duration = (datetime.datetime.now() - start).total_seconds() if start else 0.0
        self._refresh_best()
        shown = value if state == TrialState.COMPLETE else summary.get(self.spec.metric)
        self.display.trial_finished(trial.number, state.name, shown, duration, error)
        self.write_leaderboard()

    def _interrupted(self, trial: optuna.Trial, params: dict, reporter: Reporter) -> None:
        """Ctrl-C: record the trial as interrupted and queue it to continue from its last checkpoint."""
        trial.set_user_attr("requeued", True)
        trial.set_user_attr("error", "interrupted by the user; queued to continue from its last checkpoint")
        trial.set_user_attr("summary", summarise(reporter.history, self.spec.metric, self.spec.direction))
        self.study.enqueue_trial(params, user_attrs={"seed": reporter.seed, "resumes": trial.number})
        self.study.tell(trial, None, state=TrialState.FAIL)
        self.write_leaderboard()

    def _refresh_best(self) -> None:
        try:
            best = self.study.best_trial
        except ValueError:
            return
        self.display.set_best(best.value, best.number)

    def write_leaderboard(self) -> None:
        rows = rows_from_study(self.study, self.spec.metric, self.options.algorithm)
        frame = leaderboard.build(rows, self.spec.metric, self.space.names)
        leaderboard.write(frame, self.options.study_dir / "leaderboard.csv")
