"""The report's plots on a small finished study: every PNG exists, opens, has the common size
and is not blank; the KerasTuner layout gets them from the leaderboard; degenerate studies skip
what cannot be drawn instead of failing."""

import json

from optuna.trial import TrialState
from PIL import Image

from search.engines.optuna.space import distributions
from search.records import leaderboard
from search.report import plots
from tests.search.toy_study import METRIC, SPACE, make_study

EXPECTED = [
    "optimization_history",
    "param_importances",
    "parallel_coordinate",
    "slice_dense_units",
    "slice_label_smoothing",
    "slice_learning_rate",
    "slice_loss",
    "learning_curves",
]


def histories(study_dir):
    return {int(p.parent.name): json.loads(p.read_text()) for p in (study_dir / "trials").glob("*/history.json")}


def assert_real_png(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (int(plots.SIZE[0] * plots.DPI), int(plots.SIZE[1] * plots.DPI))
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert (
        len(colours) > 10 and max(count for count, _ in colours) < 0.9 * image.size[0] * image.size[1]
    )  # drawn, not blank


def test_every_plot_is_a_real_png(tmp_path):
    study_dir = make_study(tmp_path)
    board = leaderboard.read(study_dir / "leaderboard.csv")
    drawn = plots.write_plots(
        board, METRIC, "maximize", distributions(SPACE), histories(study_dir), study_dir / "plots"
    )
    assert drawn.skipped == []
    assert [p.stem for p in drawn.written] == EXPECTED
    for path in drawn.written:
        assert path.parent == study_dir / "plots"
        assert_real_png(path)


def test_inferred_distributions_keep_kinds_and_leave_out_constants(tmp_path):
    board = leaderboard.read(make_study(tmp_path) / "leaderboard.csv")
    inferred = plots.infer_distributions(board)
    assert sorted(inferred) == ["dense_units", "label_smoothing", "learning_rate", "loss"]  # batch_size is constant
    assert inferred["dense_units"].low == 64 and inferred["loss"].choices == ("<b>x", "ce")
    study = plots.study_from_frame(board, METRIC, "maximize", distributions(SPACE))
    assert [t.state for t in study.trials].count(TrialState.COMPLETE) == 4 and len(study.trials) == 6
    assert study.trials[1].params == {
        "learning_rate": 0.003,
        "dense_units": 256,
        "loss": "<b>x",
        "label_smoothing": 0.1,
    }


def test_degenerate_studies_skip_with_a_note(tmp_path):
    one = [
        (TrialState.COMPLETE, 0.5, 2, {"learning_rate": 1e-3, "dense_units": 128, "loss": "ce"}, ""),
        (TrialState.FAIL, None, 1, {"learning_rate": 1e-2, "dense_units": 64, "loss": "ce"}, "nan loss"),
    ]
    study_dir = make_study(tmp_path, trials=one)
    board = leaderboard.read(study_dir / "leaderboard.csv")
    drawn = plots.write_plots(board, METRIC, "maximize", distributions(SPACE), histories(study_dir), tmp_path / "one")
    assert [p.stem for p in drawn.written] == ["optimization_history", "learning_curves"]
    assert drawn.skipped == ["importance, parallel coordinates, slices: need 2 finished trials, the study has 1"]
    failed_only = board[board["state"] == "FAIL"]
    drawn = plots.write_plots(failed_only, METRIC, "maximize", None, {}, tmp_path / "none")
    assert drawn.written == [] and len(drawn.skipped) == 3
    assert drawn.skipped[0] == "optimization_history: no complete trial yet"
