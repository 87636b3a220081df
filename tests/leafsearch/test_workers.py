"""Scale out: several workers on one study, through the embedded journal file or a real
PostgreSQL server (started by .ci/run; its URL in LEAFSEARCH_TEST_POSTGRES)."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pandas as pd
import pytest
from test_cli import CNN_SPACE, ROOT, TINY, leafsearch, tiny_data  # noqa: F401 - tiny_data is a fixture
from test_kerastuner_cli import optuna_columns

from search.engines.optuna.storage import counts_toward_target, make_storage

pytestmark = pytest.mark.slow  # several workers, the KerasTuner chief, PostgreSQL, in subprocesses

ENV = {
    **os.environ,
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "CUDA_VISIBLE_DEVICES": "",
    "PYTHONPATH": str(ROOT),
    "PYTHONUNBUFFERED": "1",
}


@pytest.fixture(scope="module")
def postgres_url() -> str:
    url = os.environ.get("LEAFSEARCH_TEST_POSTGRES")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("LEAFSEARCH_TEST_POSTGRES is not set: .ci/run starts PostgreSQL for these tests")
        pytest.skip("no PostgreSQL server: run `export LEAFSEARCH_TEST_POSTGRES=$(bash .ci/postgres.sh start)` first")
    return url


def finished_numbers(study_dir: Path, name: str, url: str | None) -> list[int]:
    study = optuna.load_study(study_name=name, storage=make_storage(study_dir, url))
    return sorted(t.number for t in study.get_trials(deepcopy=False) if counts_toward_target(t))


def assert_target_met_exactly(root: Path, name: str, url: str | None, target: int) -> pd.DataFrame:
    numbers = finished_numbers(root / "results" / name, name, url)
    assert len(numbers) == target and len(set(numbers)) == target
    board = pd.read_csv(root / "results" / name / "leaderboard.csv")
    assert sorted(board["trial"].tolist()) == numbers  # the leaderboard agrees with the storage
    assert (board["state"] == "COMPLETE").all()
    return board


def test_three_workers_meet_the_target_exactly(tmp_path, tiny_data, postgres_url):  # noqa: F811
    """On PostgreSQL; on the journal file (the default storage), workers meeting the target exactly
    is checked by test_a_worker_killed_mid_trial_... below and by test_nothing_left_behind.py."""
    name = f"w{uuid.uuid4().hex[:8]}"
    url = postgres_url
    extra = ["--storage", url, "--pruner", "none"]  # a worker joining later must use the same pruner
    done = leafsearch(
        "run",
        CNN_SPACE,
        "--data",
        tiny_data,
        "--study",
        name,
        "--workers",
        "3",
        "--trials",
        "6",
        *TINY,
        *extra,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert {"worker 0 |", "worker 1 |", "worker 2 |"} <= {line[:10] for line in done.stdout.splitlines()}
    assert_target_met_exactly(tmp_path, name, url, 6)
    password = url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert password not in done.stdout + done.stderr
    for path in (tmp_path / "results").rglob("*"):
        if path.is_file() and path.suffix in (".json", ".csv", ".journal", ".txt", ""):
            assert password.encode() not in path.read_bytes(), path
    assert "***@" in done.stdout
    report = leafsearch("report", "--storage", url, "--study", name, "--format", "json", cwd=tmp_path)
    assert report.returncode == 0 and len(__import__("json").loads(report.stdout)) == 6
    assert password not in report.stdout + report.stderr
    # Another machine joins: no space file, its own copy of the data; space and settings from the storage.
    joined = leafsearch(
        "worker",
        "--study",
        name,
        "--storage",
        url,
        "--data",
        tiny_data,
        "--trials",
        "7",
        "--results",
        tmp_path / "elsewhere",
        cwd=tmp_path,
    )
    assert joined.returncode == 0, joined.stderr[-3000:]
    assert "6 of 7 trials finished, running 1 more (optuna/tpe, no pruning;" in joined.stdout
    assert password not in joined.stdout + joined.stderr
    assert len(finished_numbers(tmp_path, name, url)) == 7
    optuna.delete_study(study_name=name, storage=url)


def worker_pids(parent: int) -> dict[int, int]:
    """The extra workers `--workers` started: {worker index: pid}."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            status = (proc / "status").read_text()
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
        for item in environ:
            if ppid == parent and item.startswith(b"LEAFSEARCH_WORKER="):
                found[int(item.split(b"=", 1)[1])] = int(proc.name)
    return found


def test_a_worker_killed_mid_trial_is_continued_by_the_others_and_the_target_holds(tmp_path, tiny_data):  # noqa: F811
    name = "killed"
    args = [
        sys.executable,
        "-m",
        "leafsearch",
        "run",
        str(CNN_SPACE),
        "--data",
        str(tiny_data),
        "--study",
        name,
        "--workers",
        "2",
        "--trials",
        "3",
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
    ]  # its subject is the continued trial, which a pruner could stop
    proc = subprocess.Popen(args, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim_trial = None
    deadline = time.monotonic() + 300
    for line in proc.stdout:  # wait until worker 1 has a trial with a checkpoint, then kill it
        if line.startswith("worker 1 | Trial ") and line.split()[4].isdigit():
            victim_trial = int(line.split()[4])
        if (
            victim_trial is not None
            and (tmp_path / "results" / name / "trials" / str(victim_trial) / "checkpoints" / "latest.json").exists()
        ):
            break
        assert time.monotonic() < deadline
    os.kill(worker_pids(proc.pid)[1], signal.SIGKILL)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert "exited with codes [-9]" in err
    assert f"Trial {victim_trial} was left running by a process that died" in out
    board = assert_target_met_exactly(tmp_path, name, None, 3)
    assert victim_trial in board["resumed_from"].tolist()  # picked up and continued, shown once


def test_kerastuner_chief_and_two_workers_finish_the_target(tmp_path, tiny_data):  # noqa: F811
    """Bayesian, through the command line into the leaderboard schema an Optuna study writes (random,
    KerasTuner's default, runs through it in test_storage_faults.py; Hyperband in test_kerastuner_cli.py)."""
    done = leafsearch(
        "run",
        CNN_SPACE,
        "--data",
        tiny_data,
        "--backend",
        "kerastuner",
        "--algorithm",
        "bayesian",
        "--workers",
        "2",
        "--trials",
        "3",
        *TINY,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "KerasTuner chief: serving the oracle on 127.0.0.1:" in done.stdout
    assert "kerastuner/bayesian" in done.stdout and "Best: trial" in done.stdout
    trained_by = {
        line.split(" | ")[0] for line in done.stdout.splitlines() if " | Trial " in line and "COMPLETE" in line
    }
    assert trained_by == {"worker 1", "worker 2"}  # both workers trained; the chief only served
    board = pd.read_csv(tmp_path / "results" / "cnn" / "leaderboard.csv")
    assert board["trial"].tolist() == [0, 1, 2] and (board["state"] == "COMPLETE").all()
    assert list(board.columns) == optuna_columns()
    assert (board["backend"] == "kerastuner").all() and (board["algorithm"] == "bayesian").all()
    assert board["val_accuracy"].between(0, 1).all() and (board["param_batch_size"] == 16).all()
    oracle = __import__("json").loads((tmp_path / "results" / "cnn" / "kerastuner" / "oracle.json").read_text())
    assert len(oracle["end_order"]) == 3  # the chief's oracle saw every trial end
    report = leafsearch("report", "--format", "json", cwd=tmp_path)
    assert report.returncode == 0 and len(__import__("json").loads(report.stdout)) == 3
