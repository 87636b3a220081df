"""The Optuna engine: `ask`/`tell` over an Optuna storage, Optuna's samplers and pruners.

The study is its storage (a journal file under the study folder by default, any Optuna storage
URL otherwise), so running the same command again resumes it. A database storage gets heartbeats:
a trial whose machine went silent is found by its stale heartbeat and continued by another worker.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import socket
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import optuna
from optuna.storages._heartbeat import BaseHeartbeat, get_heartbeat_thread, is_heartbeat_enabled
from optuna.study import StudyDirection
from optuna.trial import TrialState as OptunaState

from search.engines.base import Engine, FirstTrial, Outcome, Ticket, Wait
from search.engines.choices import default_algorithm, default_pruner
from search.engines.optuna.algorithms import make_pruner, make_sampler
from search.engines.optuna.shadow import ShadowPruning
from search.engines.optuna.space import sample
from search.engines.optuna.storage import (
    GRACE_S,
    HEARTBEAT_S,
    JOURNAL_NAME,
    counts_toward_target,
    make_storage,
    rows_from_study,
    storage_patience,
)
from search.engines.patience import Patience, StorageDown
from search.execution import processes
from search.records.states import TrialState
from search.urls import mask_url

POLL_S = 2.0  # how often a worker waiting for other workers' trials looks again
# A trial whose heartbeat looks stale is declared dead only by a process that has reached the
# storage for this long without a break: after an outage every trial's heartbeat is old, and the
# live ones beat again within one interval of the storage coming back.
HEARD_S = 2 * HEARTBEAT_S
# How a leaderboard state is told: an infeasible trial is PRUNED for Optuna (its samplers learn the
# constraints only from complete and pruned trials), and flagged `infeasible` for the leaderboard.
FINAL = {
    TrialState.COMPLETE: OptunaState.COMPLETE,
    TrialState.PRUNED: OptunaState.PRUNED,
    TrialState.INFEASIBLE: OptunaState.PRUNED,
    TrialState.FAIL: OptunaState.FAIL,
}


@contextlib.contextmanager
def heartbeat(storage: optuna.storages.BaseStorage, trial_id: int) -> Iterator[None]:
    """The heartbeat thread Optuna's own `optimize` uses (a no-op for storages without them)."""
    thread = get_heartbeat_thread(trial_id, storage)
    thread.start()
    try:
        yield
    finally:
        thread.join()


