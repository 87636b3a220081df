"""The settings of one run of a study: what the command line decided, for the loop and its engine."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


@dataclasses.dataclass(frozen=True)
class WarmStart:
    """`--warm-start STUDY`: an earlier study's best complete trials, projected onto this study's
    space (search/warmstart.py), to run first when this study is created (never on resume)."""

    source: str  # the earlier study's name
    trials: tuple[tuple[int, Mapping[str, Any]], ...] = ()  # (its trial number, the projected values), in order
    note: str = ""  # for the user, once the trials are queued


@dataclasses.dataclass
class RunOptions:
    study_name: str
    study_dir: Path
    trials: int  # the study's target of finished trials, in total (a resumed run adds only the missing ones)
    backend: str = "optuna"  # one of search.engines.BACKENDS
    storage: str | None = None  # an Optuna storage URL (default: a journal file in the study folder)
    algorithm: str | None = None  # default: the engine's first (search.engines.default_algorithm)
    pruner: str | None = None  # one of engines.PRUNERS[backend]; default: the engine's first
    max_resource: int | None = None  # the most epochs (across phases) a trial can train: Hyperband's top rung
    seed: int = 0
    timeout_s: float | None = None
    max_consecutive_failures: int = 3
    identity: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # must match to resume (data, split seed)
    run_info: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # recorded in every trial folder
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # kept in the study for `leafsearch worker`
    # This process's place among those one `leafsearch run --workers N` started: 0 the process the
    # user started (it alone gives the study's once-only notes), 1, 2... the workers it started;
    # None: a worker that joined the study on its own (`leafsearch worker`, on any machine).
    worker_index: int | None = 0
    in_process: bool = False  # train in this process instead of a child process per trial (debugging)
    preload: tuple[str, ...] = ()  # modules the trial processes' fork server imports once (e.g. Keras)
    warm_start: WarmStart | None = None  # trials to run first when the study is created
    # How long a call to the study's storage (the database, the KerasTuner chief) waits out an
    # outage before the search stops (search/engines/patience.py; 10 minutes by default).
    storage_patience_s: float = 600.0
    # Where an engine tells the user what happens meanwhile (an outage, its end): the loop sets it
    # to the display's `note`; None: nowhere.
    note: Callable[[str], None] | None = None

    def __post_init__(self):
        if self.pruner is None:
            from search.engines.choices import default_pruner

            self.pruner = default_pruner(self.backend)

    @property
    def prune(self) -> bool:
        return self.pruner != "none"

    @property
    def sampler_stream(self) -> int:
        """What sets this process's sampler draws apart from those of the other processes sharing
        the study: its worker index, or for a worker that joined on its own its process id."""
        return self.worker_index if self.worker_index is not None else os.getpid()
