"""The Optuna runner with a small fake objective: target-total resume, failures, pruning, Ctrl-C."""

import json

import optuna
import pandas as pd
import pytest
from rich.console import Console

from search import Choice, Float, Space, Study, TrialPruned
from search.display import Display
from search.optuna_runner import OptunaRunner, RunOptions, SearchAborted, mask_url

SPACE = Space(lr=Float(1e-4, 1e-1, log=True), width=Choice([8, 16, 32]), depth=Choice([1, 2], when={"width": 32}))
SPEC = Study(pipeline="fake", metric="val_accuracy", trials=3, max_epochs=3)


class Curve:
    """A fake objective: an accuracy curve that depends on the parameters, reported per epoch."""

    def __init__(self, epochs=3, fail_when=None, interrupt_at=None):
        self.epochs = epochs
        self.fail_when = fail_when or (lambda params: False)
        self.interrupt_at = interrupt_at
        self.calls = []

    def __call__(self, params, reporter):
        self.calls.append(dict(params))
        if self.fail_when(params):
            raise RuntimeError("boom: bad params")
        for epoch in range(self.epochs):
            if self.interrupt_at is not None and len(self.calls) == self.interrupt_at and epoch == 1:
                raise KeyboardInterrupt
            accuracy = min(1.0, 0.1 * (epoch + 1) + params["width"] / 100)
            reporter.report(epoch, {"loss": 1 - accuracy, "val_accuracy": accuracy, "val_loss": 1.5 - accuracy})
            if reporter.should_prune():
                raise TrialPruned()
        return {"val_accuracy": max(row["val_accuracy"] for row in reporter.history)}


def run(tmp_path, objective, trials, **kwargs):
    kwargs.setdefault("in_process", True)  # the fake objective records its calls in this process
    options = RunOptions(study_name="s", study_dir=tmp_path / "s", trials=trials, **kwargs)
    display = Display(SPEC.metric, console=Console(file=open(tmp_path / "out.txt", "a"), width=200))
    return OptunaRunner(SPACE, SPEC, objective, options, display).run()


def board(tmp_path) -> pd.DataFrame:
    return pd.read_csv(tmp_path / "s" / "leaderboard.csv")


def test_runs_the_target_and_writes_the_leaderboard_schema(tmp_path):
    run(tmp_path, Curve(), trials=3)
    frame = board(tmp_path)
    assert list(frame.columns[:15]) == ["trial", "state", "val_accuracy", "val_loss", "best_epoch", "epochs",
                                        "duration_s", "params", "flops", "infer_ms", "backend", "algorithm",
                                        "resumed_from", "error", "param_lr"]
    assert {"param_width", "param_depth"} <= set(frame.columns)
    assert frame["trial"].tolist() == [0, 1, 2]
    assert (frame["state"] == "COMPLETE").all() and (frame["backend"] == "optuna").all()
    assert frame["val_accuracy"].between(0, 1).all() and (frame["epochs"] == 3).all() and (frame["best_epoch"] == 3).all()
    # a conditional parameter is blank where inactive
    assert frame["param_depth"].isna().tolist() == (frame["param_width"] != 32).tolist()


def test_trials_is_a_total_and_resume_keeps_finished_trials(tmp_path):
    run(tmp_path, Curve(), trials=2)
    first = board(tmp_path)
    objective = Curve()
    run(tmp_path, objective, trials=3)
    second = board(tmp_path)
    assert len(objective.calls) == 1
    assert second["trial"].tolist() == [0, 1, 2]
    pd.testing.assert_frame_equal(second.iloc[:2][first.columns], first)
    objective = Curve()
    run(tmp_path, objective, trials=3)  # already at the target: nothing runs
    assert objective.calls == []


def test_resumed_run_does_not_repeat_the_first_runs_draws(tmp_path):
    run(tmp_path, Curve(), trials=2, algorithm="random")
    run(tmp_path, Curve(), trials=4, algorithm="random")
    lrs = board(tmp_path)["param_lr"].tolist()
    assert len(set(lrs)) == 4


def test_trial_folder_records_params_seed_history_and_versions(tmp_path):
    run(tmp_path, Curve(), trials=1, seed=7, run_info={"keras": "x.y"})
    folder = tmp_path / "s" / "trials" / "0"
    params = json.loads((folder / "params.json").read_text())
    assert set(params) >= {"lr", "width"}
    info = json.loads((folder / "run.json").read_text())
    assert info["seed"] == 7 and info["keras"] == "x.y" and info["optuna"] == optuna.__version__
    history = json.loads((folder / "history.json").read_text())
    assert [row["epoch"] for row in history] == [0, 1, 2]


