"""`--workers N` on one machine: worker processes that share this process's study.

Each worker is the same command line run again (without `--workers`), with its own environment
(its index, its GPU, the engine's distributed-mode variables). How the study is shared is the
engine's (`Engine.local_workers`): under Optuna the storage is, and this process is worker 0;
under KerasTuner this process serves the oracle and trains nothing.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence

from search.errors import SearchAborted
from search.execution import lifeline

RESTARTS = 2  # times a worker that failed is started again while this process serves
GRACE_S = 30  # after an interrupt, how long workers get to leave their trials resumable


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def without_flags(argv: Sequence[str], flags: Iterable[str]) -> list[str]:
    """`argv` without the given value-taking flags (`--workers 2` and `--workers=2` alike)."""
    flags = tuple(flags)
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item in flags:
            skip = True
        elif not item.startswith(tuple(f"{flag}=" for flag in flags)):
            out.append(item)
    return out


class WorkerPool:
    """Worker processes started from one command line, each with the environment `env(index)`
    adds to this process's."""

    def __init__(self, command: Sequence[str], env: Callable[[int], Mapping[str, str]], base_env: Mapping[str, str]):
        self.command = list(command)
        self.env = env
        self.base_env = dict(base_env)
        self.processes: dict[int, subprocess.Popen] = {}

    def start(self, index: int) -> None:
        """Start worker `index`, holding this process's lifeline: it stops (as on Ctrl-C, its
        trial left to continue) when this process dies."""
        line = lifeline.descriptor()
        env = {**self.base_env, **self.env(index), lifeline.ENV: str(line)}
        self.processes[index] = subprocess.Popen(self.command, env=env, pass_fds=(line,))

    def start_all(self, indices: Iterable[int]) -> None:
        for index in indices:
            self.start(index)

    def supervise(self, serve: Callable[[], object], note: Callable[[str], None]) -> None:
        """Run `serve` (in a thread) until it returns, starting again any worker that fails: a
        server that waits for every worker it has seen would wait for a dead one for ever."""
        done, failure = threading.Event(), []

        def target() -> None:
            try:
                serve()
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                failure.append(exc)
            finally:
                done.set()

        threading.Thread(target=target, name="study-server", daemon=True).start()
        restarts = dict.fromkeys(self.processes, 0)
        while not done.wait(1.0):
            for index, child in list(self.processes.items()):
                code = child.poll()
                if code in (None, 0):
                    continue
                if restarts[index] >= RESTARTS:
                    raise SearchAborted(
                        f"worker {index} failed {RESTARTS + 1} times (last exit code {code}); "
                        f"fix the cause (see its lines above) and run again to resume"
                    )
                restarts[index] += 1
                note(f"Worker {index} exited with code {code}: starting it again.")
                self.start(index)
        if failure:
            raise failure[0]

    def interrupted(self) -> None:
        """On Ctrl-C the terminal interrupts every worker: give them time to leave their trials
        resumable, then interrupt any that did not hear it (e.g. `kill -INT` of this process)."""
        for child in self.processes.values():
            try:
                child.wait(timeout=GRACE_S)
            except subprocess.TimeoutExpired:
                child.send_signal(signal.SIGINT)
                child.wait()

    def wait(self) -> list[int]:
        """Every worker's exit code, once all have exited."""
        return [child.wait() for child in self.processes.values()]


def python_command(module: str, argv: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", module, *argv]
