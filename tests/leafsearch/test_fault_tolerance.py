"""A study survives kill -9, Ctrl-C, NaN losses and bad input: through the command line, in
subprocesses, on tiny data the tests draw."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from test_cli import CNN_SPACE, ROOT, leafsearch, tiny_data  # noqa: F401 - tiny_data is a fixture

pytestmark = pytest.mark.slow  # studies in subprocesses, kill -9 and Ctrl-C

ENV = {
    **os.environ,
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "CUDA_VISIBLE_DEVICES": "",
    "PYTHONPATH": str(ROOT),
    "PYTHONUNBUFFERED": "1",
}
# No pruning: these studies are about trials continued after a kill, which a pruner reading tiny
# data's curves could stop half-way.
STUDY_ARGS = [
    "--trials",
    "2",
    "--image-size",
    "32",
    "--max-epochs",
    "3",
    "--set",
    "batch_size=16",
    "--set",
    "patience=12",
    "--pruner",
    "none",
]


def command(data: Path) -> list[str]:
    return [sys.executable, "-m", "leafsearch", "run", str(CNN_SPACE), "--data", str(data), *STUDY_ARGS]


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    # A shell that started us in the background may have set SIGINT to "ignored"; a user's terminal has not.
    restore_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    return subprocess.Popen(
        args, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=restore_sigint
    )


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def latest_checkpoint(trial_dir: Path) -> dict:
    pointer = json.loads((trial_dir / "checkpoints" / "latest.json").read_text())
    return json.loads((trial_dir / "checkpoints" / pointer["folder"] / "state.json").read_text())


def assert_continued(study: Path, out: str, old: int, new: int, checkpoint: dict) -> None:
    """Trial `new` took over trial `old` at its checkpoint instead of training from epoch 1."""
    done = checkpoint["epoch"] + 1  # epochs in the checkpoint
    assert f"Trial {new} continues trial {old} after epoch {done}." in out
    history = json.loads((study / "trials" / str(new) / "history.json").read_text())
    assert [row["epoch"] for row in history] == [0, 1, 2]
    assert history[:done] == checkpoint["history"]  # carried over, not retrained
    assert f"trial {new} epoch 1:" not in out and f"trial {new} epoch 3:" in out
    board = pd.read_csv(study / "leaderboard.csv")
    assert board["state"].tolist() == ["COMPLETE", "COMPLETE"]  # the target, each trial once
    assert board.loc[board["trial"] == new, "resumed_from"].item() == old
    params = [c for c in board.columns if c.startswith("param_")]
    assert not board.duplicated(subset=params).any()


def test_kill_9_mid_trial_then_the_same_command_continues_it_from_its_checkpoint(tmp_path, tiny_data):  # noqa: F811
    study = tmp_path / "results" / "cnn"
    proc = start(command(tiny_data), tmp_path)
    wait_for(study / "trials" / "1" / "checkpoints" / "latest.json", proc)
    proc.kill()  # SIGKILL: no handler runs, the trial stays RUNNING in the storage
    proc.communicate(timeout=60)
    time.sleep(1.5)  # the orphaned child notices its parent is gone and exits
    checkpoint = latest_checkpoint(study / "trials" / "1")
    finished = pd.read_csv(study / "leaderboard.csv")
    assert finished["state"].tolist() == ["COMPLETE", "RUNNING"]

    again = subprocess.run(command(tiny_data), cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Trial 1 was left running by a process that died" in again.stdout
    assert_continued(study, again.stdout, old=1, new=2, checkpoint=checkpoint)
    board = pd.read_csv(study / "leaderboard.csv")
    pd.testing.assert_series_equal(board.iloc[0], finished.iloc[0], check_names=False)  # finished trial kept as it was


def test_ctrl_c_exits_130_keeps_the_checkpoint_and_the_same_command_continues(tmp_path, tiny_data):  # noqa: F811
    study = tmp_path / "results" / "cnn"
    proc = start(command(tiny_data), tmp_path)
    wait_for(study / "trials" / "0" / "checkpoints" / "latest.json", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert err.strip().splitlines() == [
        "leafsearch run: interrupted; run the same command again to resume (finished trials are kept)"
    ]
    checkpoint = latest_checkpoint(study / "trials" / "0")
    board = pd.read_csv(study / "leaderboard.csv")
    assert board["state"].tolist() == ["FAIL"] and "interrupted" in board.loc[0, "error"]

    again = subprocess.run(command(tiny_data), cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_continued(study, again.stdout, old=0, new=1, checkpoint=checkpoint)


NAN_SPACE = """
from search import Choice, Fixed, Space, Study

