"""The KerasTuner runner with a small fake objective: schema, Hyperband budgets, pruning, resume,
failures, Ctrl-C."""

import json

import pandas as pd
import pytest
from rich.console import Console

from search import Choice, Float, Space, Study, TrialPruned, UsageError
from search.display import Display
from search.kerastuner_runner import KerasTunerRunner
from search.optuna_runner import OptunaRunner, RunOptions, SearchAborted

# KerasTuner 1.4.8 calls threading.currentThread().getName() in every oracle call.
pytestmark = [pytest.mark.filterwarnings("ignore:currentThread:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:getName:DeprecationWarning")]

SPACE = Space(lr=Float(1e-4, 1e-1, log=True), width=Choice([8, 16, 32]), depth=Choice([1, 2], when={"width": 32}))
SPEC = Study(pipeline="fake", metric="val_accuracy", trials=3, max_epochs=3)


class Curve:
    """A fake objective: an accuracy curve that depends on the parameters, reported per epoch. It
    keeps a "checkpoint" (its history) and continues from one it finds, up to the epoch budget."""

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
        checkpoint = reporter.checkpoint_dir / "history.json"
        if checkpoint.exists():
            reporter.restore(json.loads(checkpoint.read_text()))
        first = len(reporter.history)
        self.starts.append((reporter.trial_number, first, reporter.epoch_budget, reporter.seed))
        for epoch in range(first, reporter.epoch_budget or self.epochs):
            if self.interrupt_at is not None and len(self.calls) == self.interrupt_at and epoch == 1:
                raise KeyboardInterrupt
            accuracy = min(1.0, 0.1 * (epoch + 1) + params["width"] / 100)
            reporter.report(epoch, {"loss": 1 - accuracy, "val_accuracy": accuracy, "val_loss": 1.5 - accuracy})
            reporter.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            checkpoint.write_text(json.dumps(reporter.history))
            if reporter.should_prune():
                raise TrialPruned()
        return {"val_accuracy": max(row["val_accuracy"] for row in reporter.history)}


def display(tmp_path):
    return Display(SPEC.metric, console=Console(file=open(tmp_path / "out.txt", "a"), width=200))


def run(tmp_path, objective, trials, algorithm="random", space=SPACE, **kwargs):
    kwargs.setdefault("in_process", True)  # the fake objectives record their calls in this process
    options = RunOptions(study_name="s", study_dir=tmp_path / "s", trials=trials, algorithm=algorithm, **kwargs)
    runner = KerasTunerRunner(space, SPEC, objective, options, display(tmp_path))
    runner.run()
    return runner


def board(tmp_path) -> pd.DataFrame:
    return pd.read_csv(tmp_path / "s" / "leaderboard.csv")


@pytest.fixture(scope="module")
def optuna_columns(tmp_path_factory):
    """The leaderboard columns of an Optuna study of the same space."""
    folder = tmp_path_factory.mktemp("optuna")
    options = RunOptions(study_name="o", study_dir=folder / "o", trials=3, in_process=True)
    OptunaRunner(SPACE, SPEC, Curve(), options, display(folder)).run()
    return list(pd.read_csv(folder / "o" / "leaderboard.csv").columns)


@pytest.mark.parametrize("algorithm", ["random", "bayesian", "hyperband"])
def test_each_algorithm_writes_the_shared_leaderboard_schema(tmp_path, capsys, optuna_columns, algorithm):
    run(tmp_path, Curve(), trials=3, algorithm=algorithm)
    frame = board(tmp_path)
    assert list(frame.columns) == optuna_columns
    assert frame["trial"].tolist() == [0, 1, 2]
    assert (frame["state"] == "COMPLETE").all() and (frame["backend"] == "kerastuner").all()
    assert (frame["algorithm"] == algorithm).all() and frame["val_accuracy"].between(0, 1).all()
    assert frame["param_depth"].isna().tolist() == (frame["param_width"] != 32).tolist()  # blank where inactive
    study = json.loads((tmp_path / "s" / "study.json").read_text())
    assert study["backend"] == "kerastuner" and study["algorithm"] == algorithm and study["params"] == ["lr", "width", "depth"]
    folder = tmp_path / "s" / "trials" / "0"
    params = json.loads((folder / "params.json").read_text())
    assert set(params) == {"lr", "width"} | ({"depth"} if params["width"] == 32 else set())
    assert params["lr"] == pytest.approx(frame.loc[0, "param_lr"])
    assert [row["epoch"] for row in json.loads((folder / "history.json").read_text())] == list(range(frame.loc[0, "epochs"]))
    assert (tmp_path / "s" / "kerastuner" / "oracle.json").exists()
    assert capsys.readouterr().out == ""  # KerasTuner prints nothing; the Display (a file here) reports