def test_failed_trial_is_recorded_and_the_search_goes_on(tmp_path):
    objective = Curve(fail_when=lambda params: len(objective.calls) == 2)
    run(tmp_path, objective, trials=3)
    frame = board(tmp_path)
    assert frame["state"].tolist() == ["COMPLETE", "FAIL", "COMPLETE"]
    assert frame.loc[1, "error"] == "RuntimeError: boom: bad params"


def test_consecutive_failures_stop_the_search(tmp_path):
    with pytest.raises(SearchAborted, match="3 trials failed in a row"):
        run(tmp_path, Curve(fail_when=lambda params: True), trials=10)
    assert (board(tmp_path)["state"] == "FAIL").sum() == 3


class Flat(Curve):
    """A curve stuck at 1 % accuracy, worse than any `Curve`: every pruner should stop it."""

    def __call__(self, params, reporter):
        for epoch in range(self.epochs):
            reporter.report(epoch, {"val_accuracy": 0.01})
            if reporter.should_prune():
                raise TrialPruned()
        return {"val_accuracy": 0.01}


def test_a_clearly_worse_curve_is_pruned(tmp_path):
    good = Curve(epochs=4)
    run(tmp_path, good, trials=3)

    run(tmp_path, Flat(epochs=4), trials=4)
    frame = board(tmp_path)
    row = frame[frame["trial"] == 3].iloc[0]
    assert row["state"] == "PRUNED" and row["epochs"] == 3  # warm-up of 2 epochs, pruned at the third
    assert row["val_accuracy"] == pytest.approx(0.01)


def test_asha_keeps_the_best_third_at_each_rung(tmp_path):
    good = Curve(epochs=6)
    run(tmp_path, good, trials=3, pruner="asha")

    run(tmp_path, Flat(epochs=6), trials=4, pruner="asha")
    row = board(tmp_path).iloc[-1]
    assert row["state"] == "PRUNED" and row["epochs"] == 2  # the first rung: after the second epoch
    assert json.loads((tmp_path / "s" / "study.json").read_text())["pruner"] == "asha"  # `report` names it


def test_no_prune_lets_the_bad_curve_finish(tmp_path):
    run(tmp_path, Curve(epochs=4), trials=3)

    def bad(params, reporter):
        for epoch in range(4):
            reporter.report(epoch, {"val_accuracy": 0.01})
            assert not reporter.should_prune()
        return {"val_accuracy": 0.01}

    run(tmp_path, bad, trials=4, pruner="none")
    assert board(tmp_path)["state"].tolist()[-1] == "COMPLETE"


def test_ctrl_c_queues_the_trial_again_with_the_same_parameters(tmp_path):
    objective = Curve(interrupt_at=2)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, objective, trials=3)
    interrupted = objective.calls[1]
    resumed = Curve()
    run(tmp_path, resumed, trials=3)
    assert len(resumed.calls) == 2  # the interrupted trial again, then the missing one
    assert resumed.calls[0] == interrupted
    frame = board(tmp_path)
    # shown once, as its continuation, which says which trial it continues
    assert frame["trial"].tolist() == [0, 2, 3] and (frame["state"] == "COMPLETE").all()
    assert frame.loc[frame["trial"] == 2, "resumed_from"].item() == 1  # queued at once, so numbered next
    assert frame["resumed_from"].isna().sum() == 2


def test_timeout_stops_starting_trials(tmp_path):
    run(tmp_path, Curve(), trials=50, timeout_s=0.0)
    assert board(tmp_path).empty


def test_the_study_opens_in_optuna_itself(tmp_path):
    run(tmp_path, Curve(), trials=2)
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(tmp_path / "s" / "study.journal")))
    study = optuna.load_study(study_name="s", storage=storage)
    assert len(study.trials) == 2 and study.best_value == board(tmp_path)["val_accuracy"].max()


@pytest.mark.parametrize(
    "url, shown",
    [("postgresql://bob:secret@db:5432/x", "postgresql://bob:***@db:5432/x"),
     ("postgresql://bob@db/x", "postgresql://bob@db/x"),
     ("sqlite:///a.db", "sqlite:///a.db"),
     ("postgresql://bob@db/x?password=secret&sslmode=require", "postgresql://bob@db/x?password=***&sslmode=require")],
)
def test_mask_url_hides_passwords(url, shown):
    assert mask_url(url) == shown