SPACE = Space(
    learning_rate=Choice([1e30, 1e-3], default=1e30),  # the default, trial 0, diverges at once
    batch_size=Fixed(16), image_size=Fixed(32), patience=Fixed(3),
)
STUDY = Study(pipeline="cnn", metric="val_accuracy", trials=3, max_epochs=1)
"""


def test_a_nan_trial_is_recorded_as_failed_and_the_study_goes_on(tmp_path, tiny_data):  # noqa: F811
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    (data / "Apple" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (data / "Corn" / "notes.txt").write_text("not an image")
    space = tmp_path / "nan.py"
    space.write_text(NAN_SPACE)
    done = leafsearch("run", space, "--data", data, "--algorithm", "random", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "skipped 2" in done.stderr and "broken.jpg" in done.stderr  # bad files: a warning, not a crash
    board = pd.read_csv(tmp_path / "results" / "nan" / "leaderboard.csv")
    assert board.loc[0, "state"] == "FAIL" and board.loc[0, "error"] == "nan loss"
    later = board[board["param_learning_rate"] == 1e-3]
    assert len(later) >= 1 and (later["state"] == "COMPLETE").all()


@pytest.fixture(scope="module")
def existing_study(tmp_path_factory, tiny_data):  # noqa: F811
    """A finished one-trial study whose storage bad input must leave byte for byte as it was."""
    root = tmp_path_factory.mktemp("existing")
    done = leafsearch(
        "run",
        CNN_SPACE,
        "--data",
        tiny_data,
        "--trials",
        "1",
        "--image-size",
        "32",
        "--max-epochs",
        "1",
        "--set",
        "batch_size=16",
        cwd=root,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return root


def study_bytes(root: Path) -> dict[str, bytes]:
    study = root / "results" / "cnn"
    return {p.name: p.read_bytes() for p in (study / "study.journal", study / "leaderboard.csv", study / "study.json")}


def bad_inputs(root: Path, data: Path) -> list[tuple[list, str]]:
    """(arguments, what the one-line error must say) for each bad input of the issue."""
    (root / "nospace.py").write_text("STUDY = None\n")
    (root / "syntax.py").write_text("SPACE = Space(\n")
    (root / "unknown.py").write_text(
        CNN_SPACE.read_text().replace("patience=", "colour=Choice(['red']),\n    patience=")
    )
    (root / "range.py").write_text(CNN_SPACE.read_text().replace("Float(1e-4, 1e-2", "Float(1e-2, 1e-4"))
    (root / "changed.py").write_text(CNN_SPACE.read_text().replace("Float(1e-4, 1e-2", "Float(1e-5, 1e-2"))
    (root / "flat").mkdir(exist_ok=True)
    (root / "flat" / "loose.png").write_bytes(b"x")
    for name, images in (("empty", {"Apple": 3, "Corn": 0}), ("single", {"Apple": 3})):
        for cls, count in images.items():
            (root / name / cls).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                (root / name / cls / f"{i}.png").write_bytes((data / "Apple").iterdir().__next__().read_bytes())
    (root / "a-file").write_text("")
    tiny = ["--data", data, "--image-size", "32", "--max-epochs", "1", "--set", "batch_size=16", "--study", "cnn"]
    return [
        (["run", root / "missing.py", *tiny], "space file not found"),
        (["run", root / "syntax.py", *tiny], "syntax error"),
        (["run", root / "nospace.py", *tiny], "SPACE"),
        (["run", root / "range.py", *tiny], "low must be < high"),
        (["run", root / "unknown.py", *tiny], "parameter `colour`: unknown"),
        (["run", CNN_SPACE, *tiny, "--backend", "sklearn"], "--backend"),
        (["run", CNN_SPACE, *tiny, "--algorithm", "grid"], "--algorithm grid"),
        (["run", CNN_SPACE, *tiny, "--data", root / "nowhere"], "nowhere"),
        (["run", CNN_SPACE, *tiny, "--data", root / "flat"], "sub-folder"),
        (["run", CNN_SPACE, *tiny, "--data", root / "empty"], "Corn"),
        (["run", CNN_SPACE, *tiny, "--data", root / "single"], "class"),
        (["run", CNN_SPACE, *tiny, "--storage", "postgresql://bob:s3cret@127.0.0.1:9/leaves"], "--storage"),
        (["run", root / "changed.py", *tiny], "pass a new --study NAME"),
        (["run", CNN_SPACE, *tiny, "--results", root / "a-file" / "results"], "--results"),
    ]


def test_every_bad_input_exits_2_with_one_line_and_leaves_the_study_untouched(
    existing_study,
    tiny_data,  # noqa: F811
    capfd,
    monkeypatch,
):
    """Through the CLI's `main` in this process: that `leafsearch run` itself, in a subprocess, exits
    2 with one line on stderr (a missing, broken or out-of-range space file, a missing or flat data
    folder, a bad --algorithm...) is test_cli.py's test_bad_input_exits_2_with_one_line."""
    from leafsearch.cli.main import main

    monkeypatch.chdir(existing_study)  # the default --results, as for the command run there
    before = study_bytes(existing_study)
    for args, fragment in bad_inputs(existing_study, tiny_data):
        try:
            code = main([str(arg) for arg in args])
        except SystemExit as exc:  # argparse's own errors
            code = exc.code
        out, err = capfd.readouterr()
        lines = err.strip().splitlines()
        assert code == 2, (args, err[-2000:])
        assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in err, (args, err)
        assert "s3cret" not in err + out
        assert study_bytes(existing_study) == before, args
