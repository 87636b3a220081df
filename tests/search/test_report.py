"""The report on a small finished study: formats (CSV round trip, JSON, markdown, self-contained
escaped HTML), the header, --state and --sort, and stored test-set evaluations."""

import io
import json
import re

import pandas as pd
import pytest

from search.errors import UsageError
from search.records import leaderboard
from search.report import html as report_html
from search.report import summary as report
from tests.search.toy_study import METRIC, make_study

META = {
    "study": "toy",
    "metric": METRIC,
    "direction": "maximize",
    "backend": "optuna",
    "algorithm": "tpe",
    "storage": "postgresql://leaf:***@db/leafsearch",
}
EVALUATION = {
    "trial": 1,
    "data": "/data/test-leaves",
    "images": 40,
    "accuracy": 0.875,
    "per_class": {"Alnus": 0.9, "<oak>": 0.85},
    "confusion_png": "evaluations/1-confusion.png",
    "evaluated_at": "2025-01-02T10:00:00",
}


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("results"))


@pytest.fixture
def board(study_dir):
    return leaderboard.sort_best_first(leaderboard.read(study_dir / "leaderboard.csv"), METRIC, "maximize")


def test_csv_parses_back_to_the_same_rows_and_json_is_valid(board):
    back = pd.read_csv(
        io.StringIO(report.compose("csv", "Study toy", board, report.header(board, META), pd.DataFrame()))
    )
    pd.testing.assert_frame_equal(back, board)
    rows = json.loads(report.compose("json", "Study toy", board, [], pd.DataFrame()))
    assert [row["trial"] for row in rows] == board["trial"].tolist() == [1, 4, 0, 5, 2, 3]
    assert rows[-1]["state"] == "FAIL" and rows[-1][METRIC] is None and rows[-1]["error"] == "nan loss"


def test_markdown_has_the_header_then_a_table_with_a_header_row(board):
    text = report.compose("markdown", "Study toy", board, report.header(board, META), pd.DataFrame())
    lines = text.splitlines()
    assert lines[0] == "# Study toy" and "- **Trials:** 6 (4 complete, 1 pruned, 1 fail)" in lines
    first = lines.index(next(line for line in lines if line.startswith("| trial | state | val_accuracy")))
    assert set(lines[first + 1].replace("|", "").split()) == {"---"}
    assert "&lt;b&gt;x" in text and "<b>x" not in text  # a value is never markup


def test_html_is_one_self_contained_page_with_every_trial_and_escaped_values(board, tmp_path):
    png = tmp_path / "history.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n fake")
    page = report_html.document("Study toy", report.header(board, META), [("Leaderboard", board)], [png])
    cells = re.findall(r'<tr class="(\w+)"><td>(\d+)</td>', page)
    assert sorted(int(n) for _, n in cells) == [0, 1, 2, 3, 4, 5] and ("FAIL", "3") in cells
    assert "&lt;b&gt;x" in page and "<b>x" not in page
    assert "data:image/png;base64," in page and "<script" not in page and "<link" not in page and "http" not in page
    assert "leaf:***@db" in page


def test_header_counts_best_and_time(board):
    header = dict(report.header(board, META))
    assert header["Engine"] == "optuna/tpe" and header["Storage"] == META["storage"]
    assert header["Trials"] == "6 (4 complete, 1 pruned, 1 fail)"
    assert header["Best"] == "trial 1: val_accuracy=0.7"
    assert (
        header["Best parameters"] == "learning_rate=0.003 dense_units=256 loss=<b>x label_smoothing=0.1 batch_size=16"
    )
    assert header["Trial time"] == "2m 15s in total, 22.5s a trial on average (6 timed)"
    assert report.header(board.iloc[0:0], META)[3] == ("Trials", "none yet")
    assert dict(report.header(board, {**META, "pruner": "asha"}))["Engine"] == "optuna/tpe, asha pruning"
    assert dict(report.header(board, {**META, "pruner": "none"}))["Engine"] == "optuna/tpe, no pruning"


def test_state_filter_and_sort_orders(board):
    assert report.filter_state(board, "pruned")["trial"].tolist() == [2]
    assert report.filter_state(board, "all").equals(board)
    assert report.sort_by(board, "duration_s", METRIC, "maximize")["trial"].tolist() == [0, 1, 2, 3, 4, 5]
    assert report.sort_by(board, METRIC, METRIC, "maximize")["trial"].tolist() == [1, 4, 0, 5, 2, 3]  # blanks last
    assert report.sort_by(board, f"{METRIC}:asc", METRIC, "maximize")["trial"].tolist() == [2, 5, 0, 4, 1, 3]
    assert report.sort_by(board, "learning_rate:desc", METRIC, "maximize")["trial"].tolist() == [3, 2, 5, 1, 0, 4]
    assert report.sort_by(board, "loss", METRIC, "maximize")["param_loss"].tolist()[:2] == ["<b>x", "<b>x"]
    with pytest.raises(UsageError, match=r"--sort nope: no such column; use one of trial, state, val_accuracy"):
        report.sort_by(board, "nope", METRIC, "maximize")
    with pytest.raises(UsageError, match="asc or desc"):
        report.sort_by(board, "trial:up", METRIC, "maximize")


def test_stored_evaluations_are_read_and_shown(board, tmp_path):
    folder = tmp_path / "evaluations"
    folder.mkdir()
    (folder / "1-test-leaves-0a1b2c3d.json").write_text(json.dumps(EVALUATION))
    wild = {
        **EVALUATION,
        "data": "/data/seed-test",
        "accuracy": 0.5,
        "images": 80,
        "subsets": {"clean": {"accuracy": 0.875, "images": 40}, "wild": {"accuracy": 0.125, "images": 40}},
    }
    (folder / "1-seed-test-4e5f6a7b.json").write_text(json.dumps(wild))  # the same trial on another folder: both kept
    (folder / "broken.json").write_text("{not json")
    evaluations = report.load_evaluations(folder)
    assert evaluations[report.EVALUATION_COLUMNS].to_dict(orient="records") == [
        {
            "trial": 1,
            "data": "/data/seed-test",
            "accuracy": 0.5,
            "subsets": "clean 0.875 (40), wild 0.125 (40)",
            "images": 80,
            "evaluated_at": "2025-01-02T10:00:00",
        },
        {
            "trial": 1,
            "data": "/data/test-leaves",
            "accuracy": 0.875,
            "subsets": "",
            "images": 40,
            "evaluated_at": "2025-01-02T10:00:00",
        },
    ]
    text = report.compose("markdown", "Study toy", board, report.header(board, META), evaluations)
    assert "## Test-set evaluations" in text and "| 1 | /data/test-leaves | 0.875 |  | 40 |" in text
    assert "| 1 | /data/seed-test | 0.5 | clean 0.875 (40), wild 0.125 (40) | 80 |" in text
    assert report.load_evaluations(tmp_path / "missing").empty


def test_terminal_table_shows_values_as_typed_not_as_rich_markup():
    from rich.console import Console

    from search.report.display import leaderboard_table

    frame = pd.DataFrame(
        {
            "trial": [0, 1],
            "state": ["COMPLETE", "FAIL"],
            "param_tag": ["[bold]x", "plain"],
            "error": ["", "bad [red]value"],
        }
    )
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(leaderboard_table(frame))
    text = console.export_text()
    assert "[bold]x" in text and "bad [red]value" in text
