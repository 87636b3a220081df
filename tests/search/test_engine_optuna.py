"""What only the Optuna engine does: its pruners, its storage (opened by Optuna itself), and
orphaned trials found by their owner's pid. The shared contract is in test_loop_contract.py."""

import json
import os
import socket
import subprocess
import threading
import time

import optuna
import pytest

from search.engines.optuna import adapter as optuna_engine
from search.engines.optuna.storage import make_storage
from search.urls import mask_url
from tests.search.fakes import Curve, Flat, board, run


def test_trial_folder_records_params_seed_history_and_versions(tmp_path):
    run(tmp_path, Curve(), trials=1, seed=7, run_info={"keras": "x.y"})
    folder = tmp_path / "s" / "trials" / "0"
    assert set(json.loads((folder / "params.json").read_text())) >= {"lr", "width"}
    info = json.loads((folder / "run.json").read_text())
    assert info["seed"] == 7 and info["keras"] == "x.y" and info["optuna"] == optuna.__version__
    assert [row["epoch"] for row in json.loads((folder / "history.json").read_text())] == [0, 1, 2]


def test_resumed_run_does_not_repeat_the_first_runs_draws(tmp_path):
    run(tmp_path, Curve(), trials=2, algorithm="random")
    run(tmp_path, Curve(), trials=4, algorithm="random")
    assert board(tmp_path)["param_lr"].nunique() == 4


def test_asha_keeps_the_best_third_at_each_rung(tmp_path):
    run(tmp_path, Curve(epochs=6), trials=3, pruner="asha")
    run(tmp_path, Flat(epochs=6), trials=4, pruner="asha")
    row = board(tmp_path).iloc[-1]
    assert row["state"] == "PRUNED" and row["epochs"] == 2  # the first rung: after the second epoch
    assert json.loads((tmp_path / "s" / "study.json").read_text())["pruner"] == "asha"  # `report` names it


def test_the_study_opens_in_optuna_itself(tmp_path):
    run(tmp_path, Curve(), trials=2)
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(
        study_name="s", storage=JournalStorage(JournalFileBackend(str(tmp_path / "s" / "study.journal")))
    )
    assert len(study.trials) == 2 and study.best_value == board(tmp_path)["val_accuracy"].max()


@pytest.mark.parametrize(
    "url, shown",
    [
        ("postgresql://bob:secret@db:5432/x", "postgresql://bob:***@db:5432/x"),
        ("postgresql://bob@db/x", "postgresql://bob@db/x"),
        ("sqlite:///a.db", "sqlite:///a.db"),
        ("postgresql://bob@db/x?password=secret&sslmode=require", "postgresql://bob@db/x?password=***&sslmode=require"),
    ],
)
def test_mask_url_hides_passwords(url, shown):
    assert mask_url(url) == shown


def _study(tmp_path):
    return optuna.load_study(study_name="s", storage=make_storage(tmp_path / "s", None))


def test_a_trial_left_running_by_a_dead_process_runs_again_with_its_parameters_and_seed(tmp_path):
    run(tmp_path, Curve(), trials=1)
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = _study(tmp_path).ask()  # what a process killed with SIGKILL leaves behind
    for key, value in {
        "host": socket.gethostname(),
        "pid": dead.pid,
        "seed": 1234,
        "params": {"lr": 0.01, "width": 8},
    }.items():
        orphan.set_user_attr(key, value)
    objective = Curve()
    run(tmp_path, objective, trials=2)
    assert objective.calls == [{"lr": 0.01, "width": 8}]
    frame = board(tmp_path)
    assert frame["trial"].tolist() == [0, 2] and (frame["state"] == "COMPLETE").all()
    assert frame.loc[1, "resumed_from"] == 1
    assert "process died" in _study(tmp_path).trials[1].user_attrs["error"]
    assert json.loads((tmp_path / "s" / "trials" / "2" / "run.json").read_text())["seed"] == 1234


def test_a_live_owners_trial_is_left_alone_and_counted_toward_the_target(tmp_path, monkeypatch):
    """Another worker's running trial is not taken over; the run waits for it rather than
    starting one trial too many."""
    monkeypatch.setattr(optuna_engine, "POLL_S", 0.05)
    run(tmp_path, Curve(), trials=1)
    study = _study(tmp_path)
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
    run(tmp_path, Curve(), trials=1)
    mine = _study(tmp_path).ask()
    for key, value in {"host": socket.gethostname(), "pid": os.getpid(), "params": {"lr": 0.01, "width": 8}}.items():
        mine.set_user_attr(key, value)
    objective = Curve()
    run(tmp_path, objective, trials=2)
    assert objective.calls == [{"lr": 0.01, "width": 8}]
    assert board(tmp_path)["resumed_from"].tolist()[-1] == 1


def test_positive_timeout_stops_after_the_running_trial(tmp_path):
    def slow(params, reporter):
        time.sleep(0.3)
        reporter.report(0, {"val_accuracy": 0.5})
        return {"val_accuracy": 0.5}

    run(tmp_path, slow, trials=20, timeout_s=0.2)
    assert len(board(tmp_path)) == 1
