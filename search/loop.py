"""THE study loop, once for every engine: run trials until the study has its target of finished
ones, the way Optuna's own `_optimize` loop drives any sampler.

What it owns: the target count (`--trials` is the study's total, so running again resumes), the
first trials of a new study (a warm start's, then the baseline: the space's defaults), continuing
interrupted trials from their checkpoints, failures in a row, the timeout, the resume identity, `study.json`, each trial's folder
(`params.json`, `run.json`), the leaderboard and the display. What an engine does differently is
its adapter's (search/engines/), behind the protocol of search/engines/base.py.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import time
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from search.engines import Engine, default_algorithm, engine_class, make_engine
from search.engines.base import FirstTrial, Outcome, Stop, Ticket, Wait
from search.errors import SearchAborted, TrialFailed, UsageError
from search.execution.executor import TrialExecutor
from search.execution.outcomes import state_of
from search.execution.workers import WorkerPool
from search.options import RunOptions, WarmStart
from search.records import costs, leaderboard, trial_files
from search.records.checkpoints import CheckpointStore, copy_checkpoints, move_checkpoints
from search.records.files import read_json, write_json_atomic
from search.records.states import TrialState
from search.report.display import Display
from search.reporter import Reporter, summarise
from search.space import Space
from search.study import Study

Objective = Callable[[dict, Reporter], Mapping[str, float]]


class EngineReporter(Reporter):
    """The objective's reporter in the study process: every finite epoch value goes to the engine,
    whose answer is what `should_prune` says next."""

    def __init__(self, engine: Engine, ticket: Ticket, **kwargs: Any):
        super().__init__(trial_number=ticket.number, seed=ticket.seed, epoch_budget=ticket.epoch_budget, **kwargs)
        self.engine = engine
        self.ticket = ticket
        self.curve: list[float | None] = []  # the metric by epoch, across phases
        self._prune = False

    def _send(self, epoch: int, value: float) -> None:
        self.curve.extend([None] * (epoch + 1 - len(self.curve)))
        self.curve[epoch] = value
        self._prune = self.engine.report(self.ticket, epoch, value, self.curve[: epoch + 1])

    def restore(self, history: list[dict[str, float]]) -> None:
        self.curve = []
        super().restore(history)

    def should_prune(self) -> bool:
        return self.ticket.taken_over or self._prune


# What a study stored before it could have these keys meant their empty value.
IDENTITY_DEFAULTS: dict[str, Any] = {"objectives": {}, "constraints": {}}


def identity_differences(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What differs between two studies' identities, named for the user."""
    out = []
    for key, value in current.items():
        old = stored.get(key, IDENTITY_DEFAULTS.get(key))
        if old == value:
            continue
        if key == "space" and isinstance(old, dict):
            changed = [n for n in value if n in old and old[n] != value[n]]
            added = [n for n in value if n not in old]
            removed = [n for n in old if n not in value]
            parts = [
                f"{label} {', '.join(names)}"
                for label, names in (("changed", changed), ("added", added), ("removed", removed))
                if names
            ]
            out.append("space " + "; ".join(parts))
        else:
            out.append(f"{key} {old!r} -> {value!r}")
    return out


