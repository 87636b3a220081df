"""The narrow protocol between the study loop and a search engine (Optuna, KerasTuner).

The loop (search/loop.py) owns everything both engines share; an adapter only translates. What
it must implement (the abstract methods of `Engine`), in the order the loop calls them:
- `stored_identity()`: the stored study's identity, or None (reads only: the loop compares it);
- `start(identity, first)`: create the study (with the trials to run first: a warm start's, the
  baseline) or open it to resume;
- `ask()` a trial's ticket (number, parameters, seed), or Wait, or Stop;
- `report(ticket, epoch, value, curve)` an epoch, and hear whether to prune;
- `tell(ticket, outcome)` how the trial ended;
- `finished()`: the finished trials that count toward the target;
- `rows()`: the leaderboard rows as the engine's storage knows them.
Everything else is a hook with a default that an engine overrides where it differs (as Optuna's
`BaseSampler` has a few abstract methods and no-op hooks): `check_options`, `extra_identity`,
`requeue_orphans`, `target_met`, `training`, `describe`, `storage`, and for `--workers N`
`local_workers` and `serve`.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from search.engines import choices
from search.options import RunOptions
from search.records.states import TrialState
from search.space import Space
from search.study import Study


@dataclasses.dataclass
class Ticket:
    """One trial as the engine hands it out."""

    number: int
    params: dict[str, Any]
    seed: int
    resumes: int | None = None  # an interrupted trial whose checkpoints this one takes over (moved)
    extends: int | None = None  # Hyperband: the trial whose checkpoints this one starts from (copied)
    epoch_budget: int | None = None  # the epochs (across phases) the engine lets this trial reach
    info: dict[str, Any] = dataclasses.field(default_factory=dict)  # engine facts for run.json
    handle: Any = None  # the engine's own trial object
    taken_over: bool = False  # another worker ended this trial in the storage meanwhile


@dataclasses.dataclass(frozen=True)
class FirstTrial:
    """A trial a new study runs before the engine's own choices: the baseline (the space's
    defaults) or a warm start's. `params` may leave out a parameter: the engine draws it."""

    params: Mapping[str, Any]
    attrs: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # what the storage records of its origin


@dataclasses.dataclass(frozen=True)
class Wait:
    """ask(): no trial for now (other workers' running trials will meet the target); ask again."""

    running: int | None = None  # how many trials other workers are running, where known
    seconds: float = 2.0


@dataclasses.dataclass(frozen=True)
class Stop:
    """ask(): the engine ends the search; `reason` says why when the target is not met."""

    reason: str = ""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a trial ended, as the loop tells the engine."""

    state: TrialState  # one of the outcome table's (search/execution/outcomes.py), or COMPLETE
    value: float | None  # the engine's score: the metric of a COMPLETE trial, the best so far of a PRUNED one
    summary: Mapping[str, Any]  # the best epoch's metrics (reporter.summarise)
    params: Mapping[str, Any]  # the parameters trained (smaller batch after an out-of-memory retry)
    error: str = ""
    costs: Mapping[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class LocalWorkers:
    """How `--workers N` spreads one study over processes of this machine."""

    indices: range  # the worker processes to start besides this one
    here_trains: bool  # this process trains too (worker 0); False: it serves the workers
    env_here: Mapping[str, str]  # set in this process before its engine is made
    env: Callable[[int], Mapping[str, str]]  # each worker's additions to the environment


class Engine(abc.ABC):
    """One engine's adapter. Constructing it touches no storage."""

    backend: str = ""
    versions: Mapping[str, str] = {}  # recorded in every trial's run.json

    def __init__(self, space: Space, spec: Study, options: RunOptions):
        self.space = space
        self.spec = spec
        self.options = options

    # -- the protocol
    @abc.abstractmethod
    def stored_identity(self) -> Mapping[str, Any] | None:
        """The identity of the stored study (None when there is none); reads only."""

    @abc.abstractmethod
    def start(self, identity: Mapping[str, Any], first: Sequence[FirstTrial]) -> None:
        """Create the study, with `first` as its first trials in this order, or load it to resume
        (`first` is then ignored: what was queued when it was created is still queued)."""

    @abc.abstractmethod
    def ask(self) -> Ticket | Wait | Stop:
        """The next trial to run."""

    @abc.abstractmethod
    def report(self, ticket: Ticket, epoch: int, value: float, curve: list[float | None]) -> bool:
        """Give the engine one epoch's metric (`curve`: the trial's values so far, by epoch);
        returns whether the trial should stop now."""

    @abc.abstractmethod
    def tell(self, ticket: Ticket, outcome: Outcome) -> None:
        """Record how the trial ended."""

    @abc.abstractmethod
    def finished(self) -> int:
        """Finished trials that count toward the target."""

    @abc.abstractmethod
    def rows(self) -> list[dict[str, Any]]:
        """Leaderboard rows (search.records.leaderboard.row) of every trial the storage shows."""

    # -- hooks, with what most engines need
    def check_options(self) -> None:
        """Refuse, as UsageError, options this engine cannot honour (before any file is written):
        the one check the command line makes too (search.engines.choices.check_options)."""
        options = self.options
        choices.check_options(
            self.backend,
            options.algorithm,
            options.pruner,
            storage=options.storage,
            objectives=self.spec.all_objectives,
        )

    def extra_identity(self) -> dict[str, Any]:
        """What else must match to resume, beyond the loop's metric, direction, space and data."""
        return {}

    def requeue_orphans(self) -> list[str]:
        """Queue again the trials whose process died; returns a note for each."""
        return []

    def target_met(self) -> bool:
        """Whether the study has its target of finished trials (the loop then starts none)."""
        return self.finished() >= self.options.trials

    def training(self, ticket: Ticket) -> AbstractContextManager[None]:
        """Held while the trial trains (Optuna: heartbeats to a database storage)."""
        return contextlib.nullcontext()

    def describe(self) -> str:
        """The engine as the study's first line names it, e.g. 'optuna/tpe, median pruning'."""
        pruner = self.options.pruner
        return f"{self.backend}/{self.options.algorithm}, " + (
            "no pruning" if pruner == "none" else f"{pruner} pruning"
        )

    def storage(self) -> str:
        """Where the study is stored, safe to print (no password): a URL, or a path in the study
        folder (by default the folder itself)."""
        return ""

    @classmethod
    def local_workers(cls, count: int) -> LocalWorkers:
        """By default the storage is shared: this process is worker 0 of `count`."""
        return LocalWorkers(range(1, count), True, {}, lambda index: {})

    def serve(self, note) -> bool:
        """Serve other workers instead of training (KerasTuner's chief); False when this
        process is not a server."""
        return False
