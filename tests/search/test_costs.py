"""Trial costs: the objective's `costs.json` reaches the leaderboard under both engines, and the
Optuna storage keeps it (a report from the storage alone has it)."""

import optuna
import pandas as pd
import pytest
from rich.console import Console

from search import Choice, Space, Study
from search.engines.optuna.storage import make_storage, rows_from_study
from search.loop import StudyLoop
from search.options import RunOptions
from search.records import costs, leaderboard
from search.report.display import Display

SPACE = Space(width=Choice([8, 16]))
SPEC = Study(pipeline="fake", metric="val_accuracy", trials=2, max_epochs=1)


def objective(params, reporter):
    """Reports one epoch and records a cost that grows with the width, as a model would."""
    costs.write(reporter.trial_dir, {"params": 100 * params["width"], "flops": 2000 * params["width"], "infer_ms": 0.5})
    reporter.report(0, {"val_accuracy": params["width"] / 100, "val_loss": 1.0})
    return {"val_accuracy": params["width"] / 100}


def test_clean_keeps_known_finite_numbers_only():
    assert costs.clean({"params": 5, "flops": float("nan"), "infer_ms": True, "other": 1}) == {"params": 5}
    assert costs.clean(None) == {}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # KerasTuner 1.4.8's threading.currentThread()
@pytest.mark.parametrize("backend", ["optuna", "kerastuner"])
def test_both_engines_fill_the_cost_columns(tmp_path, backend):
    options = RunOptions(study_name="s", study_dir=tmp_path / "s", trials=2, in_process=True, backend=backend)
    display = Display(SPEC.metric, console=Console(file=open(tmp_path / "out.txt", "a"), width=200))
    StudyLoop(SPACE, SPEC, objective, options, display).run()
    board = pd.read_csv(tmp_path / "s" / "leaderboard.csv")
    assert list(board.columns) == leaderboard.base_columns("val_accuracy") + ["param_width"]
    assert (board["params"] == 100 * board["param_width"]).all() and (
        board["flops"] == 2000 * board["param_width"]
    ).all()
    assert (board["infer_ms"] == 0.5).all()
    assert leaderboard.sort_best_first(board, "params", "minimize")["params"].is_monotonic_increasing
    if backend == "optuna":  # from the storage alone, as `report --storage` reads it
        study = optuna.load_study(study_name="s", storage=make_storage(tmp_path / "s", None))
        frame = leaderboard.build(rows_from_study(study, "val_accuracy", "tpe"), "val_accuracy", ["width"])
        assert frame["params"].tolist() == board["params"].tolist()