def test_hyperband_rows_show_the_budgets_and_a_promoted_trial_continues_from_its_checkpoint(tmp_path):
    objective = Curve()
    run(tmp_path, objective, trials=4, algorithm="hyperband")
    frame = board(tmp_path)
    assert frame["epochs"].tolist() == [1, 1, 1, 3]  # max_epochs 3, factor 3: three 1-epoch trials, the best goes on to 3
    info = json.loads((tmp_path / "s" / "trials" / "3" / "run.json").read_text())
    best = int(frame.iloc[:3]["val_accuracy"].idxmax())
    assert (info["epoch_budget"], info["initial_epoch"], info["extends_trial"]) == (3, 1, best)
    assert json.loads((tmp_path / "s" / "trials" / "0" / "run.json").read_text())["epoch_budget"] == 1
    assert objective.starts[3][:3] == (3, 1, 3)  # trial 3 started at epoch 1 of its budget 3, from the copy
    history = json.loads((tmp_path / "s" / "trials" / "3" / "history.json").read_text())
    parent = json.loads((tmp_path / "s" / "trials" / str(best) / "history.json").read_text())
    assert history[:1] == parent and len(history) == 3
    assert frame.loc[3, "param_lr"] == frame.loc[best, "param_lr"]


def test_hyperband_resume_adds_only_the_missing_trials(tmp_path):
    run(tmp_path, Curve(), trials=2, algorithm="hyperband")
    objective = Curve()
    run(tmp_path, objective, trials=4, algorithm="hyperband")
    assert [start[0] for start in objective.starts] == [2, 3]
    assert board(tmp_path)["epochs"].tolist() == [1, 1, 1, 3]  # the bracket went on where it was


class Bad(Curve):
    def __call__(self, params, reporter):
        self.calls.append(dict(params))
        for epoch in range(4):
            reporter.report(epoch, {"val_accuracy": 0.01})
            if reporter.should_prune():
                raise TrialPruned()
        return {"val_accuracy": 0.01}


def test_a_clearly_worse_curve_is_pruned_under_random_search(tmp_path):
    run(tmp_path, Curve(epochs=4), trials=3)
    run(tmp_path, Bad(), trials=4)
    frame = board(tmp_path)
    row = frame[frame["trial"] == 3].iloc[0]
    assert row["state"] == "PRUNED" and row["epochs"] == 3  # warm-up of 2 epochs, pruned at the third
    assert row["val_accuracy"] == pytest.approx(0.01) and row["best_epoch"] == 1


def test_no_prune_lets_the_bad_curve_finish(tmp_path):
    run(tmp_path, Curve(epochs=4), trials=3)
    run(tmp_path, Bad(), trials=4, pruner="none")
    assert board(tmp_path)["state"].tolist()[-1] == "COMPLETE"


@pytest.mark.parametrize("algorithm", ["random", "bayesian"])
def test_trials_is_a_total_and_resume_keeps_finished_trials(tmp_path, algorithm):
    run(tmp_path, Curve(), trials=2, algorithm=algorithm)
    first = board(tmp_path)
    objective = Curve()
    run(tmp_path, objective, trials=3, algorithm=algorithm)
    second = board(tmp_path)
    assert len(objective.calls) == 1 and objective.starts[0][0] == 2
    assert second["trial"].tolist() == [0, 1, 2]
    pd.testing.assert_frame_equal(second.iloc[:2][first.columns], first)
    assert second["param_lr"].nunique() == 3  # the resumed oracle did not replay its first draws
    objective = Curve()
    run(tmp_path, objective, trials=3, algorithm=algorithm)  # already at the target: nothing runs
    assert objective.calls == []


def test_failed_trial_is_recorded_and_the_search_goes_on(tmp_path):
    objective = Curve(fail_when=lambda params: len(objective.calls) == 2)
    run(tmp_path, objective, trials=3)
    frame = board(tmp_path)
    assert frame["state"].tolist() == ["COMPLETE", "FAIL", "COMPLETE"]
    assert frame.loc[1, "error"] == "RuntimeError: boom: bad params"