def test_a_trial_left_running_by_a_dead_process_runs_again_with_its_parameters_and_seed(tmp_path):
    import socket
    import subprocess

    run(tmp_path, Curve(), trials=1)
    dead = subprocess.Popen(["true"])
    dead.wait()
    from search.optuna_runner import make_storage

    study = optuna.load_study(study_name="s", storage=make_storage(tmp_path / "s", None))
    orphan = study.ask()  # what a process killed with SIGKILL leaves behind
    for key, value in {"host": socket.gethostname(), "pid": dead.pid, "seed": 1234, "params": {"lr": 0.01, "width": 8}}.items():
        orphan.set_user_attr(key, value)

    objective = Curve()
    run(tmp_path, objective, trials=2)
    assert objective.calls == [{"lr": 0.01, "width": 8}]
    frame = board(tmp_path)
    assert frame["trial"].tolist() == [0, 2] and (frame["state"] == "COMPLETE").all()
    assert frame.loc[1, "resumed_from"] == 1
    assert "process died" in optuna.load_study(study_name="s", storage=make_storage(tmp_path / "s", None)).trials[1].user_attrs["error"]
    info = json.loads((tmp_path / "s" / "trials" / "2" / "run.json").read_text())
    assert info["seed"] == 1234


def test_a_live_owners_trial_is_left_alone_and_counted_toward_the_target(tmp_path, monkeypatch):
    """Another worker's running trial is not taken over; the run waits for it rather than
    starting one trial too many."""
    import socket
    import subprocess
    import threading
    import time

    from search import optuna_runner

    monkeypatch.setattr(optuna_runner, "POLL_S", 0.05)
    run(tmp_path, Curve(), trials=1)
    study = optuna.load_study(study_name="s", storage=optuna_runner.make_storage(tmp_path / "s", None))
    other_worker = subprocess.Popen(["sleep", "30"])
    theirs = study.ask()
    theirs.set_user_attr("host", socket.gethostname())
    theirs.set_user_attr("pid", other_worker.pid)

    def finish_later():
        time.sleep(1.0)
        study.tell(theirs, 0.9)

    threading.Thread(target=finish_later).start()
    objective = Curve()
    run(tmp_path, objective, trials=2)
    assert objective.calls == []  # its trial met the target: nothing more to run
    assert board(tmp_path)["state"].tolist() == ["COMPLETE", "COMPLETE"]
    assert "Waiting for 1 trial(s) running in other workers to finish." in (tmp_path / "out.txt").read_text()
    other_worker.kill()


def test_a_trial_of_a_previous_life_of_this_process_is_an_orphan(tmp_path):
    """A restarted container runs as the same pid (1): a RUNNING trial recorded with this very
    process's pid is left from before the restart."""
    import os
    import socket

    from search import optuna_runner

    run(tmp_path, Curve(), trials=1)
    study = optuna.load_study(study_name="s", storage=optuna_runner.make_storage(tmp_path / "s", None))
    mine = study.ask()
    for key, value in {"host": socket.gethostname(), "pid": os.getpid(), "params": {"lr": 0.01, "width": 8}}.items():
        mine.set_user_attr(key, value)
    objective = Curve()
    run(tmp_path, objective, trials=2)
    assert objective.calls == [{"lr": 0.01, "width": 8}]
    assert board(tmp_path)["resumed_from"].tolist()[-1] == 1


def test_resuming_with_a_changed_space_or_data_is_refused(tmp_path):
    from search import UsageError

    run(tmp_path, Curve(), trials=1, identity={"data": "a"})
    before = (tmp_path / "s" / "study.journal").read_bytes()
    with pytest.raises(UsageError, match="different setup .*data 'a' -> 'b'.*pass a new --study"):
        run(tmp_path, Curve(), trials=2, identity={"data": "b"})
    changed = Space({**dict(SPACE.items()), "lr": Float(1e-3, 1.0, log=True)})
    options = RunOptions(study_name="s", study_dir=tmp_path / "s", trials=2, identity={"data": "a"})
    with pytest.raises(UsageError, match="space changed lr"):
        OptunaRunner(changed, SPEC, Curve(), options, Display("val_accuracy", Console(file=open(tmp_path / "o", "w")))).run()
    assert (tmp_path / "s" / "study.journal").read_bytes() == before


def test_the_space_defaults_are_trial_0(tmp_path):
    space = Space(lr=Float(1e-4, 1e-1, log=True, default=0.003), width=Choice([8, 16, 32], default=16))
    objective = Curve()
    options = RunOptions(study_name="s", study_dir=tmp_path / "s", trials=2, in_process=True)
    OptunaRunner(space, SPEC, objective, options, Display("val_accuracy", Console(file=open(tmp_path / "o", "w")))).run()
    assert objective.calls[0] == {"lr": 0.003, "width": 16}
    assert objective.calls[1] != objective.calls[0]


def test_positive_timeout_stops_after_the_running_trial(tmp_path):
    import time

    def slow(params, reporter):
        time.sleep(0.3)
        reporter.report(0, {"val_accuracy": 0.5})
        return {"val_accuracy": 0.5}

    run(tmp_path, slow, trials=20, timeout_s=0.2)
    assert len(board(tmp_path)) == 1
