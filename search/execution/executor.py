"""Running one trial: in a fresh child process by default, retried once with half the batch size
when it runs out of memory.

Why a child process: Keras and TensorFlow do not give all memory back after a model is dropped,
so a long study in one process creeps up until it dies (keras-tuner #873, #1031; optuna #3050),
and an out-of-memory kill or a crash in native code would take the whole study with it. The
child trains; the parent keeps the engine and its storage and hears from the child only through
the reporter (every epoch, and to ask whether to prune).

Children come from multiprocessing's fork server (see `TrialProcesses`), never from a fork of
the study process: forking a process whose TensorFlow runtime has started threads is unsafe.
Children ignore SIGINT: on Ctrl-C the parent kills the child itself; its last epoch checkpoint
is already safely on disk. Children, the fork server and one-shot calls all end when the study
process dies, however it dies (lifeline.py, server_guard.py).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import multiprocessing.forkserver
import os
import shutil
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

from search.errors import OutOfMemory, TrialFailed, one_line
from search.execution import lifeline
from search.execution.outcomes import ENDING_TYPES, as_ending
from search.reporter import Reporter, stamped

Objective = Callable[[dict, Reporter], Mapping[str, float]]

# The name of the parameter halved on an out-of-memory retry.
BATCH_SIZE = "batch_size"
MIN_BATCH_SIZE = 1


class ChildReporter(Reporter):
    """The child's side of the reporter: each call goes over the pipe to the parent's reporter."""

    def __init__(self, conn: multiprocessing.connection.Connection, state: Mapping[str, Any]):
        super().__init__(
            trial_number=state["trial_number"],
            trial_dir=state["trial_dir"],
            metric=state["metric"],
            seed=state["seed"],
            epoch_budget=state["epoch_budget"],
        )
        self.costs_first = state["costs_first"]
        self._conn = conn

    def report(self, epoch: int, metrics: Mapping[str, float]) -> None:
        row = stamped({"epoch": int(epoch), **{k: float(v) for k, v in metrics.items()}}, metrics)
        self.history.append(row)
        self._conn.send(("report", int(epoch), row))

    def restore(self, history: list[dict[str, float]]) -> None:
        self.history = [dict(row) for row in history]
        self.resumed_from_epoch = len(self.history)
        self._conn.send(("restore", self.history))

    def _send(self, epoch: int, value: float) -> None:  # report() forwards everything itself
        raise NotImplementedError

    def should_prune(self) -> bool:
        self._conn.send(("should_prune",))
        return bool(self._conn.recv())

    def broken_bounds(self, costs: Mapping[str, Any]) -> list[str]:
        self._conn.send(("costs", dict(costs)))
        return list(self._conn.recv())


def _reporter_state(reporter: Reporter) -> dict[str, Any]:
    return {
        "trial_number": reporter.trial_number,
        "trial_dir": str(reporter.trial_dir),
        "metric": reporter.metric,
        "seed": reporter.seed,
        "epoch_budget": reporter.epoch_budget,
        "costs_first": reporter.costs_first,
    }


def _child_main(conn: multiprocessing.connection.Connection, line: multiprocessing.connection.Connection) -> None:
    """A trial's process: run the one trial it is sent, answer through the pipe, exit. It exits
    at once if the study process dies (its lifeline), instead of training on unheard."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    lifeline.watch(line)
    try:
        message = conn.recv()
    except EOFError:
        return
    _, objective, params, state = message
    try:
        conn.send(_outcome(objective, params, ChildReporter(conn, state)))
        conn.close()
    except (BrokenPipeError, ConnectionError, EOFError):  # the study process is gone: nobody to tell
        os._exit(1)


