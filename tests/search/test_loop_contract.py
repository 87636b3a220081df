"""The study loop's contract, run against every engine (Optuna's style: one suite, every
sampler): target count and resume, the baseline trial, failures, pruning, Ctrl-C and a killed
trial continued from its checkpoint, the same leaderboard columns."""

import json
import re

import pandas as pd
import pytest

from search import Choice, Float, SearchAborted, Space, UsageError
from search.records import leaderboard
from search.report.studies import load_study_rows
from search.report.summary import header
from tests.search.fakes import ENGINES, SPACE, Curve, Flat, board, run

# KerasTuner 1.4.8 calls threading.currentThread().getName() in every oracle call.
pytestmark = [
    pytest.mark.filterwarnings("ignore:currentThread:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:getName:DeprecationWarning"),
]
engines = pytest.mark.parametrize("backend, algorithm", ENGINES, ids=[b for b, _ in ENGINES])


@engines
def test_runs_the_target_and_writes_the_shared_leaderboard_schema(tmp_path, backend, algorithm):
    run(tmp_path, Curve(), trials=3, backend=backend)
    frame = board(tmp_path)
    assert list(frame.columns) == leaderboard.base_columns("val_accuracy") + ["param_lr", "param_width", "param_depth"]
    assert frame["trial"].tolist() == [0, 1, 2]
    assert (
        (frame["state"] == "COMPLETE").all()
        and (frame["backend"] == backend).all()
        and (frame["algorithm"] == algorithm).all()
    )
    assert (
        frame["val_accuracy"].between(0, 1).all() and (frame["epochs"] == 3).all() and (frame["best_epoch"] == 3).all()
    )
    assert frame["param_depth"].isna().tolist() == (frame["param_width"] != 32).tolist()  # blank where inactive
    study = json.loads((tmp_path / "s" / "study.json").read_text())
    assert (study["backend"], study["algorithm"], study["params"]) == (backend, algorithm, ["lr", "width", "depth"])
    folder = tmp_path / "s" / "trials" / "0"
    params = json.loads((folder / "params.json").read_text())
    assert set(params) == {"lr", "width"} | ({"depth"} if params["width"] == 32 else set())
    assert params["lr"] == pytest.approx(frame.loc[0, "param_lr"])
    assert [row["epoch"] for row in json.loads((folder / "history.json").read_text())] == [0, 1, 2]


@engines
def test_trials_is_a_total_and_resume_keeps_finished_trials(tmp_path, backend, algorithm):
    run(tmp_path, Curve(), trials=2, backend=backend)
    first = board(tmp_path)
    objective = Curve()
    run(tmp_path, objective, trials=3, backend=backend)
    second = board(tmp_path)
    assert len(objective.calls) == 1 and objective.starts[0][0] == 2
    assert second["trial"].tolist() == [0, 1, 2]
    pd.testing.assert_frame_equal(second.iloc[:2][first.columns], first)
    assert second["param_lr"].nunique() == 3  # the resumed run did not replay the first run's draws
    out = (tmp_path / "out.txt").read_text()  # where the budget goes: compute so far, and to the target
    flat = " ".join(out.split())  # a long first line may wrap
    assert re.search(
        r"2 of 3 trials finished, running 1 more \(.*?\); [0-9.]+s of compute so far, about [0-9.]+s to the target",
        flat,
    )
    assert re.search(r"Trial 2 COMPLETE .* \| 3/3 trials, [0-9.]+s of compute so far$", out, re.MULTILINE)
    objective = Curve()
    run(tmp_path, objective, trials=3, backend=backend)  # already at the target: nothing runs
    assert objective.calls == []


@engines
def test_the_space_defaults_are_trial_0(tmp_path, backend, algorithm):
    space = Space(lr=Float(1e-4, 1e-1, log=True, default=0.003), width=Choice([8, 16, 32], default=16))
    objective = Curve()
    run(tmp_path, objective, trials=2, backend=backend, space=space)
    assert objective.calls[0] == {"lr": 0.003, "width": 16}
    assert objective.calls[1] != objective.calls[0]


@engines
def test_failed_trial_is_recorded_and_the_search_goes_on(tmp_path, backend, algorithm):
    objective = Curve(fail_when=lambda params: len(objective.calls) == 2)
    run(tmp_path, objective, trials=3, backend=backend)
    frame = board(tmp_path)
    assert frame["state"].tolist() == ["COMPLETE", "FAIL", "COMPLETE"]
    assert frame.loc[1, "error"] == "RuntimeError: boom: bad params"


@engines
def test_a_non_finite_metric_fails_the_trial_the_same_way(tmp_path, backend, algorithm):
    def no_value(params, reporter):
        reporter.report(0, {"val_accuracy": 0.5})
        return {"val_accuracy": float("nan")}

    run(tmp_path, no_value, trials=1, backend=backend)
    row = board(tmp_path).iloc[0]
    assert row["state"] == "FAIL" and row["error"].startswith("the objective returned no finite 'val_accuracy'")


