"""One outcome table: each way a trial ends leaves one state, whether the trial trained in a
child process or in this one; and the states are the strings the leaderboard always wrote."""

import json

import pytest

from search.errors import ConstraintViolated, OutOfMemory, TrialFailed, TrialPruned, UsageError
from search.execution.executor import TrialExecutor
from search.execution.outcomes import ENDINGS, as_ending, state_of
from search.records import leaderboard
from search.records.states import TrialState
from search.reporter import Reporter

ENDS = [
    (TrialPruned("stopped"), TrialState.PRUNED),
    (ConstraintViolated("constraint broken: infer_ms 12 > 10"), TrialState.INFEASIBLE),
    (UsageError("--data: no images"), TrialState.BAD_INPUT),
    (KeyboardInterrupt(), TrialState.INTERRUPTED),
    (OutOfMemory("OOM when allocating tensor"), TrialState.FAIL),
    (TrialFailed("nan loss"), TrialState.FAIL),
]


@pytest.mark.parametrize("exc, state", ENDS, ids=[type(exc).__name__ for exc, _ in ENDS])
def test_each_ending_leaves_its_state(exc, state):
    assert state_of(exc) is state


def test_the_table_names_each_ending_once_and_nothing_else_is_an_ending():
    kinds = [kind for kind, _ in ENDINGS]
    assert sorted(k.__name__ for k in kinds) == sorted(type(exc).__name__ for exc, _ in ENDS)
    assert state_of(RuntimeError("a bug")) is None and state_of(MemoryError()) is None

    class NanLoss(TrialFailed):
        pass

    assert state_of(NanLoss("nan loss")) is TrialState.FAIL  # a subclass ends as its base


def test_a_child_sends_the_tables_exception():
    assert type(as_ending(MemoryError("no host memory"))) is OutOfMemory
    assert str(as_ending(MemoryError("no host memory"))) == "MemoryError: no host memory"
    assert (
        type(as_ending(ZeroDivisionError("x\ny"))) is TrialFailed
        and str(as_ending(ZeroDivisionError("x\ny"))) == "ZeroDivisionError: x"
    )
    assert str(as_ending(TrialFailed("nan loss\nat epoch 3"))) == "nan loss"  # a failure's reason on one line
    for exc, _ in ENDS[:3]:
        assert type(as_ending(exc)) is type(exc) and str(as_ending(exc)) == str(exc)


class Recorder(Reporter):
    def __init__(self, tmp_path):
        super().__init__(trial_number=0, trial_dir=tmp_path / "trial", metric="val_accuracy")

    def _send(self, epoch, value):
        pass

    def should_prune(self):
        return False


def raising(params, reporter):
    """Module-level, so a child process can unpickle it."""
    raise params["error"]


@pytest.fixture(scope="module")
def isolated():
    executor = TrialExecutor(isolate=True)
    yield executor
    executor.close()


@pytest.mark.parametrize(
    "exc, state",
    [end for end in ENDS if not isinstance(end[0], (KeyboardInterrupt, OutOfMemory))],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_a_child_and_this_process_end_a_trial_in_the_same_state(tmp_path, isolated, exc, state):
    for executor in (isolated, TrialExecutor(isolate=False)):
        with pytest.raises(type(exc)) as raised:
            executor.run(raising, {"error": exc}, Recorder(tmp_path))
        assert state_of(raised.value) is state and str(raised.value) == str(exc)


def test_out_of_memory_after_its_retry_and_any_other_error_fail_the_trial(tmp_path, isolated):
    for executor in (isolated, TrialExecutor(isolate=False)):
        for error in (OutOfMemory("OOM"), ZeroDivisionError("division by zero")):
            with pytest.raises(TrialFailed) as raised:
                executor.run(raising, {"error": error, "batch_size": 2}, Recorder(tmp_path))
            assert state_of(raised.value) is TrialState.FAIL


def test_states_are_the_strings_the_leaderboard_writes(tmp_path):
    states = [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING, TrialState.INFEASIBLE]
    rows = [
        leaderboard.row(
            n,
            state,
            0.5,
            {},
            metric="val_accuracy",
            duration_s=1.0,
            backend="optuna",
            algorithm="tpe",
            resumed_from=None,
            error="",
            params={},
            costs=None,
        )
        for n, state in enumerate(states)
    ]
    leaderboard.write(leaderboard.build(rows, "val_accuracy", []), tmp_path / "leaderboard.csv")
    read = leaderboard.read(tmp_path / "leaderboard.csv")
    assert read["state"].tolist() == ["COMPLETE", "PRUNED", "FAIL", "RUNNING", "INFEASIBLE"]
    assert leaderboard.best_trial(read, "val_accuracy", "maximize")["trial"] == 0  # read back, compared with the enum
    assert json.dumps({"state": TrialState.PRUNED}) == '{"state": "PRUNED"}' and f"{TrialState.FAIL}" == "FAIL"


def test_the_leaderboard_shows_a_trial_left_open_as_failed():
    assert TrialState.INTERRUPTED.shown is TrialState.FAIL and TrialState.BAD_INPUT.shown is TrialState.FAIL
    assert all(
        state.shown is state for state in TrialState if state not in (TrialState.INTERRUPTED, TrialState.BAD_INPUT)
    )
