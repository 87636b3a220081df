"""Trials in child processes: epochs reach the parent's reporter, pruning is the parent's call,
a crash or an out-of-memory kill costs one trial, and out of memory is retried at half the batch."""

import os
import signal

import pytest

from search.errors import OutOfMemory, TrialFailed, TrialPruned, UsageError
from search.execution.executor import TrialExecutor
from search.reporter import Reporter


class Recorder(Reporter):
    def __init__(self, tmp_path, prune_at=None):
        super().__init__(trial_number=5, trial_dir=tmp_path / "trial", metric="val_accuracy", seed=11)
        self.sent, self.prune_at = [], prune_at

    def _send(self, epoch, value):
        self.sent.append((epoch, value))

    def should_prune(self):
        return self.prune_at is not None and len(self.history) >= self.prune_at


def curve(params, reporter):
    """Module-level, so a child process can unpickle it. Reports three epochs."""
    for epoch in range(3):
        reporter.report(epoch, {"val_accuracy": 0.1 * (epoch + 1) + params.get("bonus", 0), "pid": os.getpid()})
        if reporter.should_prune():
            raise TrialPruned("pruned")
    return {"val_accuracy": reporter.history[-1]["val_accuracy"], "seed": reporter.seed, "trial": reporter.trial_number}


def killed_above_16(params, reporter):
    """Dies like a process the kernel's OOM killer picked, unless the batch is small."""
    reporter.report(0, {"val_accuracy": 0.5})
    if params["batch_size"] > 16:
        os.kill(os.getpid(), signal.SIGKILL)
    return {"val_accuracy": 0.5}


class OomAbove:
    """Raises what an objective raises on an accelerator's out-of-memory error."""

    def __init__(self, limit):
        self.limit = limit

    def __call__(self, params, reporter):
        if params["batch_size"] > self.limit:
            raise OutOfMemory("ResourceExhaustedError: OOM when allocating tensor")
        return curve(params, reporter)


def crashes(params, reporter):
    raise ZeroDivisionError("division by zero in epoch 1")


def bad_input(params, reporter):
    raise UsageError("data: class folder empty")


@pytest.fixture(scope="module")
def isolated():
    executor = TrialExecutor(isolate=True)
    yield executor
    executor.close()


def test_a_child_trains_and_the_parent_reporter_gets_every_epoch(tmp_path, isolated):
    reporter = Recorder(tmp_path)
    metrics, params = isolated.run(curve, {"bonus": 0.5}, reporter)
    assert metrics == {"val_accuracy": pytest.approx(0.8), "seed": 11, "trial": 5}
    assert params == {"bonus": 0.5}
    assert [row["epoch"] for row in reporter.history] == [0, 1, 2]
    assert [epoch for epoch, _ in reporter.sent] == [0, 1, 2]
    assert reporter.history[0]["pid"] != os.getpid()  # it trained elsewhere
    assert (tmp_path / "trial" / "history.json").is_file()  # written by the parent, which owns the files


def test_pruning_is_decided_by_the_parent(tmp_path, isolated):
    reporter = Recorder(tmp_path, prune_at=2)
    with pytest.raises(TrialPruned):
        isolated.run(curve, {}, reporter)
    assert len(reporter.history) == 2


def test_a_crash_fails_the_trial_with_its_message(tmp_path, isolated):
    with pytest.raises(TrialFailed, match="^ZeroDivisionError: division by zero in epoch 1$"):
        isolated.run(crashes, {}, Recorder(tmp_path))
    with pytest.raises(UsageError, match="class folder empty"):
        isolated.run(bad_input, {}, Recorder(tmp_path))
    metrics, _ = isolated.run(curve, {}, Recorder(tmp_path))  # the next trial is unaffected
    assert metrics["val_accuracy"] == pytest.approx(0.3)


def test_a_child_killed_by_sigkill_is_retried_at_half_the_batch_size(tmp_path, isolated):
    retries = []
    reporter = Recorder(tmp_path)
    metrics, params = isolated.run(killed_above_16, {"batch_size": 32}, reporter, on_retry=retries.append)
    assert params == {"batch_size": 16} and metrics == {"val_accuracy": 0.5}
    assert retries == ["out of memory at batch size 32: trying again with 16"]
    assert len(reporter.history) == 1  # the retry starts afresh


def test_out_of_memory_twice_fails_with_the_batch_sizes_tried(tmp_path, isolated):
    with pytest.raises(TrialFailed, match="out of memory at batch sizes 64, 32.*SIGKILL"):
        isolated.run(killed_above_16, {"batch_size": 64}, Recorder(tmp_path))


@pytest.mark.parametrize("isolate", [False, True])
def test_out_of_memory_error_is_retried_in_both_modes(tmp_path, isolated, isolate):
    executor = isolated if isolate else TrialExecutor(isolate=False)
    metrics, params = executor.run(OomAbove(8), {"batch_size": 16}, Recorder(tmp_path))
    assert params["batch_size"] == 8 and metrics["val_accuracy"] == pytest.approx(0.3)


def test_in_process_failures_are_recorded_like_a_childs(tmp_path):
    executor = TrialExecutor(isolate=False)
    with pytest.raises(TrialFailed, match="^ZeroDivisionError: division by zero"):
        executor.run(crashes, {}, Recorder(tmp_path))
    with pytest.raises(TrialFailed, match="^nan loss$"):
        executor.run(lambda p, r: (_ for _ in ()).throw(TrialFailed("nan loss")), {}, Recorder(tmp_path))
