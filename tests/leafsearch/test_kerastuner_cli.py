"""`leafsearch run --backend kerastuner` end to end: Hyperband's budgets, its continued trials and
resume. Bayesian through the command line into the shared leaderboard schema, and `leafsearch report`:
test_workers.py (the chief and two workers); random: test_storage_faults.py (a chief restarted)."""

import json

import pandas as pd
import pytest
from test_cli import CNN_SPACE, TINY, leafsearch, tiny_data  # noqa: F401 - tiny_data is a fixture

pytestmark = pytest.mark.slow  # KerasTuner studies in subprocesses


def optuna_columns() -> list[str]:
    """The columns an Optuna study of spaces/cnn.py writes (test_cli checks them on a real run); a
    KerasTuner study writes the same (test_workers.py checks them)."""
    from leafsearch.training.setup import load_space
    from search.records.leaderboard import PARAM_PREFIX, base_columns

    space, _ = load_space(CNN_SPACE)
    return base_columns("val_accuracy") + [PARAM_PREFIX + name for name in space.names]


def test_hyperband_budgets_continuation_and_resume(tmp_path, tiny_data):  # noqa: F811
    args = [
        "run",
        CNN_SPACE,
        "--data",
        tiny_data,
        "--backend",
        "kerastuner",
        "--algorithm",
        "hyperband",
        "--image-size",
        "32",
        "--max-epochs",
        "3",
        "--set",
        "batch_size=16",
        "--set",
        "patience=12",
    ]
    first = leafsearch(*args, "--trials", "3", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    study = tmp_path / "results" / "cnn"
    assert pd.read_csv(study / "leaderboard.csv")["epochs"].tolist() == [1, 1, 1]  # the first round's budget

    second = leafsearch(*args, "--trials", "4", cwd=tmp_path)  # resume: only the missing trial
    assert second.returncode == 0, second.stderr[-3000:]
    assert "3 of 4 trials finished, running 1 more" in second.stdout
    board = pd.read_csv(study / "leaderboard.csv")
    assert board["trial"].tolist() == [0, 1, 2, 3] and board["epochs"].tolist() == [1, 1, 1, 3]
    run_info = json.loads((study / "trials" / "3" / "run.json").read_text())
    assert run_info["epoch_budget"] == 3 and run_info["initial_epoch"] == 1
    promoted = run_info["extends_trial"]
    assert f"Trial 3 continues trial {promoted}" in second.stdout
    history = json.loads((study / "trials" / "3" / "history.json").read_text())
    first_epoch = json.loads((study / "trials" / str(promoted) / "history.json").read_text())[0]
    assert history[0] == first_epoch and "trial 3 epoch 1:" not in second.stdout  # continued, not retrained
