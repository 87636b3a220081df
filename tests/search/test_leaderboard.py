"""The leaderboard frame: schema, best-first order, renderers, and the compact terminal table."""

import io
import json

import pandas as pd
from rich.console import Console

from search.records import leaderboard
from search.report import formats
from search.report.display import leaderboard_table

ROWS = [
    {
        "trial": 0,
        "state": "COMPLETE",
        "val_loss": 0.9,
        "val_accuracy": 0.60,
        "epochs": 3,
        "best_epoch": 2,
        "backend": "optuna",
        "algorithm": "tpe",
        "params": {"loss": "ce", "lr": 0.01},
    },
    {
        "trial": 1,
        "state": "PRUNED",
        "val_accuracy": 0.20,
        "epochs": 2,
        "best_epoch": 1,
        "backend": "optuna",
        "algorithm": "tpe",
        "params": {"loss": "ce_smooth", "lr": 0.1, "label_smoothing": 0.1},
    },
    {
        "trial": 2,
        "state": "FAIL",
        "error": "nan loss",
        "backend": "optuna",
        "algorithm": "tpe",
        "params": {"loss": "ce", "lr": 1.0},
    },
    {
        "trial": 3,
        "state": "COMPLETE",
        "val_loss": 0.5,
        "val_accuracy": 0.80,
        "epochs": 3,
        "best_epoch": 3,
        "backend": "optuna",
        "algorithm": "tpe",
        "params": {"loss": "ce", "lr": 0.001},
    },
    {"trial": 4, "state": "RUNNING", "backend": "optuna", "algorithm": "tpe", "params": {"loss": "ce", "lr": 0.002}},
]


def frame():
    return leaderboard.build(ROWS, "val_accuracy", ["loss", "label_smoothing", "lr"])


def test_schema_and_integer_columns():
    board = frame()
    assert list(board.columns) == leaderboard.base_columns("val_accuracy") + [
        "param_loss",
        "param_label_smoothing",
        "param_lr",
    ]
    assert str(board["epochs"].dtype) == "Int64" and str(board["best_epoch"].dtype) == "Int64"
    assert pd.isna(board.loc[0, "param_label_smoothing"]) and board.loc[1, "param_label_smoothing"] == 0.1


def test_best_first_for_both_directions():
    assert leaderboard.sort_best_first(frame(), "val_accuracy", "maximize")["trial"].tolist() == [3, 0, 1, 4, 2]
    by_loss = leaderboard.sort_best_first(leaderboard.build(ROWS, "val_loss", ["lr"]), "val_loss", "minimize")
    assert by_loss["trial"].tolist() == [3, 0, 1, 4, 2]


def test_csv_round_trip_json_and_markdown():
    board = frame()
    back = pd.read_csv(io.StringIO(formats.render(board, "csv")))
    assert back["trial"].tolist() == board["trial"].tolist()
    assert back["val_accuracy"].tolist()[:2] == [0.6, 0.2]
    rows = json.loads(formats.render(board, "json"))
    assert rows[2]["error"] == "nan loss" and rows[2]["val_accuracy"] is None and rows[0]["epochs"] == 3
    lines = formats.render(board, "markdown").splitlines()
    assert lines[0].startswith("| trial | state | val_accuracy") and set(lines[1].replace("|", "").split()) == {"---"}
    assert len(lines) == 2 + len(board)


def test_table_keeps_columns_blank_in_some_rows_and_captions_constant_ones():
    console = Console(file=io.StringIO(), width=250)
    console.print(leaderboard_table(frame(), title="t"))
    text = console.file.getvalue()
    header = next(line for line in text.splitlines() if "trial" in line)
    assert "label_smoothing" in header and "error" in header and "lr" in header
    assert "backend" not in header and "backend=optuna" in text