def test_consecutive_failures_stop_the_search_and_the_project_resumes(tmp_path):
    with pytest.raises(SearchAborted, match="3 trials failed in a row"):
        run(tmp_path, Curve(fail_when=lambda params: True), trials=10)
    assert board(tmp_path)["state"].tolist() == ["FAIL"] * 3
    objective = Curve()
    run(tmp_path, objective, trials=4)
    assert len(objective.calls) == 1 and board(tmp_path)["state"].tolist() == ["FAIL"] * 3 + ["COMPLETE"]


def test_ctrl_c_leaves_the_trial_to_continue_with_the_same_number_parameters_and_seed(tmp_path):
    objective = Curve(interrupt_at=2)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, objective, trials=3, seed=5)
    interrupted = objective.calls[1]
    frame = board(tmp_path)
    assert frame.loc[1, "state"] == "FAIL" and "interrupted" in frame.loc[1, "error"]
    resumed = Curve()
    run(tmp_path, resumed, trials=3, seed=5)
    assert resumed.calls[0] == interrupted and len(resumed.calls) == 2  # it again, then the missing one
    assert resumed.starts[0] == (1, 1, None, 6)  # continued after its checkpointed epoch, same seed
    frame = board(tmp_path)
    assert frame["trial"].tolist() == [0, 1, 2] and (frame["state"] == "COMPLETE").all()
    assert frame["error"].isna().all()


def test_bad_input_from_the_objective_stops_the_search(tmp_path):
    with pytest.raises(UsageError, match="--data: no images"):
        run(tmp_path, Curve(raise_usage=True), trials=2)
    assert board(tmp_path).loc[0, "error"] == "--data: no images"
    objective = Curve()
    run(tmp_path, objective, trials=2)  # fixed: the trial runs again, and nothing was lost
    assert [start[0] for start in objective.starts] == [0, 1]


def test_the_space_defaults_are_trial_0(tmp_path):
    space = Space(lr=Float(1e-4, 1e-1, log=True, default=0.003), width=Choice([8, 16, 32], default=16))
    objective = Curve()
    run(tmp_path, objective, trials=2, space=space)
    assert objective.calls[0] == {"lr": 0.003, "width": 16}
    assert objective.calls[1] != objective.calls[0]


def test_timeout_stops_starting_trials(tmp_path):
    run(tmp_path, Curve(), trials=50, timeout_s=0.0)
    assert board(tmp_path).empty


def test_a_changed_setup_or_another_backends_study_is_refused(tmp_path):
    run(tmp_path, Curve(), trials=1, identity={"data": "a"})
    with pytest.raises(UsageError, match="different setup .*data 'a' -> 'b'.*pass a new --study"):
        run(tmp_path, Curve(), trials=2, identity={"data": "b"})
    with pytest.raises(UsageError, match="algorithm 'random' -> 'hyperband'"):
        run(tmp_path, Curve(), trials=2, algorithm="hyperband", identity={"data": "a"})
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "study.json").write_text(json.dumps({"backend": "optuna"}))
    options = RunOptions(study_name="o", study_dir=tmp_path / "o", trials=1, algorithm="random", in_process=True)
    with pytest.raises(UsageError, match="run with the optuna backend"):
        KerasTunerRunner(SPACE, SPEC, Curve(), options, display(tmp_path)).run()


@pytest.mark.parametrize("change, message", [({"algorithm": "tpe"}, "unknown for the kerastuner backend"),
                                             ({"storage": "sqlite:///x.db"}, "--storage is for the optuna backend")])
def test_options_the_backend_cannot_honour_are_usage_errors(tmp_path, change, message):
    with pytest.raises(UsageError, match=message):
        run(tmp_path, Curve(), trials=1, **change)
    assert not (tmp_path / "s").exists()


def test_hyperband_refuses_to_resume_with_another_max_epochs(tmp_path):
    options = RunOptions(study_name="s", study_dir=tmp_path / "s", trials=1, algorithm="hyperband", in_process=True)
    KerasTunerRunner(SPACE, SPEC, Curve(), options, display(tmp_path)).run()
    with pytest.raises(UsageError, match="hyperband_max_epochs 3 -> 9"):
        KerasTunerRunner(SPACE, SPEC, Curve(), options, display(tmp_path), max_epochs=9).run()
