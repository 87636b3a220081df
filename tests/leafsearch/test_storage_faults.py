"""A study rides out its storage going away, through the command line: the CI PostgreSQL server
behind a TCP proxy the test owns (it resets and refuses connections, then lets them through; the
server itself is never stopped), and a KerasTuner chief stopped and started again. The engine's
side alone, without training: tests/search/test_storage_outage.py."""

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import optuna
import pandas as pd
import pytest
from test_cli import CNN_SPACE, ROOT, TINY, leafsearch, tiny_data  # noqa: F401 - tiny_data is a fixture
from test_workers import assert_target_met_exactly, postgres_url  # noqa: F401 - postgres_url is a fixture

from search.execution.workers import free_port
from tests.search.tcp_proxy import proxied  # noqa: F401 - a fixture (the server behind a proxy)

pytestmark = pytest.mark.slow  # studies in subprocesses, PostgreSQL, the KerasTuner chief

ENV = {
    **os.environ,
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "CUDA_VISIBLE_DEVICES": "",
    "PYTHONPATH": str(ROOT),
    "PYTHONUNBUFFERED": "1",
}
# Two epochs a trial, so that an outage can start in the middle of one; no pruning and early
# stopping, so that every trial runs both.
TWO_EPOCHS = ["--image-size", "32", "--max-epochs", "2", "--set", "batch_size=16", "--set", "patience=12"]