class StudyLoop:
    """`open()` checks and opens the study (read only until it is known to match); `run()` runs
    trials until the target, the timeout, or too many failures in a row."""

    def __init__(
        self,
        space: Space,
        spec: Study,
        objective: Objective,
        options: RunOptions,
        display: Display,
        engine: Engine | None = None,
    ):
        if options.algorithm is None:
            options = dataclasses.replace(options, algorithm=default_algorithm(options.backend))
        if options.note is None:  # the engine's word on a storage outage goes where the study's lines go
            options = dataclasses.replace(options, note=display.note)
        self.space, self.spec, self.objective, self.options, self.display = space, spec, objective, options, display
        self.engine = engine or make_engine(space, spec, options)
        self.best: dict[str, Any] | None = None  # {"trial", "value", "params"} of the best complete trial
        self._opened = False

    # -- opening
    def identity(self) -> dict[str, Any]:
        """What must match for a run to continue a stored study."""
        return {
            "metric": self.spec.metric,
            "direction": self.spec.direction,
            "pipeline": self.spec.pipeline,
            "objectives": dict(self.spec.objectives),
            "constraints": dict(self.spec.constraints),
            "space": self.space.to_dict(),
            **self.options.identity,
            **self.engine.extra_identity(),
        }

    def open(self) -> None:
        options, engine = self.options, self.engine
        engine.check_options()
        stored_backend = (read_json(options.study_dir / "study.json", {}) or {}).get("backend", engine.backend)
        if options.storage is None and stored_backend != engine.backend:
            raise UsageError(
                f"study {options.study_name!r} was run with the {stored_backend} backend; "
                f"pass --backend {stored_backend}, or a new --study NAME"
            )
        identity = self.identity()
        stored = engine.stored_identity()
        differences = identity_differences(stored, identity) if stored is not None else []
        if differences:
            raise UsageError(
                f"study {options.study_name!r} was run with a different setup ({'; '.join(differences)}): "
                f"its trials would not be comparable; pass a new --study NAME, or undo the change to resume"
            )
        created = stored is None
        warm = options.warm_start if created else None
        # Where the study was warm-started from: kept with its identity, never compared (a resume
        # with or without --warm-start continues it).
        origin = (stored or {}).get("warm_start") or (self._warm_record(warm) if warm and warm.trials else None)
        engine.start({**identity, **({"warm_start": origin} if origin else {})}, self.first_trials(warm))
        self._requeue_orphans()
        write_json_atomic(
            options.study_dir / "study.json",
            {
                "study": options.study_name,
                "metric": self.spec.metric,
                "direction": self.spec.direction,
                "pipeline": self.spec.pipeline,
                "backend": engine.backend,
                "algorithm": options.algorithm,
                "pruner": options.pruner,
                "storage": engine.storage(),
                "params": self.space.names,
                "objectives": dict(self.spec.objectives),
                "constraints": dict(self.spec.constraints),
                **({"warm_start": origin} if origin else {}),
            },
        )
        self._opened = True
        if warm is not None and warm.note:
            self.display.note(warm.note[0].upper() + warm.note[1:] + ".")
        elif options.warm_start is not None and not created and options.worker_index == 0:
            self.display.note(
                f"--warm-start {options.warm_start.source}: study {options.study_name!r} exists, so it resumes; "
                f"a warm start queues its trials only when a study is created."
            )

    def first_trials(self, warm: WarmStart | None) -> list[FirstTrial]:
        """What a new study runs first: a warm start's trials, then the baseline (the space's
        defaults, unless a parameter has none or it is one of those trials)."""
        first = (
            [
                FirstTrial(dict(params), {"warm_start": f"{warm.source} trial {number}"})
                for number, params in warm.trials
            ]
            if warm is not None
            else []
        )
        baseline = self.space.defaults()
        if baseline and None not in baseline.values() and all(trial.params != baseline for trial in first):
            first.append(FirstTrial(baseline, {"baseline": True}))
        return first

    @staticmethod
    def _warm_record(warm: WarmStart) -> dict[str, Any]:
        """What study.json (and the engine's storage) keep of a warm start, for `report`."""
        return {"study": warm.source, "trials": [number for number, _ in warm.trials]}

    # -- running
    def run(self) -> dict[str, Any] | None:
        """Returns the best complete trial ({"trial", "value", "params"}), or None."""
        if not self._opened:
            self.open()
        options, engine = self.options, self.engine
        storage = engine.storage()
        self.write_leaderboard()  # and the compute spent so far, for the first line
        self.display.study_started(
            options.study_name,
            engine.finished(),
            options.trials,
            engine.describe(),
            storage if "://" in storage else str(options.study_dir / storage),
        )
        if engine.serve(self.display.note):
            self.write_leaderboard()
            return self.best
        executor = TrialExecutor(isolate=not options.in_process, preload=options.preload)
        try:
            self._loop(executor)
        finally:
            executor.close()
        self.write_leaderboard()  # with what other workers finished meanwhile
        return self.best

    def _loop(self, executor: TrialExecutor) -> None:
        options, engine = self.options, self.engine
        started = time.monotonic()
        failures_in_a_row, waiting_noted = 0, False
        while True:
            self._requeue_orphans()
            if engine.target_met():
                return
            if options.timeout_s is not None and time.monotonic() - started >= options.timeout_s:
                self.display.note(
                    f"Timeout of {options.timeout_s:.0f}s reached: no new trial started; run again to continue."
                )
                return
            ticket = engine.ask()
            if isinstance(ticket, Stop):
                if ticket.reason and engine.finished() < options.trials:
                    self.display.note(ticket.reason)
                return
            if isinstance(ticket, Wait):
                if ticket.running and not waiting_noted:
                    self.display.note(f"Waiting for {ticket.running} trial(s) running in other workers to finish.")
                    waiting_noted = True
                time.sleep(ticket.seconds)
                continue
            waiting_noted = False
            state = self.run_trial(ticket, executor)
            if state is None:  # another worker took it over
                continue
            if state != TrialState.INFEASIBLE:  # a model too costly to deploy is the search's answer, not a failure
                failures_in_a_row = failures_in_a_row + 1 if state == TrialState.FAIL else 0
            if failures_in_a_row >= options.max_consecutive_failures:
                raise SearchAborted(
                    f"{failures_in_a_row} trials failed in a row; the last error is in the leaderboard "
                    f"({options.study_dir / 'leaderboard.csv'}). Fix the cause and run again to resume."
                )

    def _requeue_orphans(self) -> None:
        for note in self.engine.requeue_orphans():
            self.display.note(note)

    def run_trial(self, ticket: Ticket, executor: TrialExecutor) -> TrialState | None:
        """Prepare the trial's folder, train it through the executor, tell the engine. Returns the
        leaderboard state, or None when another worker took the trial over."""
        options, metric = self.options, self.spec.metric
        folder = trial_files.trial_dir(options.study_dir, ticket.number)
        self._take_checkpoints(ticket, folder)
        params = dict(ticket.params)
        write_json_atomic(folder / trial_files.PARAMS, params)
        info = {
            "trial": ticket.number,
            "seed": ticket.seed,
            "backend": self.engine.backend,
            "algorithm": options.algorithm,
            **ticket.info,
            "resumed_from": ticket.resumes if ticket.resumes is not None else ticket.extends,
            "python": platform.python_version(),
            **self.engine.versions,
            **options.run_info,
        }
        write_json_atomic(folder / trial_files.RUN, info)
        reporter = EngineReporter(
            self.engine, ticket, trial_dir=folder, metric=metric, listener=self.display.epoch_finished
        )
        reporter.constraints = dict(self.spec.constraints)
        reporter.costs_first = bool(self.spec.constraints or self.spec.objectives)
        self.display.trial_started(ticket.number, params)
        self.write_leaderboard()  # shows it RUNNING
        started = time.monotonic()
        trained, value, error = params, None, ""
        try:
            with self.engine.training(ticket):
                metrics, trained = executor.run(self.objective, params, reporter, on_retry=self.display.note)
            if trained != params:
                error = (
                    "out of memory at "
                    + ", ".join(f"{k}={params[k]}" for k in params if trained[k] != params[k])
                    + "; trained with smaller"
                )
            value = metrics.get(metric)
            if value is None or not math.isfinite(value):
                raise TrialFailed(f"the objective returned no finite {metric!r}: {metrics}")
            state = TrialState.COMPLETE
        except BaseException as exc:
            ended = state_of(exc)  # the outcome table (search/execution/outcomes.py)
            if ended is None:  # no way for a trial to end: a bug, raised as it is
                raise
            state = ended
            if state == TrialState.PRUNED and ticket.taken_over:
                self.display.note(
                    f"Trial {ticket.number} was taken over by another worker (its heartbeat looked stale): left to it."
                )
                return None
            if state == TrialState.PRUNED:
                value = summarise(reporter.history, metric, self.spec.direction).get(metric)
            else:
                value, error = None, self._reason(state, exc)
            if state in (TrialState.INTERRUPTED, TrialState.BAD_INPUT):  # left open for the next run; the search stops
                self._end(ticket, reporter, info, state, value, trained, started, error)
                raise
        self._end(ticket, reporter, info, state, value, trained, started, error)
        return state

    @staticmethod
    def _reason(state: TrialState, exc: BaseException) -> str:
        """The `error` recorded of a trial that ended with `exc` (and was not pruned)."""
        if state == TrialState.INTERRUPTED:
            return "interrupted by the user; continues from its last checkpoint when the study is resumed"
        if state == TrialState.FAIL:
            return str(exc).strip() or "failed"
        return str(exc)  # INFEASIBLE: the bound it broke; BAD_INPUT: what to fix

    def _take_checkpoints(self, ticket: Ticket, folder) -> None:
        """A trial that continues another starts from its checkpoints: moved from an interrupted
        trial queued again under a new number, copied from the trial Hyperband extends."""
        study_dir = self.options.study_dir
        if ticket.resumes is not None and ticket.resumes != ticket.number:
            move_checkpoints(trial_files.trial_dir(study_dir, ticket.resumes), folder)
            latest = CheckpointStore(folder / "checkpoints").latest()
            where = f"after epoch {latest[1]['epoch'] + 1}" if latest else "from epoch 1 (it had no checkpoint yet)"
            self.display.note(f"Trial {ticket.number} continues trial {ticket.resumes} {where}.")
        elif ticket.resumes is not None:
            self.display.note(
                f"Trial {ticket.number} was stopped before it finished: it runs again from its last checkpoint."
            )
        if ticket.extends is not None:
            if not any((folder / "checkpoints").glob("*")):  # not over its own, when it runs again
                copy_checkpoints(trial_files.trial_dir(study_dir, ticket.extends), folder)
            self.display.note(
                f"Trial {ticket.number} continues trial {ticket.extends} "
                f"(from epoch {ticket.info.get('initial_epoch', 0)} to {ticket.epoch_budget})."
            )

    def _end(
        self,
        ticket: Ticket,
        reporter: Reporter,
        info: dict,
        state: TrialState,
        value: float | None,
        trained: Mapping[str, Any],
        started: float,
        error: str,
    ) -> None:
        duration = time.monotonic() - started
        if trained != ticket.params:
            write_json_atomic(reporter.trial_dir / trial_files.PARAMS, dict(trained))
        shown_state = state.shown
        write_json_atomic(
            reporter.trial_dir / trial_files.RUN,
            {**info, "state": shown_state, "duration_s": round(duration, 2), "error": error},
        )
        summary = summarise(reporter.history, self.spec.metric, self.spec.direction)
        self.engine.tell(ticket, Outcome(state, value, summary, dict(trained), error, costs.read(reporter.trial_dir)))
        self.write_leaderboard()  # and the best so far, for the line below
        if state != TrialState.INTERRUPTED:
            self.display.trial_finished(
                ticket.number,
                shown_state,
                value if value is not None else summary.get(self.spec.metric),
                duration,
                error,
            )

    def write_leaderboard(self) -> None:
        rows = self.engine.rows()
        frame = leaderboard.build(rows, self.spec.metric, self.space.names, self.spec.all_objectives)
        leaderboard.write(frame, self.options.study_dir / "leaderboard.csv")
        durations = pd.to_numeric(frame["duration_s"], errors="coerce").dropna()
        self.display.set_budget(self.engine.finished(), self.options.trials, float(durations.sum()), len(durations))
        best = leaderboard.best_trial(frame, self.spec.metric, self.spec.direction)
        if best is not None:
            params = next(
                row["params"] for row in rows if row["trial"] == best["trial"]
            )  # as trained, not as the CSV types them
            self.best = {"trial": int(best["trial"]), "value": float(best[self.spec.metric]), "params": params}
            self.display.set_best(self.best["value"], self.best["trial"])