def _call_main(
    conn: multiprocessing.connection.Connection,
    line: multiprocessing.connection.Connection,
    fn: Callable[..., Any],
    args: tuple,
) -> None:
    """A one-shot child: compute `fn(*args)`, send the answer, exit (so that nothing it loaded,
    a GPU context say, outlives the answer)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    lifeline.watch(line)
    try:
        answer = ("ok", fn(*args))
    except Exception as exc:  # noqa: BLE001 - sent to the caller as its error
        answer = ("error", one_line(exc))
    conn.send(answer)
    conn.close()


def _outcome(objective: Objective, params: dict, reporter: Reporter) -> tuple[str, Any]:
    """The message that tells the parent how the trial ended: its metrics, or the exception of the
    outcome table (search/execution/outcomes.py) the parent raises."""
    try:
        return ("done", dict(objective(params, reporter)))
    except (BrokenPipeError, ConnectionError, EOFError):
        raise
    except Exception as exc:  # noqa: BLE001 - every failure is the trial's, reported to the parent
        return ("ended", as_ending(exc))


class TrialProcesses:
    """Runs each trial in its own fresh child process.

    Children are forked by multiprocessing's fork server, a clean process started once that has
    imported the `preload` modules (Keras, the training code) but run nothing: a child starts in
    milliseconds with them loaded, instead of paying the imports (~5 s for Keras) per trial. The
    server and the children ignore Ctrl-C: the parent decides when a child stops.
    """

    def __init__(self, preload: Sequence[str] = ()):
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(_preload(preload))

    @staticmethod
    def start_server(preload: Sequence[str] = ()) -> None:
        """Start the fork server now, so that its imports run while this process does other work
        (its own imports, decoding) instead of delaying the first trial. Optional: the first child
        starts it otherwise."""
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_preload(preload))
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # see _start_ignoring_interrupts
        try:
            multiprocessing.forkserver.ensure_running()
        finally:
            signal.signal(signal.SIGINT, previous)

    @staticmethod
    def call(fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Start `fn(*args)` in a one-shot child of the fork server and return its future: the
        study process gets what only the preloaded libraries can tell (the device, say) without
        importing them. Call `start_server` first."""
        context = multiprocessing.get_context("forkserver")
        conn, child_conn = context.Pipe(duplex=False)
        process = context.Process(target=_call_main, args=(child_conn, lifeline.end(), fn, args), daemon=True)
        _start_ignoring_interrupts(process)
        child_conn.close()
        future: Future[Any] = Future()

        def answer() -> None:
            try:
                kind, value = conn.recv()
            except EOFError:
                kind, value = "error", f"its process died (exit code {process.exitcode})"
            process.join()
            if kind == "ok":
                future.set_result(value)
            else:
                future.set_exception(RuntimeError(f"{getattr(fn, '__name__', 'call')} failed: {value}"))

        threading.Thread(target=answer, name="call-answer", daemon=True).start()
        return future

    def _start(self) -> tuple[multiprocessing.process.BaseProcess, multiprocessing.connection.Connection]:
        conn, child_conn = self._context.Pipe()
        process = self._context.Process(target=_child_main, args=(child_conn, lifeline.end()), daemon=True)
        _start_ignoring_interrupts(process)
        child_conn.close()
        return process, conn

    def run(self, objective: Objective, params: dict, reporter: Reporter) -> dict[str, float]:
        process, conn = self._start()
        try:
            conn.send(("trial", objective, params, _reporter_state(reporter)))
            return _serve(process, conn, reporter)
        finally:
            if process.is_alive():
                process.kill()
            process.join()
            conn.close()


def _preload(modules: Sequence[str]) -> list[str]:
    """The fork server's imports: first the guard that ends it with this process (whose pid it
    is told in the environment it starts with)."""
    os.environ[lifeline.FORKSERVER_OWNER] = str(os.getpid())
    return ["search.execution.server_guard", *modules]  # a name: importing it here would guard this process


