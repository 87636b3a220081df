"""The command line end to end, in subprocesses, on a tiny synthetic dataset the test draws."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
CNN_SPACE = ROOT / "spaces" / "cnn.py"
TINY = ["--image-size", "32", "--max-epochs", "1", "--set", "batch_size=16"]


def leafsearch(*args, cwd: Path, timeout=600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m leafsearch ARGS` on the CPU, with `env` added to the environment."""
    import os

    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONPATH": str(ROOT),
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "leafsearch", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data") / "leaves"
    done = leafsearch("demo-data", folder, "--images", "112", "--image-size", "32", cwd=folder.parent)
    assert done.returncode == 0, done.stderr
    assert len(list(folder.iterdir())) == 14
    return folder


@pytest.mark.slow  # studies in subprocesses
def test_run_then_resume_adds_exactly_the_missing_trials(tmp_path, tiny_data):
    first = leafsearch("run", CNN_SPACE, "--data", tiny_data, "--trials", "2", *TINY, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Trial 0" in first.stdout and "Trial 1" in first.stdout and "best val_accuracy" in first.stdout
    board_path = tmp_path / "results" / "cnn" / "leaderboard.csv"
    board = pd.read_csv(board_path)
    assert len(board) == 2 and (board["state"] == "COMPLETE").all()
    assert board["val_accuracy"].between(0, 1).all()
    space_params = [
        "batch_size",
        "learning_rate",
        "dropout",
        "dense_units",
        "patience",
        "image_size",
        "aug_flip",
        "aug_rotation",
        "aug_zoom",
        "leaf_mask",
    ]  # the leaves' augmentations and the (absent) leaf mask head, named in the space
    assert sorted(c for c in board.columns if c.startswith("param_")) == sorted("param_" + p for p in space_params)
    from search.records.leaderboard import base_columns

    assert list(board.columns) == base_columns("val_accuracy") + ["param_" + p for p in space_params]
    assert (board["param_batch_size"] == 16).all() and (board["param_image_size"] == 32).all()
    run_info = json.loads((tmp_path / "results" / "cnn" / "trials" / "0" / "run.json").read_text())
    assert run_info["seed"] == 0 and "tensorflow" in run_info and "keras" in run_info

    second = leafsearch("run", CNN_SPACE, "--data", tiny_data, "--trials", "3", *TINY, cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "2 of 3 trials finished, running 1 more" in second.stdout
    resumed = pd.read_csv(board_path)
    assert resumed["trial"].tolist() == [0, 1, 2]
    pd.testing.assert_frame_equal(resumed.iloc[:2].reset_index(drop=True), board)

    report = leafsearch("report", "--format", "json", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    rows = json.loads(report.stdout)
    values = [row["val_accuracy"] for row in rows]
    assert len(rows) == 3 and values == sorted(values, reverse=True)

    table = leafsearch("report", "--study", "cnn", "--top", "2", "--plots", cwd=tmp_path)
    assert table.returncode == 0 and "Study cnn" in table.stdout
    assert (
        tmp_path / "results" / "cnn" / "plots" / "learning_curves.png"
    ).is_file() and "Plot skipped" not in table.stdout

    # The study opens unchanged in Optuna's own tools, with the leaderboard's trials.
    import optuna

    journal = optuna.storages.journal.JournalFileBackend(str(tmp_path / "results" / "cnn" / "study.journal"))
    study = optuna.load_study(study_name="cnn", storage=optuna.storages.JournalStorage(journal))
    assert [t.number for t in study.trials] == resumed["trial"].tolist()
    assert [t.value for t in study.trials] == pytest.approx(resumed["val_accuracy"].tolist())

    csv_out = tmp_path / "board.csv"
    assert leafsearch("report", "--format", "csv", "--output", csv_out, cwd=tmp_path).returncode == 0
    assert pd.read_csv(csv_out)["trial"].tolist() == [rows[0]["trial"], rows[1]["trial"], rows[2]["trial"]]

    # A larger-image study warm-started from this one runs its best trial first, projected.
    warm = leafsearch(
        "run",
        CNN_SPACE,
        "--data",
        tiny_data,
        "--trials",
        "1",
        *TINY,
        "--image-size",
        "48",
        "--study",
        "cnn48",
        "--warm-start",
        "cnn",
        cwd=tmp_path,
    )
    assert warm.returncode == 0, warm.stderr[-3000:]
    flat = " ".join(warm.stdout.split())
    assert f"Warm start from cnn: 1 trial queued first (its trial {rows[0]['trial']}," in flat
    assert "dropped image_size=32 (new space: fixed at 48)" in flat
    warm_row = pd.read_csv(tmp_path / "results" / "cnn48" / "leaderboard.csv").iloc[0]
    carried = {c: rows[0][c] for c in rows[0] if c.startswith("param_") and c != "param_image_size"}
    assert {c: warm_row[c] for c in carried} == pytest.approx(carried) and warm_row["param_image_size"] == 48
    shown = leafsearch("report", "--study", "cnn48", cwd=tmp_path)
    assert f"from study cnn (its trials {rows[0]['trial']}, run first)" in shown.stdout


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.slow  # a study in subprocesses
def test_under_jax_no_tensorflow_start_up_logging_reaches_the_output(tmp_path, tiny_data):
    """Keras under JAX does not import TensorFlow; the trial's TensorBoard logging (tf.summary)
    does, and TensorFlow's C++ start-up lines, printed before its logging is set up, ignore
    TF_CPP_MIN_LOG_LEVEL: six of them came between the progress lines of every trial."""
    import importlib.util

    if importlib.util.find_spec("jax") is None or importlib.util.find_spec("tensorboard") is None:
        pytest.skip("needs JAX and TensorBoard installed")
    done = leafsearch(
        "run", CNN_SPACE, "--data", tiny_data, "--trials", "1", *TINY, cwd=tmp_path, env={"KERAS_BACKEND": "jax"}
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Trial 0 COMPLETE" in done.stdout
    assert any((tmp_path / "results" / "cnn" / "tb" / "0").iterdir())  # the trial imported TensorFlow and logged
    chatter = ("absl::InitializeLog", "oneDNN", "cudart_stub", "Could not find cuda drivers")
    assert [line for line in (done.stdout + done.stderr).splitlines() if any(c in line for c in chatter)] == []


@pytest.mark.parametrize(
    "make_args, fragment",
    [
        (lambda tmp, data: ["run", tmp / "missing.py"], "space file not found"),
        (lambda tmp, data: ["run", write(tmp / "bad.py", "SPACE = Space(\n")], "bad.py:1: syntax error"),
        (
            lambda tmp, data: [
                "run",
                write(tmp / "range.py", CNN_SPACE.read_text().replace("Float(1e-4, 1e-2", "Float(1e-2, 1e-4")),
            ],
            "parameter `learning_rate`: low must be < high",
        ),
        (lambda tmp, data: ["run", CNN_SPACE, "--data", tmp / "nowhere"], "nowhere"),
        (lambda tmp, data: ["run", CNN_SPACE, "--data", tmp / "flat"], "sub-folder"),
        (lambda tmp, data: ["run", CNN_SPACE, "--set", "batch_size=12"], "--set batch_size=12: outside the space"),
        (lambda tmp, data: ["run", CNN_SPACE, "--set", "colour=red"], "unknown parameter `colour`"),
        (lambda tmp, data: ["run", CNN_SPACE, "--algorithm", "grid"], "--algorithm grid"),
        (
            lambda tmp, data: ["run", CNN_SPACE, "--no-prune", "--pruner", "asha"],
            "--no-prune contradicts --pruner asha",
        ),
        (lambda tmp, data: ["run", CNN_SPACE, "--backend", "kerastuner", "--pruner", "asha"], "--algorithm hyperband"),
        (lambda tmp, data: ["run", CNN_SPACE, "--trials", "zero"], "--trials"),
        (lambda tmp, data: ["report"], "no study found"),
        (lambda tmp, data: ["run", CNN_SPACE, "--seed", "-1"], "--seed"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, make_args, fragment):
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "loose.jpg").write_bytes(b"images but no class sub-folders")
    done = leafsearch(*make_args(tmp_path, None), cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert fragment in lines[0] and "Traceback" not in done.stderr
    assert not (tmp_path / "results" / "cnn" / "study.journal").exists()


@pytest.mark.slow  # an EfficientNet study in a subprocess
def test_finetune_space_runs_end_to_end_with_tiny_overrides(tmp_path, tiny_data):
    """EfficientNet-B0 at 32 px, no pretrained weights, one epoch per phase: one leaderboard row."""
    done = leafsearch(
        "run",
        ROOT / "spaces" / "finetune.py",
        "--data",
        tiny_data,
        "--trials",
        "1",
        "--backbone",
        "efficientnet_b0",
        "--weights",
        "none",
        *TINY,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    board = pd.read_csv(tmp_path / "results" / "finetune" / "leaderboard.csv")
    assert len(board) == 1 and board.loc[0, "state"] == "COMPLETE"
    assert board.loc[0, "epochs"] == 2  # one transfer epoch, then one fine-tuning epoch
    assert board.loc[0, "param_backbone"] == "efficientnet_b0" and board.loc[0, "param_weights"] == "none"
    assert 1 <= board.loc[0, "param_unfreeze_blocks"] <= 7
    run_info = json.loads((tmp_path / "results" / "finetune" / "trials" / "0" / "run.json").read_text())
    assert run_info["weights_origin"] == {"none": {"weights": "none"}}  # what the backbone started from


@pytest.mark.slow  # subprocesses: the demo data, then the run
def test_imagenet_weights_offline_fail_fast_with_one_line(tmp_path, tiny_data):
    import os

    offline = {
        "KERAS_HOME": str(tmp_path / "keras"),
        "https_proxy": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
    }
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT), **offline}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "leafsearch",
            "run",
            str(ROOT / "spaces" / "transfer.py"),
            "--data",
            str(tiny_data),
            "--image-size",
            "32",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--weights imagenet" in lines[0]
    assert "--weights PATH" in lines[0] and "--weights none" in lines[0]
    assert not (tmp_path / "results" / "transfer" / "study.journal").exists()


@pytest.mark.slow  # a run in a subprocess that reads the data
def test_a_class_with_one_image_is_bad_input_before_any_trial(tmp_path):
    from PIL import Image

    for name in ("Apple", "Corn"):
        (tmp_path / "one" / name).mkdir(parents=True)
        Image.new("RGB", (8, 8), (10, 200, 10)).save(tmp_path / "one" / name / "x.png")
    done = leafsearch("run", CNN_SPACE, "--data", tmp_path / "one", *TINY, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("leafsearch run: error: class folder")
    assert "fewer than 2 readable images" in done.stderr
    assert not (tmp_path / "results" / "cnn" / "study.journal").exists()


@pytest.mark.slow  # a study and reports in subprocesses
def test_a_multi_objective_study_with_a_constraint_end_to_end(tmp_path, tiny_data):
    """Accuracy against inference time: both objectives and the front in the leaderboard, a
    constraint checked, `report --pareto` and the front's plot."""
    done = leafsearch(
        "run",
        CNN_SPACE,
        "--data",
        tiny_data,
        "--trials",
        "3",
        "--objective",
        "infer_ms",
        "--constraint",
        "params<=1e9",
        *TINY,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 objectives" in done.stdout
    board = pd.read_csv(tmp_path / "results" / "cnn" / "leaderboard.csv")
    assert {"val_accuracy", "infer_ms", "pareto"} <= set(board.columns) and board["pareto"].any()
    assert (board["state"] == "COMPLETE").all() and (board["infer_ms"] > 0).all()
    front = leafsearch("report", "--pareto", "--plots", "--format", "json", cwd=tmp_path)
    assert front.returncode == 0, front.stderr
    rows = json.loads(front.stdout)
    assert sorted(r["trial"] for r in rows) == sorted(board.loc[board["pareto"], "trial"])
    assert [r["val_accuracy"] for r in rows] == sorted((r["val_accuracy"] for r in rows), reverse=True)
    assert (tmp_path / "results" / "cnn" / "plots" / "pareto_front.png").read_bytes()[:4] == b"\x89PNG"
    page = leafsearch("report", "--format", "html", cwd=tmp_path).stdout
    assert "<h2>Pareto front of val_accuracy, infer_ms</h2>" in page
    header = leafsearch("report", "--format", "markdown", cwd=tmp_path).stdout
    assert (
        "**Objectives:** val_accuracy (maximize), infer_ms (minimize)" in header
        and "**Constraints:** params &lt;= 1e+09" in header
    )


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--backend", "kerastuner", "--objective", "infer_ms"], "--backend kerastuner optimises one objective"),
        (["--objective", "accuracy"], "--objective: 'accuracy' is not a cost column"),
        (["--objective", "infer_ms:down"], "the direction of infer_ms must be 'maximize' or 'minimize'"),
        (["--constraint", "infer_ms<10"], "--constraint: expected NAME<=BOUND"),
        (["--constraint", "val_accuracy<=0.9"], "val_accuracy is the metric the study optimises"),
    ],
)
def test_bad_objectives_and_constraints_are_one_line(tmp_path, capsys, extra, fragment):
    from leafsearch.cli.main import main

    assert main(["run", str(CNN_SPACE), "--results", str(tmp_path / "results"), *extra]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1
    assert not (tmp_path / "results" / "cnn").exists()


@pytest.mark.parametrize(
    "source, fragment",
    [
        ("nope", "--warm-start: no study 'nope' in "),
        ("cnn", "--warm-start cnn: that is the study being run"),
        ("failed", "--warm-start: study 'failed' has no complete trial yet"),
    ],
)
def test_a_bad_warm_start_is_one_line_and_writes_nothing(tmp_path, capsys, source, fragment):
    from optuna.trial import TrialState

    from leafsearch.cli.main import main
    from tests.search import toy_study

    results = tmp_path / "results"
    toy_study.make_study(
        results,
        name="failed",
        trials=[(TrialState.PRUNED, 0.2, 2, {"learning_rate": 1e-3, "dense_units": 64, "loss": "ce"}, "")],
    )
    before = {p: p.read_bytes() for p in results.rglob("*") if p.is_file()}
    assert main(["run", str(CNN_SPACE), "--results", str(results), "--warm-start", source]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1
    assert {p: p.read_bytes() for p in results.rglob("*") if p.is_file()} == before  # nothing written, nothing changed


@pytest.mark.parametrize("path", sorted((ROOT / "spaces").glob("*.py")), ids=lambda p: p.name)
def test_every_shipped_space_file_is_valid(path):
    from leafsearch.training.setup import load_space

    space, spec = load_space(str(path))
    assert space.names and spec.trials >= 1
    if path.name == "efficient.py":  # the seed's question: accuracy per millisecond
        assert spec.all_objectives == {"val_accuracy": "maximize", "infer_ms": "minimize"}