class OptunaEngine(Engine):
    backend = "optuna"
    versions = {"optuna": optuna.__version__}

    def __init__(self, *args: Any):
        super().__init__(*args)
        optuna.logging.set_verbosity(logging.WARNING)
        self.study: optuna.Study | None = None
        self._storage: optuna.storages.BaseStorage | None = None
        self._sampler: optuna.samplers.BaseSampler | None = None
        self._sent: dict[
            int, set[int]
        ] = {}  # epochs reported per trial (a retry after out-of-memory reports them again)
        self._unsent: dict[int, dict[int, float]] = {}  # per trial, epochs reported while the storage was down
        self._patience: Patience | None = None  # a database storage's: how its calls wait out an outage
        self._shadows: dict[int, ShadowPruning] = {}  # a multi-objective study's pruning, per trial
        self._curves: dict[int, list[float | None]] = {}

    @property
    def opened(self) -> optuna.Study:
        """The study, once `stored_identity` found it or `start` created it."""
        if self.study is None:
            raise RuntimeError("the Optuna study is not open yet: the loop calls stored_identity() and start() first")
        return self.study

    @property
    def algorithm(self) -> str:
        return self.options.algorithm or default_algorithm(self.backend)

    def _pruner(self) -> optuna.pruners.BasePruner:
        return make_pruner(self.options.pruner or default_pruner(self.backend), self.options.max_resource)

    def stored_identity(self) -> Mapping[str, Any] | None:
        options = self.options
        if options.storage is not None:
            self._patience = storage_patience(options.storage, options.storage_patience_s, options.note)
        self._storage = make_storage(options.study_dir, options.storage, self._patience)
        summaries = {
            s.study_name: s.n_trials for s in optuna.get_all_study_summaries(self._storage, include_best_trial=False)
        }
        # A resumed run must not replay the first run's random draws, nor a worker another's.
        self._sampler = make_sampler(
            self.algorithm,
            (options.seed + summaries.get(options.study_name, 0) + 7919 * options.sampler_stream) % 2**32,
        )
        if options.study_name not in summaries:
            return None
        self.study = optuna.load_study(
            study_name=options.study_name,
            storage=self._storage,
            sampler=self._sampler,
            pruner=self._pruner(),
        )
        return {**self.study.user_attrs, "direction": self.study.directions[0].name.lower()}

    def start(self, identity: Mapping[str, Any], first: Sequence[FirstTrial]) -> None:
        settings = dict(self.options.settings)
        if self.study is not None:  # resumed: only the settings a joining worker reads may change
            if settings and self.study.user_attrs.get("settings") != settings:
                self.study.set_user_attr("settings", settings)
            return
        self.study = optuna.create_study(
            storage=self._storage,
            study_name=self.options.study_name,
            directions=[StudyDirection[direction.upper()] for direction in self.spec.all_objectives.values()],
            sampler=self._sampler,
            pruner=self._pruner(),
        )
        for key, value in {**identity, "settings": settings}.items():
            self.study.set_user_attr(key, value)
        for trial in first:  # queued trials run first, in order; a parameter left out is sampled
            self.study.enqueue_trial(dict(trial.params), user_attrs=dict(trial.attrs))

    def requeue_orphans(self) -> list[str]:
        """RUNNING trials whose process died (kill -9, a crash, a lost machine) are marked failed
        and their parameters queued again with the same seed, to continue from their checkpoint."""
        study = self.opened
        storage, here, notes = study._storage, socket.gethostname(), []  # noqa: SLF001 - no public API for another process's trial
        stale = (
            set(storage._get_stale_trial_ids(study._study_id))  # noqa: SLF001 - what fail_stale_trials uses
            if isinstance(storage, BaseHeartbeat) and is_heartbeat_enabled(storage)
            else set()
        )
        if self._patience is not None and self._patience.up_for() < HEARD_S:  # asked after the call: it may have waited
            stale = set()
        trials = study.get_trials(deepcopy=False)
        continued = {t.user_attrs.get("resumes") for t in trials}
        for frozen in (t for t in trials if t.state == OptunaState.RUNNING):
            attrs, trial_id = frozen.user_attrs, frozen._trial_id  # noqa: SLF001
            died_here = attrs.get(
                "host"
            ) == here and (  # this process's own RUNNING trial, seen here, is a previous life's
                attrs.get("pid") == os.getpid() or not processes.alive(attrs.get("pid"), attrs.get("pid_start"))
            )
            age = (datetime.datetime.now() - (frozen.datetime_start or datetime.datetime.now())).total_seconds()
            never_claimed = (
                attrs.get("pid") is None and age > GRACE_S
            )  # killed between ask and claim: nothing to continue
            if not (died_here or never_claimed or trial_id in stale):
                continue
            flags = (
                {"surplus": True}
                if never_claimed
                else {"requeued": True, "error": "its process died; queued to continue from its last checkpoint"}
            )
            try:  # of several workers finding the same orphan, only the one that ends it queues it again
                for key, value in flags.items():
                    storage.set_trial_user_attr(trial_id, key, value)
                storage.set_trial_state_values(trial_id, OptunaState.FAIL)
            except (RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
                continue
            if (
                never_claimed or frozen.number in continued
            ):  # nothing to continue, or already queued (a Ctrl-C cut short)
                continue
            study.enqueue_trial(
                attrs.get("params") or frozen.params, user_attrs={"seed": attrs.get("seed"), "resumes": frozen.number}
            )
            notes.append(
                f"Trial {frozen.number} was left running by a process that died: queued to continue from its last checkpoint."
            )
        return notes

    def finished(self) -> int:
        return sum(counts_toward_target(t) for t in self.opened.get_trials(deepcopy=False))

    def _claimed(self, trials: list[optuna.trial.FrozenTrial], before: int) -> int:
        """Places toward the target taken by trials numbered below `before`: counted finished
        ones, running ones, and queued ones (every queued trial will run)."""
        return sum(
            t.number < before and (counts_toward_target(t) or t.state in (OptunaState.RUNNING, OptunaState.WAITING))
            for t in trials
        )

    def ask(self) -> Ticket | Wait:
        study = self.opened
        trials, target = study.get_trials(deepcopy=False), self.options.trials
        if not any(t.state == OptunaState.WAITING for t in trials) and self._claimed(trials, len(trials)) >= target:
            # Other workers' trials will meet the target, unless one dies: then it is queued again here.
            return Wait(running=sum(t.state == OptunaState.RUNNING for t in trials), seconds=POLL_S)
        with warnings.catch_warnings():
            # "Heartbeat of storage is supposed to be used with Study.optimize": this loop is the
            # optimize loop here, and holds the heartbeat around training itself (`training`).
            warnings.filterwarnings("ignore", "Heartbeat of storage is supposed", UserWarning)
            trial = study.ask()
        if (
            "resumes" not in trial.user_attrs
            and self._claimed(study.get_trials(deepcopy=False), trial.number) >= target
        ):
            trial.set_user_attr("surplus", True)  # another worker took the last place first: hidden
            study.tell(trial, state=OptunaState.FAIL)
            return Wait(seconds=0.0)
        seed = trial.user_attrs.get("seed")
        seed = self.options.seed + trial.number if seed is None else seed
        for key, value in {**processes.owner(), "seed": seed, "algorithm": self.algorithm}.items():
            trial.set_user_attr(key, value)
        params = sample(self.space, trial)
        trial.set_user_attr("params", params)
        if self.spec.multi_objective and self.options.prune:
            self._shadows[trial.number] = ShadowPruning(study, self.spec.direction, self._pruner)
        return Ticket(trial.number, params, seed, resumes=trial.user_attrs.get("resumes"), handle=trial)

    def training(self, ticket: Ticket):
        return heartbeat(self.opened._storage, ticket.handle._trial_id)  # noqa: SLF001

    def report(self, ticket: Ticket, epoch: int, value: float, curve: list[float | None]) -> bool:
        if self.spec.multi_objective:  # Optuna takes no intermediate values here: leafsearch prunes
            self._curves[ticket.number] = list(curve)
            shadow = self._shadows.get(ticket.number)
            return shadow is not None and shadow.should_prune(epoch, value)
        sent = self._sent.setdefault(ticket.number, set())
        unsent = self._unsent.setdefault(ticket.number, {})
        if epoch not in sent:
            sent.add(epoch)
            unsent[epoch] = value
        try:
            with self._patience.at_once() if self._patience is not None else contextlib.nullcontext():
                self._deliver(ticket)
                return ticket.taken_over or ticket.handle.should_prune()
        except StorageDown:  # the trial trains on; its epochs go to the storage, and it is judged, when it is back
            return ticket.taken_over

    def _deliver(self, ticket: Ticket) -> None:
        """Send the trial's epochs the storage has not had yet, in order."""
        unsent = self._unsent.get(ticket.number, {})
        for epoch in sorted(unsent):
            try:
                ticket.handle.report(unsent[epoch], step=epoch)
            except optuna.exceptions.UpdateFinishedTrialError:
                ticket.taken_over = True  # another worker ended it in the storage (it thought us dead)
            del unsent[epoch]

    def tell(self, ticket: Ticket, outcome: Outcome) -> None:
        trial = ticket.handle
        if not self.spec.multi_objective:
            self._deliver(ticket)  # epochs reported during an outage: the study keeps the whole curve
        self._unsent.pop(ticket.number, None)
        attrs: dict[str, Any] = {
            "summary": dict(outcome.summary),
            "params": dict(outcome.params),
            "costs": outcome.costs or None,
            "error": outcome.error or None,
        }
        if outcome.state == TrialState.INTERRUPTED:  # queued to continue from its last checkpoint
            attrs["requeued"] = True
            self.opened.enqueue_trial(ticket.params, user_attrs={"seed": ticket.seed, "resumes": ticket.number})
        elif outcome.state == TrialState.BAD_INPUT:  # not counted: the user fixes the input and runs again
            attrs["bad_input"] = True
        elif outcome.state == TrialState.INFEASIBLE:
            attrs["infeasible"] = True
        values, state = self._values(outcome)
        if self.spec.multi_objective:
            curve = self._curves.pop(ticket.number, [])
            attrs["curve"] = {str(epoch): v for epoch, v in enumerate(curve) if v is not None} or None
            if outcome.state == TrialState.COMPLETE and values is None:
                state, attrs["error"] = (
                    OptunaState.FAIL,
                    f"an objective was not measured ({', '.join(self.spec.objectives)}: {outcome.costs})",
                )
        for key, value in attrs.items():
            if value is not None:
                trial.set_user_attr(key, value)
        for name, bound in self.spec.constraints.items():  # <= 0: feasible; the samplers learn from these
            cost = (outcome.costs or {}).get(name)
            trial.set_constraint(name, float(cost) - bound if isinstance(cost, (int, float)) else 0.0)
        self.opened.tell(trial, values, state=state)

    def _values(self, outcome: Outcome) -> tuple[list[float] | float | None, OptunaState]:
        """What Optuna is told: the metric, then the cost objectives (None where one is missing)."""
        state = FINAL.get(outcome.state, OptunaState.FAIL)
        if state != OptunaState.COMPLETE:
            return None, state
        if not self.spec.multi_objective:
            return outcome.value, state
        costs = outcome.costs or {}
        values = [outcome.value, *(costs.get(name) for name in self.spec.objectives)]
        measured = [float(v) for v in values if v is not None]
        return (measured if len(measured) == len(values) else None), state

    def rows(self) -> list[dict[str, Any]]:
        return rows_from_study(self.opened, self.spec.metric, self.algorithm)

    def describe(self) -> str:
        return super().describe() + (
            f", {len(self.spec.all_objectives)} objectives" if self.spec.multi_objective else ""
        )

    def storage(self) -> str:
        return mask_url(self.options.storage) or JOURNAL_NAME
