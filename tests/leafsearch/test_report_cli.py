"""`leafsearch report` and `leafsearch studies` on small finished studies written without
training. The CLI runs in this process (its start-up costs seconds in a subprocess), except once,
to prove that reporting never loads TensorFlow."""

import json
import subprocess
import sys

import optuna
import pytest

from leafsearch.cli import main as cli
from search.engines.optuna.storage import JOURNAL_NAME
from tests.search.toy_study import make_study

ROOT = cli.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Two studies: `toy` (Optuna, a journal) and `kt` (the KerasTuner layout), with one stored
    test-set evaluation of toy's trial 1."""
    root = tmp_path_factory.mktemp("cli") / "results"
    toy = make_study(root, "toy")
    make_study(root, "kt", backend="kerastuner")
    (toy / "evaluations").mkdir()
    (toy / "evaluations" / "1.json").write_text(
        json.dumps(
            {
                "trial": 1,
                "data": "test-leaves",
                "images": 40,
                "accuracy": 0.875,
                "per_class": {"a": 1.0},
                "confusion_png": "evaluations/1-confusion.png",
                "evaluated_at": "2025-01-02T10:00:00",
            }
        )
    )
    return root


def run(capsys, *argv):
    try:
        code = cli.main([str(arg) for arg in argv])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_table_has_the_header_the_leaderboard_and_the_evaluations(results, capsys):
    code, out, err = run(capsys, "report", "--results", results, "--study", "toy")
    assert code == 0, err
    assert out.startswith("Study toy\nEngine: optuna/tpe\n")
    assert f"Storage: {results / 'toy' / JOURNAL_NAME}" in out and "Trials: 6 (4 complete, 1 pruned, 1 fail)" in out
    assert "6 of 6 trials, best first" in out and "Test-set evaluations" in out and "test-leaves" in out


def test_state_sort_and_top_choose_the_rows(results, capsys):
    code, out, err = run(
        capsys,
        "report",
        "--results",
        results,
        "--study",
        "toy",
        "--state",
        "complete",
        "--sort",
        "duration_s:desc",
        "--top",
        "2",
        "--format",
        "json",
    )
    assert code == 0, err
    assert [row["trial"] for row in json.loads(out)] == [5, 4]


def test_bad_sort_column_is_one_line_and_exit_2(results, capsys):
    code, out, err = run(capsys, "report", "--results", results, "--study", "toy", "--sort", "colour")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(
        "leafsearch report: error: --sort colour: no such column; use one of trial, state"
    )


def test_html_report_embeds_the_plots_of_a_kerastuner_study(results, capsys, tmp_path):
    page = tmp_path / "kt.html"
    code, out, err = run(
        capsys, "report", "--results", results, "--study", "kt", "--plots", "--format", "html", "--output", page
    )
    assert code == 0, err
    plots = sorted((results / "kt" / "plots").glob("*.png"))
    assert len(plots) == 8 and "slice_loss.png" in {p.name for p in plots}  # its space from kerastuner/leafsearch.json
    assert all(f"Plot: {p}" in out for p in plots)
    text = page.read_text()
    assert text.count("data:image/png;base64,") == 8 and "&lt;b&gt;x" in text and "<b>x" not in text


def test_studies_lists_every_study(results, capsys, tmp_path):
    code, out, err = run(capsys, "studies", "--results", results)
    assert code == 0, err
    assert "2 studies" in out
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.startswith("│")}
    assert (
        set(rows) == {"toy", "kt"} and "kerastuner/random" in rows["kt"] and "val_accuracy=0.7 (trial 1)" in rows["toy"]
    )
    code, out, _ = run(capsys, "studies", "--results", tmp_path / "empty")
    assert code == 0 and out.count("\n") == 1 and out.startswith("No studies in")


def test_studies_and_report_read_a_storage_url(results, capsys, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    journal = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(results / "toy" / JOURNAL_NAME))
    )
    optuna.copy_study(from_study_name="toy", from_storage=journal, to_storage=url)
    code, out, err = run(capsys, "studies", "--storage", url)
    assert code == 0, err
    assert "toy" in out and "optuna/tpe" in out and "1 study" in out
    code, out, err = run(capsys, "report", "--storage", url, "--results", tmp_path, "--format", "markdown")
    assert code == 0, err
    assert f"- **Storage:** {url}" in out and "- **Trials:** 6 (4 complete, 1 pruned, 1 fail)" in out
    monkeypatch.setenv("LEAFSEARCH_STORAGE", url)  # as for `run`, the URL may come from the environment
    code, out, err = run(capsys, "studies")
    assert code == 0 and "toy" in out and "1 study" in out, err


def test_report_does_not_load_tensorflow(results):
    code = (
        "import sys; from leafsearch.cli import main as cli; code = cli.main(sys.argv[1:]); "
        "print([m for m in ('tensorflow', 'keras', 'keras_tuner') if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "report", "--results", str(results), "--format", "csv"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
