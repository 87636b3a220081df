"""When `leafsearch run` is killed with SIGKILL, every process it started exits within seconds:
while the built-in data is drawn, while the fork server starts and the device is probed, during
a trial, between trials, and with `--workers 2`; and the same command then completes the study."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from test_cli import CNN_SPACE, ROOT, tiny_data  # noqa: F401 - tiny_data is a fixture

pytestmark = pytest.mark.slow  # studies in subprocesses, killed with SIGKILL

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
ARGS = ["--trials", "2", "--image-size", "32", "--max-epochs", "2", "--set", "batch_size=16", "--pruner", "none"]
GONE_WITHIN_S = 10


def start(cwd: Path, *extra: str) -> subprocess.Popen:
    """The command in a session of its own: every process it starts shares its process group."""
    return subprocess.Popen(
        [sys.executable, "-m", "leafsearch", "run", str(CNN_SPACE), *ARGS, *extra],
        cwd=cwd,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def group(pgid: int) -> list[str]:
    """The live (not zombie) processes of a process group, as `ps` shows them."""
    out = subprocess.run(["ps", "-ww", "-eo", "pgid=,stat=,pid=,args="], capture_output=True, text=True).stdout
    rows = [line.split(None, 3) for line in out.splitlines()]
    return [
        f"{row[2]} {row[3] if len(row) > 3 else ''}"
        for row in rows
        if row[0] == str(pgid) and not row[1].startswith("Z")
    ]


def kill_when(proc: subprocess.Popen, ready, timeout: float = 300) -> None:
    """SIGKILL the command (only it: what it started must go by itself) once `ready()` holds."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, "the command ended before the moment came"
        assert time.monotonic() < deadline, "the moment never came"
        time.sleep(0.05)
    proc.kill()
    proc.wait()


def assert_nothing_left(pgid: int) -> None:
    deadline = time.monotonic() + GONE_WITHIN_S
    while group(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert group(pgid) == [], f"still alive {GONE_WITHIN_S} s after the kill: {group(pgid)}"


def finish(cwd: Path, *extra: str) -> pd.DataFrame:
    """Run the same command again to the end: the study completes with nothing lost."""
    done = subprocess.run(
        [sys.executable, "-m", "leafsearch", "run", str(CNN_SPACE), *ARGS, *extra],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    board = pd.read_csv(cwd / "results" / "cnn" / "leaderboard.csv")
    assert board["state"].tolist() == ["COMPLETE", "COMPLETE"]
    return board


def test_killed_while_drawing_the_built_in_data(tmp_path):
    drawn = tmp_path / "results" / ".synthetic"
    proc = start(tmp_path)
    kill_when(proc, lambda: any(drawn.rglob("*.png")))  # the drawing pool is at work
    assert_nothing_left(proc.pid)


def test_killed_while_the_fork_server_starts_and_the_device_is_probed(tmp_path, tiny_data):  # noqa: F811
    proc = start(tmp_path, "--data", str(tiny_data))
    kill_when(proc, lambda: any("forkserver" in line for line in group(proc.pid)))
    assert_nothing_left(proc.pid)


@pytest.mark.parametrize("moment", ["during a trial", "between trials"])
def test_killed_in_a_study_then_the_same_command_completes_it(tmp_path, tiny_data, moment):  # noqa: F811
    trials = tmp_path / "results" / "cnn" / "trials"
    ready = (
        (lambda: (trials / "0" / "history.json").exists())
        if moment == "during a trial"
        else (lambda: (trials / "1" / "params.json").exists())
    )
    proc = start(tmp_path, "--data", str(tiny_data))
    kill_when(proc, ready)
    assert_nothing_left(proc.pid)
    finish(tmp_path, "--data", str(tiny_data))


def test_killed_with_two_workers_then_the_same_command_completes_it(tmp_path, tiny_data):  # noqa: F811
    trials = tmp_path / "results" / "cnn" / "trials"
    proc = start(tmp_path, "--data", str(tiny_data), "--workers", "2")
    # both workers are training, each with a checkpoint to continue from (history.json alone is
    # written a moment before the checkpoint, and a kill in between restarts that trial instead)
    kill_when(proc, lambda: len(list(trials.glob("*/checkpoints/latest.json"))) >= 2)
    assert_nothing_left(proc.pid)
    board = finish(tmp_path, "--data", str(tiny_data), "--workers", "2")
    assert board["resumed_from"].notna().any()  # an interrupted trial was continued, not lost
