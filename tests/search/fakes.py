"""Fake objectives and a runner for the study loop's tests (no training): accuracy curves that
depend on the parameters, keep a "checkpoint" (their history) and continue from one they find."""

from __future__ import annotations

import dataclasses

import pandas as pd
from rich.console import Console

from search import Choice, Float, Space, Study, TrialPruned, UsageError
from search.loop import StudyLoop
from search.options import RunOptions
from search.records import costs
from search.records.checkpoints import CheckpointStore
from search.report.display import Display

SPACE = Space(lr=Float(1e-4, 1e-1, log=True), width=Choice([8, 16, 32]), depth=Choice([1, 2], when={"width": 32}))
SPEC = Study(pipeline="fake", metric="val_accuracy", trials=3, max_epochs=3)
# (backend, algorithm) pairs the contract suite runs against: every engine, its default algorithm.
ENGINES = [("optuna", "tpe"), ("kerastuner", "random")]


class Curve:
    """Reports an accuracy curve per epoch, up to the epoch budget; fails, interrupts or raises
    bad input on request."""

    def __init__(self, epochs=3, fail_when=None, interrupt_at=None, raise_usage=False):
        self.epochs = epochs
        self.fail_when = fail_when or (lambda params: False)
        self.interrupt_at = interrupt_at
        self.raise_usage = raise_usage
        self.calls = []
        self.starts = []  # (trial, first epoch trained, budget, seed)

    def __call__(self, params, reporter):
        self.calls.append(dict(params))
        if self.raise_usage:
            raise UsageError("--data: no images")
        if self.fail_when(params):
            raise RuntimeError("boom: bad params\nsecond line")
        store = CheckpointStore(reporter.checkpoint_dir)
        latest = store.latest()
        if latest is not None:
            reporter.restore(latest[1]["history"])
        first = len(reporter.history)
        self.starts.append((reporter.trial_number, first, reporter.epoch_budget, reporter.seed))
        for epoch in range(first, reporter.epoch_budget or self.epochs):
            if self.interrupt_at is not None and len(self.calls) == self.interrupt_at and epoch == 1:
                raise KeyboardInterrupt
            accuracy = min(1.0, 0.1 * (epoch + 1) + params["width"] / 100)
            reporter.report(epoch, {"loss": 1 - accuracy, "val_accuracy": accuracy, "val_loss": 1.5 - accuracy})
            store.save(epoch, lambda folder: None, {"history": reporter.history})
            if reporter.should_prune():
                raise TrialPruned()
        return {"val_accuracy": max(row["val_accuracy"] for row in reporter.history)}


class Flat(Curve):
    """A curve stuck at 1 % accuracy, worse than any `Curve`: every pruner should stop it."""

    def __call__(self, params, reporter):
        self.calls.append(dict(params))
        for epoch in range(self.epochs):
            reporter.report(epoch, {"val_accuracy": 0.01})
            if reporter.should_prune():
                raise TrialPruned()
        return {"val_accuracy": 0.01}


def display(tmp_path) -> Display:
    return Display(SPEC.metric, console=Console(file=open(tmp_path / "out.txt", "a"), width=200))


def run(
    tmp_path, objective, trials, backend="optuna", algorithm=None, space=SPACE, name="s", study=SPEC, **kwargs
) -> StudyLoop:
    """One run of the study loop on `tmp_path/<name>`, training in this process (the fakes
    record their calls here)."""
    kwargs.setdefault("in_process", True)
    # The fakes' parallel straight lines are what the default curve rule cuts from the second
    # trial on; the tests of everything else run under the median rule (3 trials of warm-up).
    kwargs.setdefault("pruner", "median")
    options = RunOptions(
        study_name=name, study_dir=tmp_path / name, trials=trials, backend=backend, algorithm=algorithm, **kwargs
    )
    loop = StudyLoop(space, study, objective, options, display(tmp_path))
    loop.run()
    return loop


def board(tmp_path, name="s") -> pd.DataFrame:
    return pd.read_csv(tmp_path / name / "leaderboard.csv")


class Costly(Curve):
    """A `Curve` whose model costs grow with its width (params = 100 * width, infer_ms = width / 8),
    measured before the first epoch as the leaf objective does; `flat_when` gives a curve stuck at
    1 % (one for the pruner to stop)."""

    def __init__(self, epochs=3, flat_when=None):
        super().__init__(epochs)
        self.flat_when = flat_when or (lambda params: False)

    def __call__(self, params, reporter):
        self.calls.append(dict(params))
        measured = {"params": 100 * params["width"], "flops": 2000 * params["width"], "infer_ms": params["width"] / 8}
        costs.write(reporter.trial_dir, measured)
        reporter.measured(measured)
        for epoch in range(self.epochs):
            accuracy = 0.01 if self.flat_when(params) else min(1.0, 0.1 * (epoch + 1) + params["width"] / 100)
            reporter.report(epoch, {"val_accuracy": accuracy, "val_loss": 1.5 - accuracy})
            if reporter.should_prune():
                raise TrialPruned()
        return {"val_accuracy": max(row["val_accuracy"] for row in reporter.history)}


def spec(**changes) -> Study:
    return dataclasses.replace(SPEC, **changes)
