"""What only the KerasTuner engine does: its three oracles, Hyperband's budgets and checkpoint
hand-over, and the options it refuses. The shared contract is in test_loop_contract.py."""

import json

import pandas as pd
import pytest

from search import UsageError
from tests.search.fakes import Curve, board, run

# KerasTuner 1.4.8 calls threading.currentThread().getName() in every oracle call.
pytestmark = [
    pytest.mark.filterwarnings("ignore:currentThread:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:getName:DeprecationWarning"),
]


def kt(tmp_path, objective, trials, algorithm="random", **kwargs):
    return run(tmp_path, objective, trials, backend="kerastuner", algorithm=algorithm, **kwargs)


@pytest.mark.parametrize("algorithm", ["bayesian", "hyperband"])
def test_each_oracle_writes_the_shared_leaderboard_and_prints_nothing(tmp_path, capsys, algorithm):
    run(tmp_path, Curve(), trials=3, name="o")  # an Optuna study of the same space
    kt(tmp_path, Curve(), trials=3, algorithm=algorithm)
    frame = board(tmp_path)
    assert list(frame.columns) == list(board(tmp_path, "o").columns)
    assert frame["trial"].tolist() == [0, 1, 2] and (frame["state"] == "COMPLETE").all()
    assert (frame["algorithm"] == algorithm).all() and (frame["backend"] == "kerastuner").all()
    assert (tmp_path / "s" / "kerastuner" / "oracle.json").exists()
    assert capsys.readouterr().out == ""  # KerasTuner prints nothing; the Display (a file here) reports


def test_bayesian_resume_adds_only_the_missing_trials(tmp_path):
    kt(tmp_path, Curve(), trials=2, algorithm="bayesian")
    first = board(tmp_path)
    objective = Curve()
    kt(tmp_path, objective, trials=3, algorithm="bayesian")
    assert len(objective.calls) == 1 and objective.starts[0][0] == 2
    pd.testing.assert_frame_equal(board(tmp_path).iloc[:2][first.columns], first)


def test_hyperband_rows_show_the_budgets_and_a_promoted_trial_continues_from_its_checkpoint(tmp_path):
    objective = Curve()
    kt(tmp_path, objective, trials=4, algorithm="hyperband")
    frame = board(tmp_path)
    assert frame["epochs"].tolist() == [
        1,
        1,
        1,
        3,
    ]  # max_epochs 3, factor 3: three 1-epoch trials, the best goes on to 3
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
    kt(tmp_path, Curve(), trials=2, algorithm="hyperband")
    objective = Curve()
    kt(tmp_path, objective, trials=4, algorithm="hyperband")
    assert [start[0] for start in objective.starts] == [2, 3]
    assert board(tmp_path)["epochs"].tolist() == [1, 1, 1, 3]  # the bracket went on where it was


def test_ctrl_c_keeps_the_trial_number_and_shows_it_interrupted_meanwhile(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        kt(tmp_path, Curve(interrupt_at=2), trials=3)
    frame = board(tmp_path)
    assert frame.loc[1, "state"] == "FAIL" and "interrupted" in frame.loc[1, "error"]
    resumed = Curve()
    kt(tmp_path, resumed, trials=3)
    assert resumed.starts[0][0] == 1  # KerasTuner runs it again under its own number
    assert board(tmp_path)["error"].isna().all()


def test_changing_the_oracle_is_refused(tmp_path):
    kt(tmp_path, Curve(), trials=1)
    with pytest.raises(UsageError, match="algorithm 'random' -> 'hyperband'"):
        kt(tmp_path, Curve(), trials=2, algorithm="hyperband")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"algorithm": "tpe"}, "unknown for the kerastuner backend"),
        ({"storage": "sqlite:///x.db"}, "--storage is for the optuna backend"),
    ],
)
def test_options_the_backend_cannot_honour_are_usage_errors(tmp_path, change, message):
    with pytest.raises(UsageError, match=message):
        kt(tmp_path, Curve(), trials=1, **change)
    assert not (tmp_path / "s").exists()


def test_hyperband_refuses_to_resume_with_another_max_epochs(tmp_path):
    kt(tmp_path, Curve(), trials=1, algorithm="hyperband")
    with pytest.raises(UsageError, match="hyperband_max_epochs 3 -> 9"):
        kt(tmp_path, Curve(), trials=1, algorithm="hyperband", max_resource=9)