class Running:
    """A command in a subprocess, its output lines collected as they come."""

    def __init__(self, args: list, cwd: Path, env: dict | None = None):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "leafsearch", *map(str, args)],
            cwd=cwd,
            env=env or ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def wait_for(self, fragment: str, after: int = 0, timeout: float = 300) -> int:
        """The index of the first output line from `after` on that holds `fragment`."""
        deadline = time.monotonic() + timeout
        while True:
            ended = self.proc.poll() is not None
            if ended:  # what it printed last is read before looking
                for reader in self._readers:
                    reader.join(timeout=10)
            found = next((i for i, line in enumerate(self.lines[after:], after) if fragment in line), None)
            if found is not None:
                return found
            assert not ended, f"it ended with no {fragment!r}:\n{self.text()}"
            assert time.monotonic() < deadline, f"no {fragment!r} in time:\n{self.text()}"
            time.sleep(0.05)

    def finish(self, timeout: float = 300) -> int:
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=10)
        return code

    @property
    def out(self) -> str:
        return "\n".join(self.lines)

    def text(self) -> str:
        return self.out[-3000:] + "\n--- stderr ---\n" + "\n".join(self.err)[-3000:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.finish()


def study_args(data: Path, name: str, url: str, *extra) -> list:
    return [
        "run",
        CNN_SPACE,
        "--data",
        data,
        "--study",
        name,
        "--storage",
        url,
        "--pruner",
        "none",
        *TWO_EPOCHS,
        *extra,
    ]


def test_a_study_and_its_worker_ride_out_outages_mid_trial_and_between_trials(
    tmp_path,
    tiny_data,  # noqa: F811
    proxied,  # noqa: F811
    postgres_url,  # noqa: F811
):
    proxy, url = proxied
    name = f"f{uuid.uuid4().hex[:8]}"
    run = Running(study_args(tiny_data, name, url, "--workers", "2", "--trials", "3"), tmp_path)
    try:
        mid_trial = run.wait_for(" epoch 1: ")  # a trial has reported its first epoch of two
        proxy.outage(3)
        run.wait_for("is back after", after=mid_trial)
        time.sleep(1)
        between = run.wait_for(" COMPLETE ", after=len(run.lines))  # a trial ended: its worker tells, then asks
        proxy.outage(3)
        run.wait_for("is back after", after=between)
        assert run.finish() == 0, run.text()
    finally:
        run.kill()
    waited = [line for line in run.lines if " unreachable (" in line]
    back = [line for line in run.lines if " is back after " in line]
    assert len(waited) >= 2 and len(back) == len(waited), run.out  # each process: one line each way
    assert all(" | Storage postgresql://leafsearch:***@127.0.0.1:" in line for line in waited + back)
    stderr = "\n".join(run.err)
    assert "Traceback" not in stderr and "Warning" not in stderr, stderr
    assert_target_met_exactly(tmp_path, name, postgres_url, 3)  # nothing lost, nothing doubled
    optuna.delete_study(study_name=name, storage=postgres_url)


def test_an_outage_longer_than_the_patience_stops_with_one_line_and_the_next_run_finishes(
    tmp_path,
    tiny_data,  # noqa: F811
    proxied,  # noqa: F811
    postgres_url,  # noqa: F811
):
    proxy, url = proxied
    name = f"f{uuid.uuid4().hex[:8]}"
    args = study_args(tiny_data, name, url, "--trials", "1")
    run = Running([*args, "--storage-patience", "3s"], tmp_path)
    try:
        run.wait_for(" epoch 1: ")
        proxy.down()  # and it stays down: the trial trains on, then its result cannot be told
        assert run.finish() == 1, run.text()
    finally:
        run.kill()
        proxy.up()
    assert len(run.err) == 1, run.text()  # one line, no traceback
    assert run.err[0].startswith("leafsearch run: stopped: Storage postgresql://leafsearch:***@127.0.0.1:")
    assert " unreachable since " in run.err[0] and "gave up after --storage-patience 3s" in run.err[0]
    assert "trial 0 epoch 2: " in run.out  # the trial trained on while its parent had no storage

    again = leafsearch(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Trial 0 was left running by a process that died: queued to continue" in again.stdout
    board = assert_target_met_exactly(tmp_path, name, postgres_url, 1)
    assert 0 in board["resumed_from"].tolist()  # continued from its checkpoint, shown once
    optuna.delete_study(study_name=name, storage=postgres_url)


def test_a_wrong_password_is_still_an_immediate_exit_2(tmp_path, tiny_data, postgres_url):  # noqa: F811
    wrong = postgres_url.replace("leafsearch-ci", "s3cret-but-wrong")
    started = time.monotonic()
    done = leafsearch(*study_args(tiny_data, "wrong", wrong, "--trials", "1"), cwd=tmp_path)
    assert done.returncode == 2 and time.monotonic() - started < 60
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "password authentication failed" in lines[0], done.stderr
    assert "unreachable" not in done.stdout and "s3cret" not in done.stdout + done.stderr


def test_a_kerastuner_worker_waits_for_its_chief_restarted_and_the_target_holds(tmp_path, tiny_data):  # noqa: F811
    server = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(free_port())}
    args = ["run", CNN_SPACE, "--data", tiny_data, "--backend", "kerastuner", "--trials", "2", *TINY]
    chief_env = {**ENV, **server, "KERASTUNER_TUNER_ID": "chief"}
    chief = Running(args, tmp_path, chief_env)
    worker = Running(args, tmp_path, {**ENV, **server, "KERASTUNER_TUNER_ID": "tuner1"})
    again = None
    try:
        chief.wait_for("KerasTuner chief: serving the oracle")
        worker.wait_for("Trial 0 ")
        chief.proc.send_signal(signal.SIGKILL)  # the chief is gone while its worker trains
        chief.finish()
        worker.wait_for(" unreachable (")  # the trial ended: the worker waits to tell it
        again = Running(args, tmp_path, chief_env)  # the chief again, reloading its oracle
        assert worker.finish() == 0, worker.text()
        assert again.finish() == 0, again.text()
    finally:
        for process in (chief, worker, again):
            if process is not None:
                process.kill()
    assert any(line.startswith("KerasTuner chief at 127.0.0.1:") and " is back after " in line for line in worker.lines)
    assert "Traceback" not in "\n".join(worker.err + again.err)
    board = pd.read_csv(tmp_path / "results" / "cnn" / "leaderboard.csv")
    assert board["trial"].tolist() == [0, 1] and (board["state"] == "COMPLETE").all()
    oracle = __import__("json").loads((tmp_path / "results" / "cnn" / "kerastuner" / "oracle.json").read_text())
    assert oracle["end_order"] == ["0", "1"]  # trial 0 ended once, by the worker that trained it