@engines
def test_three_failures_in_a_row_stop_the_search_and_the_study_resumes(tmp_path, backend, algorithm):
    with pytest.raises(SearchAborted, match="3 trials failed in a row"):
        run(tmp_path, Curve(fail_when=lambda params: True), trials=10, backend=backend)
    assert board(tmp_path)["state"].tolist() == ["FAIL"] * 3
    objective = Curve()
    run(tmp_path, objective, trials=4, backend=backend)
    assert len(objective.calls) == 1 and board(tmp_path)["state"].tolist() == ["FAIL"] * 3 + ["COMPLETE"]


@engines
def test_a_clearly_worse_curve_is_pruned_by_the_median_rule(tmp_path, backend, algorithm):
    run(tmp_path, Curve(epochs=4), trials=3, backend=backend)
    run(tmp_path, Flat(epochs=4), trials=4, backend=backend)
    row = board(tmp_path).set_index("trial").loc[3]
    assert row["state"] == "PRUNED" and row["epochs"] == 3  # warm-up of 2 epochs, pruned at the third
    assert row["val_accuracy"] == pytest.approx(0.01) and row["best_epoch"] == 1


@engines
def test_the_curve_rule_stops_a_curve_that_cannot_catch_up_and_the_study_keeps_it(tmp_path, backend, algorithm):
    run(tmp_path, Curve(epochs=4), trials=1, backend=backend, pruner="curve")
    assert (board(tmp_path)["state"] == "COMPLETE").all()  # the first trial (the baseline) is never cut
    run(tmp_path, Flat(epochs=4), trials=2, backend=backend, pruner="curve")  # resumed with it
    row = board(tmp_path).set_index("trial").loc[1]
    assert row["state"] == "PRUNED" and row["epochs"] == 2  # warm-up of 1 epoch, pruned after the second
    assert json.loads((tmp_path / "s" / "study.json").read_text())["pruner"] == "curve"
    rows, meta = load_study_rows(tmp_path, "s", None)
    assert dict(header(rows, meta))["Engine"] == f"{backend}/{algorithm}, curve pruning"  # `report` names it
    assert f"({backend}/{algorithm}, curve pruning" in (tmp_path / "out.txt").read_text()  # and the run's first line


@engines
def test_no_prune_lets_the_bad_curve_finish(tmp_path, backend, algorithm):
    run(tmp_path, Curve(epochs=4), trials=3, backend=backend)
    run(tmp_path, Flat(epochs=4), trials=4, backend=backend, pruner="none")
    assert board(tmp_path)["state"].tolist()[-1] == "COMPLETE"


@engines
def test_ctrl_c_continues_the_trial_from_its_checkpoint_with_its_parameters_and_seed(tmp_path, backend, algorithm):
    objective = Curve(interrupt_at=2)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, objective, trials=3, backend=backend, seed=5)
    interrupted = objective.calls[1]
    resumed = Curve()
    run(tmp_path, resumed, trials=3, backend=backend, seed=5)
    assert resumed.calls[0] == interrupted and len(resumed.calls) == 2  # it again, then the missing one
    number, first_epoch, _, seed = resumed.starts[0]
    assert first_epoch == 1 and seed == 6  # after its checkpointed epoch, with the seed it had
    frame = board(tmp_path)
    assert len(frame) == 3 and (frame["state"] == "COMPLETE").all()
    assert frame.loc[frame["trial"] == number, "resumed_from"].item() == 1  # it shows once, saying what it continues


@engines
def test_bad_input_from_the_objective_stops_the_search_and_loses_nothing(tmp_path, backend, algorithm):
    with pytest.raises(UsageError, match="--data: no images"):
        run(tmp_path, Curve(raise_usage=True), trials=2, backend=backend)
    assert board(tmp_path).loc[0, "error"] == "--data: no images"
    objective = Curve()
    run(tmp_path, objective, trials=2, backend=backend)  # fixed: two trials finish, none was lost
    assert len(objective.calls) == 2
    assert (board(tmp_path)["state"] == "COMPLETE").sum() == 2


@engines
def test_timeout_stops_starting_trials(tmp_path, backend, algorithm):
    run(tmp_path, Curve(), trials=50, backend=backend, timeout_s=0.0)
    assert board(tmp_path).empty


@engines
def test_resuming_with_a_changed_setup_or_under_another_backend_is_refused(tmp_path, backend, algorithm):
    run(tmp_path, Curve(), trials=1, backend=backend, identity={"data": "a"})
    study_files = {p: p.read_bytes() for p in (tmp_path / "s").rglob("*") if p.is_file()}
    with pytest.raises(UsageError, match="different setup .*data 'a' -> 'b'.*pass a new --study"):
        run(tmp_path, Curve(), trials=2, backend=backend, identity={"data": "b"})
    changed = Space({**dict(SPACE.items()), "lr": Float(1e-3, 1.0, log=True)})
    with pytest.raises(UsageError, match="space changed lr"):
        run(tmp_path, Curve(), trials=2, backend=backend, space=changed, identity={"data": "a"})
    other = "kerastuner" if backend == "optuna" else "optuna"
    with pytest.raises(UsageError, match=f"run with the {backend} backend; pass --backend {backend}"):
        run(tmp_path, Curve(), trials=2, backend=other, identity={"data": "a"})
    assert {p: p.read_bytes() for p in (tmp_path / "s").rglob("*") if p.is_file()} == study_files  # nothing changed