def run_study(
    space: Space, spec: Study, objective: Objective, options: RunOptions, display: Display
) -> dict[str, Any] | None:
    """Run (or resume) a study to its target; returns its best complete trial, or None."""
    return StudyLoop(space, spec, objective, options, display).run()


def run_with_workers(
    space: Space,
    spec: Study,
    objective: Objective,
    options: RunOptions,
    display: Display,
    command: list[str],
    count: int,
    env: Callable[[int], Mapping[str, str]],
) -> tuple[dict[str, Any] | None, list[int]]:
    """`--workers N`: `command` (this run's command line without --workers) run as more workers
    of the same study, each with `env(index)` added. Returns the best trial and the exit codes of
    the workers that failed (their trials were continued by the others)."""
    plan = engine_class(options.backend).local_workers(count)
    os.environ.update(plan.env_here)
    loop = StudyLoop(space, spec, objective, options, display)
    if plan.here_trains:
        loop.open()  # created (or checked) once, before any worker starts
        display.prefix = "worker 0 | "
    pool = WorkerPool(command, lambda index: {**env(index), **plan.env(index)}, os.environ)
    pool.start_all(plan.indices)
    try:
        if plan.here_trains:
            loop.run()
        else:
            pool.supervise(loop.run, display.note)
    except BaseException:
        pool.interrupted()
        raise
    return loop.best, [code for code in pool.wait() if code != 0]
