"""The KerasTuner engine: one of its oracles decides, through `create_trial` / `update_trial` /
`end_trial`, the calls its chief/worker client speaks too (no Tuner loop is subclassed).

Storage is KerasTuner's project folder, `<study>/kerastuner/`: the oracle reloads it to resume.
`--trials` is the oracle's `max_trials` (Hyperband's too, whose brackets otherwise decide how many
trials run), so a higher target adds only the missing trials. A trial left running (Ctrl-C, a
crash) is the oracle's ongoing trial: reloaded, it is handed out again first, with its number,
seed and folder, so it continues from its checkpoint. Trial numbers are KerasTuner's trial ids
(the count of trials so far, zero-padded) as integers. KerasTuner's RandomSearch and
BayesianOptimization take no intermediate values, so this adapter applies the study's pruning rule
itself, looked up by its name (search.engines.rules: the median rule, the learning-curve rule).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from typing import Any

import keras_tuner
from keras_tuner.engine.trial import TrialStatus

from search.engines.base import Engine, FirstTrial, LocalWorkers, Outcome, Stop, Ticket, Wait
from search.engines.choices import KERASTUNER_IDENTITY as IDENTITY_NAME
from search.engines.choices import KERASTUNER_PROJECT as PROJECT_NAME
from search.engines.choices import default_algorithm, default_pruner
from search.engines.kerastuner.oracles import hyperband_budget, make_oracle
from search.engines.kerastuner.space import declare, encode_values, sample
from search.engines.pruning import PruningRule, Reference, curve_of
from search.engines.rules import pruning_rule
from search.errors import UsageError
from search.execution.workers import free_port
from search.records import costs, leaderboard, trial_files
from search.records.files import read_json, write_json_atomic
from search.records.states import TrialState
from search.reporter import summarise

# KerasTuner's distributed mode: a chief serves the oracle over gRPC, workers train and ask it
# for trials. These environment variables select the role (keras_tuner/src/distribute/utils.py).
TUNER_ID, ORACLE_IP, ORACLE_PORT = "KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"
LOCAL_CHIEF = "LEAFSEARCH_KERASTUNER_LOCAL_CHIEF"  # set by `--workers N`: the chief starts (and outlives) its workers
_STATES = {
    TrialStatus.COMPLETED: TrialState.COMPLETE,
    TrialStatus.RUNNING: TrialState.RUNNING,
    TrialStatus.FAILED: TrialState.FAIL,
    TrialStatus.INVALID: TrialState.FAIL,
}
_FINISHED = (TrialStatus.COMPLETED, TrialStatus.FAILED, TrialStatus.INVALID)


def distributed_role() -> str:
    """ "chief", "worker", or "alone" (no KerasTuner distributed mode)."""
    if ORACLE_IP not in os.environ:
        return "alone"
    return "chief" if "chief" in os.environ.get(TUNER_ID, "") else "worker"


def folder_row(
    folder,
    metric: str,
    direction: str,
    algorithm: str,
    state: TrialState | None = None,
    value: float | None = None,
    error: str = "",
    params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A leaderboard row from a trial folder (the loop's run.json, the summary of history.json)."""
    info = trial_files.read(folder, trial_files.RUN, {}) or {}
    summary = summarise(trial_files.read(folder, trial_files.HISTORY, []) or [], metric, direction)
    return leaderboard.row(
        int(folder.name),
        state or TrialState(info.get("state", TrialState.RUNNING)),
        value,
        summary,
        metric=metric,
        duration_s=info.get("duration_s"),
        backend="kerastuner",
        algorithm=info.get("algorithm", algorithm),
        resumed_from=info.get("resumed_from"),
        error=error or info.get("error") or "",
        params=(trial_files.read(folder, trial_files.PARAMS, {}) or {}) if params is None else params,
        costs=costs.read(folder),
    )