def _start_ignoring_interrupts(process: multiprocessing.process.BaseProcess) -> None:
    """Ignored signals stay ignored across fork and exec, so the fork server (started by the
    first child) and every child ignore SIGINT from their first instruction on."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        process.start()
    finally:
        signal.signal(signal.SIGINT, previous)


def _serve(
    process: multiprocessing.process.BaseProcess, conn: multiprocessing.connection.Connection, reporter: Reporter
) -> dict[str, float]:
    """Answer the child's reporter calls until it finishes, fails or dies."""
    while True:
        ready = multiprocessing.connection.wait([conn, process.sentinel])
        if conn not in ready:
            process.join()
            raise _died(process.exitcode)
        try:
            message = conn.recv()
        except EOFError:
            process.join()
            raise _died(process.exitcode) from None
        kind = message[0]
        if kind == "report":
            reporter.report(message[1], {k: v for k, v in message[2].items() if k != "epoch"})
        elif kind == "restore":
            reporter.restore(message[1])
        elif kind == "should_prune":
            conn.send(reporter.should_prune())
        elif kind == "costs":
            conn.send(reporter.broken_bounds(message[1]))
        elif kind == "done":
            return message[1]
        elif kind == "ended":
            raise message[1]
        else:
            raise TrialFailed(f"the trial's process sent {kind!r}, not a reporter call or an outcome")


def _died(exitcode: int | None) -> Exception:
    """A child that exits without a word: SIGKILL is how Linux's OOM killer ends a process."""
    if exitcode is not None and exitcode < 0:
        number = -exitcode
        name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else str(number)
        if number == signal.SIGKILL:
            return OutOfMemory(f"the trial's process was killed ({name}; out of memory?)")
        return TrialFailed(f"the trial's process died ({name})")
    return TrialFailed(f"the trial's process exited with code {exitcode} without a result")


class TrialExecutor:
    """Runs a trial in a child process (or in this one when `isolate` is False) and retries it
    once with half the batch size when it runs out of memory.

    `run` returns (metrics, the params actually trained), or raises one of the outcome table's
    exceptions (search/execution/outcomes.py; any other failure as a TrialFailed with the reason
    for the leaderboard).
    """

    def __init__(self, isolate: bool = True, preload: Sequence[str] = ()):
        self.isolate = isolate
        self._processes = TrialProcesses(preload) if isolate else None

    def _once(self, objective: Objective, params: dict, reporter: Reporter) -> dict[str, float]:
        if self._processes is not None:
            return self._processes.run(objective, params, reporter)
        try:
            return dict(objective(params, reporter))
        except MemoryError as exc:
            raise OutOfMemory(one_line(exc)) from exc

    def run(
        self, objective: Objective, params: dict, reporter: Reporter, on_retry: Callable[[str], None] | None = None
    ) -> tuple[dict[str, float], dict]:
        tried: list[Any] = []
        while True:
            tried.append(params.get(BATCH_SIZE))
            try:
                return self._once(objective, params, reporter), params
            except OutOfMemory as exc:
                batch = params.get(BATCH_SIZE)
                if len(tried) > 1 or not isinstance(batch, int) or batch // 2 < MIN_BATCH_SIZE:
                    sizes = ", ".join(str(b) for b in tried if b is not None)
                    raise TrialFailed(f"out of memory{f' at batch sizes {sizes}' if sizes else ''}: {exc}") from None
                params = {**params, BATCH_SIZE: batch // 2}
                _start_again(reporter)
                if on_retry is not None:
                    on_retry(f"out of memory at batch size {batch}: trying again with {batch // 2}")
            except ENDING_TYPES:  # the outcome table's other endings reach the loop as they are
                raise
            except Exception as exc:
                raise TrialFailed(one_line(exc)) from exc

    def close(self) -> None:
        """Nothing to release: each child ends with its trial, the fork server with this process."""


def _start_again(reporter: Reporter) -> None:
    """A retry with another batch size is a new run: no checkpoint or history carries over."""
    shutil.rmtree(reporter.checkpoint_dir, ignore_errors=True)
    reporter.history = []
    reporter.resumed_from_epoch = None
