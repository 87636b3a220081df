"""Accuracy and cost together: the Pareto front, multi-objective studies that still prune, and
constraints checked before the first epoch, under both engines where they apply."""

import json

import optuna
import pandas as pd
import pytest

from search import Choice, Space, UsageError
from search.engines.optuna.storage import make_storage
from search.records import leaderboard
from search.study import Study, parse_constraint, violated
from tests.search.fakes import Costly, board, run, spec

pytestmark = [
    pytest.mark.filterwarnings("ignore:currentThread:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:getName:DeprecationWarning"),
]
WIDTHS = Space(width=Choice([8, 16, 32, 64]))
TWO = spec(objectives={"infer_ms": "minimize"})


def test_the_pareto_front_against_a_hand_computed_one():
    frame = pd.DataFrame(
        {
            "trial": range(7),
            "state": ["COMPLETE", "COMPLETE", "COMPLETE", "COMPLETE", "COMPLETE", "PRUNED", "FAIL"],
            "val_accuracy": [0.9, 0.8, 0.8, 0.7, 0.9, 0.99, 0.99],
            "infer_ms": [10.0, 5.0, 5.0, 6.0, 12.0, 1.0, 1.0],
        }
    )
    # 0 and the equal pair 1 & 2 are the front; 3 is dominated by 1, 4 by 0; pruned and failed never count.
    on = leaderboard.pareto(frame, {"val_accuracy": "maximize", "infer_ms": "minimize"})
    assert on.tolist() == [True, True, True, False, False, False, False]


def test_constraints_parse_and_say_what_they_break():
    assert parse_constraint("infer_ms<=10") == ("infer_ms", 10.0) and parse_constraint(" params <= 5e6 ") == (
        "params",
        5e6,
    )
    with pytest.raises(ValueError, match="NAME<=BOUND"):
        parse_constraint("infer_ms < 10")
    assert violated({"infer_ms": 10, "params": 5e6}, {"infer_ms": 14.2, "params": 1e6}) == ["infer_ms 14.2 > 10"]
    problems = Study(
        objectives={"accuracy": "minimize", "infer_ms": "up"}, constraints={"val_accuracy": 0.9, "params": -1}
    ).problems()
    assert any("'accuracy' is not a cost column" in p for p in problems) and any(
        "direction of infer_ms" in p for p in problems
    )
    assert any("val_accuracy is the metric the study optimises" in p for p in problems)
    assert any("bound of params must be a number > 0" in p for p in problems)


def test_a_multi_objective_study_has_both_objectives_its_front_and_opens_in_optuna(tmp_path):
    run(tmp_path, Costly(), trials=4, space=WIDTHS, study=TWO, pruner="none")
    frame = board(tmp_path)
    assert "pareto" in frame.columns and frame["state"].eq("COMPLETE").all()
    assert (
        frame["pareto"].tolist()
        == leaderboard.pareto(frame, {"val_accuracy": "maximize", "infer_ms": "minimize"}).tolist()
    )
    study = optuna.load_study(study_name="s", storage=make_storage(tmp_path / "s", None))
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]  # a real multi-objective study
    assert {t.number for t in study.best_trials} == set(frame.loc[frame["pareto"], "trial"])
    assert json.loads((tmp_path / "s" / "study.json").read_text())["objectives"] == {"infer_ms": "minimize"}


@pytest.mark.parametrize("pruner", ["median", "curve"])
def test_a_multi_objective_study_still_prunes_a_curve_that_falls_behind(tmp_path, pruner):
    objective = Costly(epochs=4, flat_when=lambda params: len(objective.calls) == 4)
    run(tmp_path, objective, trials=4, space=WIDTHS, study=TWO, algorithm="random", pruner=pruner)
    row = board(tmp_path).set_index("trial").loc[3]
    assert row["state"] == "PRUNED" and row["epochs"] == (
        3 if pruner == "median" else 2
    )  # after its warm-up, as in one objective
    assert row["infer_ms"] > 0 and row["val_accuracy"] == pytest.approx(0.01)  # it keeps its costs and best so far


@pytest.mark.parametrize("backend", ["optuna", "kerastuner"])
def test_a_trial_that_breaks_a_constraint_ends_before_its_first_epoch_and_the_study_goes_on(tmp_path, backend):
    """Under Optuna the sampler is told (the trial's constraint values) and learns to avoid it."""
    space = Space(width=Choice([8, 16, 32, 64], default=64))  # the baseline is the widest: it breaks the bound
    objective = Costly()
    run(tmp_path, objective, trials=4, space=space, study=spec(constraints={"infer_ms": 3.0}), backend=backend)
    frame = board(tmp_path).set_index("trial")
    baseline = frame.loc[0]
    assert baseline["state"] == "INFEASIBLE" and baseline["error"] == "constraint broken: infer_ms 8 > 3"
    assert pd.isna(baseline["epochs"]) or baseline["epochs"] == 0  # no epoch trained
    assert baseline["infer_ms"] == 8.0  # recorded with its costs
    history = tmp_path / "s" / "trials" / "0" / "history.json"
    assert not history.exists() or json.loads(history.read_text()) == []
    assert len(frame) == 4 and (frame["state"] == "COMPLETE").any()  # the search went on to its target
    assert (frame.loc[frame["state"] == "COMPLETE", "infer_ms"] <= 3.0).all()


def test_what_a_study_cannot_do_is_one_usage_error(tmp_path):
    with pytest.raises(UsageError, match="--backend kerastuner optimises one objective; .*pass --backend optuna"):
        run(tmp_path, Costly(), trials=1, space=WIDTHS, study=TWO, backend="kerastuner")
    run(tmp_path, Costly(), trials=1, space=WIDTHS, study=TWO, name="m")
    with pytest.raises(UsageError, match="different setup .*objectives"):  # a resume that changes the objectives
        run(tmp_path, Costly(), trials=2, space=WIDTHS, study=spec(objectives={"params": "minimize"}), name="m")


def test_optuna_records_the_constraint_values_its_samplers_learn_from(tmp_path):
    run(
        tmp_path,
        Costly(),
        trials=2,
        space=Space(width=Choice([8, 64], default=64)),
        study=spec(constraints={"infer_ms": 3.0}),
    )
    study = optuna.load_study(study_name="s", storage=make_storage(tmp_path / "s", None))
    assert [t.constraints for t in study.trials] == [
        {"infer_ms": t.user_attrs["costs"]["infer_ms"] - 3.0} for t in study.trials
    ]
    assert study.trials[0].constraints == {"infer_ms": 5.0}  # the baseline: 8 ms against 3, infeasible
    assert study.trials[0].state == optuna.trial.TrialState.PRUNED  # told so that samplers learn from it