class KerasTunerEngine(Engine):
    backend = "kerastuner"
    versions = {"keras_tuner": keras_tuner.__version__}

    def __init__(self, *args: Any):
        super().__init__(*args)
        self.role = distributed_role()
        self.max_epochs = self.options.max_resource or self.spec.max_epochs  # Hyperband's max_epochs
        self.tuner_id = os.environ.get(TUNER_ID, "tuner0")
        self.oracle: keras_tuner.Oracle | None = None
        self.client: Any = None  # the oracle, or on a worker its gRPC client
        self._reference = Reference(
            self.spec.direction
        )  # what the pruning rule weighs a trial against, as of its ask()

    @property
    def study_dir(self):
        return self.options.study_dir

    @property
    def algorithm(self) -> str:
        return self.options.algorithm or default_algorithm(self.backend)

    @property
    def pruner(self) -> str:
        return self.options.pruner or default_pruner(self.backend)

    @property
    def opened(self) -> keras_tuner.Oracle:
        """The oracle, once `start` made it (on a worker: the chief's, seen through `client`)."""
        if self.oracle is None:
            raise RuntimeError("the KerasTuner oracle is not made yet: the loop calls start() first")
        return self.oracle

    @functools.cached_property
    def rule(self) -> PruningRule:
        """The study's pruning rule (its name was checked with the other options)."""
        return pruning_rule(self.pruner)

    @property
    def project_dir(self):
        return self.study_dir / PROJECT_NAME

    def extra_identity(self) -> dict[str, Any]:
        """Each oracle keeps its own state, and Hyperband's budgets follow from its max_epochs."""
        extra: dict[str, Any] = {"algorithm": self.options.algorithm}
        if self.options.algorithm == "hyperband":
            extra["hyperband_max_epochs"] = self.max_epochs
        return extra

    def stored_identity(self) -> Mapping[str, Any] | None:
        stored = read_json(self.project_dir / IDENTITY_NAME)
        if stored is None and (self.project_dir / "oracle.json").exists():
            raise UsageError(
                f"{self.project_dir} holds a KerasTuner project leafsearch did not make; pass a new --study NAME"
            )
        return stored

    def start(self, identity: Mapping[str, Any], first: Sequence[FirstTrial]) -> None:
        hp = declare(self.space, keras_tuner.HyperParameters())
        oracle = make_oracle(
            self.algorithm, self.spec.metric, self.spec.direction, hp, self.options.seed, self.max_epochs
        )
        oracle.first = [
            encode_values(self.space, trial.params) for trial in first
        ]  # a resumed oracle reloads what is left
        # What Tuner.__init__ does with its directory; KerasTuner has no public call for an oracle alone.
        oracle._set_project_dir(str(self.study_dir), PROJECT_NAME)  # noqa: SLF001
        resuming = (self.project_dir / "oracle.json").exists()
        # A chief restarted while its workers (started on their own) go on keeps their trials for them.
        oracle.keep_ongoing = self.role == "chief" and not os.environ.get(LOCAL_CHIEF)
        if resuming and self.role != "worker":  # a worker's oracle is the chief's
            oracle.reload()  # its ongoing trials go to the front of its retry queue
        oracle.max_trials = self.options.trials
        oracle.verbose = 0  # KerasTuner's own trial tables; the study's display reports
        if not resuming:
            write_json_atomic(self.project_dir / IDENTITY_NAME, dict(identity))
        if self.role != "worker":
            oracle.save()  # so that a run stopped inside its first trial reloads this project
        self.oracle = oracle
        if self.role == "worker":
            from search.engines.kerastuner.client import chief_patience, patient_client

            self.client = patient_client(oracle, chief_patience(self.options.storage_patience_s, self.options.note))
        else:
            self.client = oracle

    def finished(self) -> int:
        if self.role == "worker":
            return sum(row["state"] != TrialState.RUNNING for row in self.rows())
        return sum(t.status in _FINISHED for t in self.opened.trials.values())

    def target_met(self) -> bool:
        """A worker asks the chief until it answers STOPPED: the chief counts, and waits for every
        worker it has seen to hear that answer before it stops serving."""
        return self.role != "worker" and super().target_met()

    def ask(self) -> Ticket | Wait | Stop:
        trial = self.client.create_trial(self.tuner_id)
        if trial.status == TrialStatus.STOPPED:
            return Stop(
                "KerasTuner's oracle stopped before the target: it found no untried values in the space."
                if self.role == "alone"
                else ""
            )
        if trial.status == TrialStatus.IDLE:  # Hyperband waits for other workers' trials of its bracket
            return Wait(seconds=1.0)
        number = int(trial.trial_id)
        budget = hyperband_budget(trial.hyperparameters)
        rerun = (trial_files.trial_dir(self.study_dir, number) / trial_files.RUN).exists()
        if self.options.prune:
            self._reference = self.reference()
        return Ticket(
            number,
            sample(self.space, trial.hyperparameters),
            self.options.seed + number,
            resumes=number if rerun else None,
            extends=budget.get("extends_trial"),
            epoch_budget=budget.get("epoch_budget"),
            info=budget,
            handle=trial,
        )

    def reference(self) -> Reference:
        """The study so far, for the pruning rule: the completed trials' curves, and the best value
        any finished trial reached (pruned ones too)."""
        rows = [row for row in self.rows() if row["state"] in (TrialState.COMPLETE, TrialState.PRUNED)]
        curves = {
            row["trial"]: curve_of(
                trial_files.read(trial_files.trial_dir(self.study_dir, row["trial"]), trial_files.HISTORY, []) or [],
                self.spec.metric,
            )
            for row in rows
        }
        reached = [v for curve in curves.values() for v in curve if v is not None]
        pick = max if self.spec.direction == "maximize" else min
        return Reference(
            self.spec.direction,
            [curves[row["trial"]] for row in rows if row["state"] == TrialState.COMPLETE],
            pick(reached) if reached else None,
        )

    def report(self, ticket: Ticket, epoch: int, value: float, curve: list[float | None]) -> bool:
        horizon = (
            ticket.epoch_budget or self.max_epochs
        )  # Hyperband's budget for this trial, or the most epochs a trial
        return self.rule.should_prune(curve, horizon, self._reference)

    def tell(self, ticket: Ticket, outcome: Outcome) -> None:
        if outcome.state in (
            TrialState.INTERRUPTED,
            TrialState.BAD_INPUT,
        ):  # left ongoing: the next run hands it out again first
            return
        trial = ticket.handle
        if outcome.state == TrialState.FAIL or outcome.value is None:
            trial.status = TrialStatus.FAILED
            trial.message = outcome.error or "pruned before its first finite value: nothing to score"
        else:
            # A pruned trial is COMPLETED for KerasTuner, scored by its best value so far: it has no
            # pruned state, and a failure would teach Bayesian optimisation nothing about a region
            # that is measurably bad. Under Hyperband it competes for promotion with that value.
            self.client.update_trial(trial.trial_id, {self.spec.metric: float(outcome.value)})
            trial.status = TrialStatus.COMPLETED
        self.client.end_trial(trial)
        if self.role != "worker":
            self.opened.save()  # again: end_trial saves before it lets go of the ongoing trial (as Tuner.on_trial_end does)

    def rows(self) -> list[dict[str, Any]]:
        """The oracle's trials with what the loop wrote into their folders; a distributed worker,
        whose oracle is the chief's, reads the (shared) trial folders alone."""
        metric, direction, algorithm = self.spec.metric, self.spec.direction, self.algorithm
        if self.role == "worker":
            return [folder_row(f, metric, direction, algorithm) for f in trial_files.numbered(self.study_dir)]
        rows = []
        for trial in self.opened.trials.values():
            folder = trial_files.trial_dir(self.study_dir, int(trial.trial_id))
            info = trial_files.read(folder, trial_files.RUN, {}) or {}
            state = TrialState(info["state"]) if info.get("state") else _STATES.get(trial.status, TrialState.FAIL)
            value = trial.score if state == TrialState.COMPLETE and trial.score is not None else None
            rows.append(
                folder_row(
                    folder,
                    metric,
                    direction,
                    algorithm,
                    state=state,
                    value=value,
                    error=info.get("error") or "",
                    params=sample(self.space, trial.hyperparameters),
                )
            )
        return rows

    def describe(self) -> str:
        engine = f"kerastuner/{self.algorithm}"
        if self.algorithm == "hyperband":
            engine += f", up to {self.max_epochs} epochs a trial"
        return engine + {"none": ", no pruning", "curve": ", curve pruning"}.get(self.pruner, "")

    def storage(self) -> str:
        return PROJECT_NAME

    @classmethod
    def local_workers(cls, count: int) -> LocalWorkers:
        """KerasTuner's own distributed mode: this process is the chief (it serves the oracle over
        gRPC on the loopback interface and trains nothing); `count` workers ask it for trials."""
        server = {ORACLE_IP: "127.0.0.1", ORACLE_PORT: str(free_port())}
        return LocalWorkers(
            range(1, count + 1),
            False,
            {**server, TUNER_ID: "chief", LOCAL_CHIEF: "1"},
            lambda index: {**server, TUNER_ID: f"tuner{index}"},
        )

    def serve(self, note) -> bool:
        if self.role != "chief":
            return False
        note(
            f"KerasTuner chief: serving the oracle on {os.environ[ORACLE_IP]}:{os.environ.get(ORACLE_PORT)} "
            f"until the workers have finished {self.options.trials} trials."
        )
        from keras_tuner.src.distribute import oracle_chief

        oracle_chief.start_server(self.oracle)  # returns once every worker was told to stop
        return True
