"""Every process leafsearch starts exits within moments of the process that started it dying, by
any signal, SIGKILL included.

How: a lifeline, a pipe whose write end only the owning process holds (its descriptors are not
inherited: Python opens them close-on-exec, and children get the read end alone). A child waits
on the read end in a daemon thread; the read returns end-of-file the instant the owner's end is
closed, which the kernel does when the owner dies, however it dies. Chosen over Linux's
PR_SET_PDEATHSIG because that signal follows the *thread* that forked the child (Python starts
children from helper threads too) and a trial process is a child of the fork server, not of the
study process; and over polling the parent's pid, which answers late and can be fooled by a
reused pid. It works wherever pipes do.
"""

from __future__ import annotations

import multiprocessing.connection
import os
import signal
import threading
from collections.abc import Callable

ENV = "LEAFSEARCH_LIFELINE"  # a command-line child's end of its parent's lifeline (a descriptor number)
FORKSERVER_OWNER = "LEAFSEARCH_FORKSERVER_OWNER"  # the pid of the process that starts the fork server
_owner: tuple[multiprocessing.connection.Connection, multiprocessing.connection.Connection] | None = None
_lock = threading.Lock()


def _pair() -> tuple[multiprocessing.connection.Connection, multiprocessing.connection.Connection]:
    global _owner
    with _lock:
        if _owner is None or _owner[0].closed:
            _owner = multiprocessing.connection.Pipe(
                duplex=False
            )  # (read end, write end), held for this process's life
        return _owner


def end() -> multiprocessing.connection.Connection:
    """The read end of this process's lifeline, to hand to a multiprocessing child (it travels
    as a duplicated descriptor: pass it in the child's arguments)."""
    return _pair()[0]


def descriptor() -> int:
    """The read end as a descriptor number, for a child started with `subprocess` (`pass_fds`)."""
    return _pair()[0].fileno()


def _hard_exit() -> None:
    os._exit(1)


def watch(line: multiprocessing.connection.Connection | int, on_death: Callable[[], None] = _hard_exit) -> None:
    """In the child: call `on_death` (by default: exit at once) when the owner dies."""
    fd = line if isinstance(line, int) else line.fileno()

    def wait() -> None:
        try:
            while os.read(fd, 1):  # nothing is ever written: only end-of-file returns
                pass
        except OSError:
            pass
        on_death()

    threading.Thread(target=wait, name="lifeline", daemon=True).start()


def watch_from_environment(grace_s: float = 5.0) -> None:
    """In a command-line child started with a lifeline in ENV: when its parent dies, interrupt
    it as Ctrl-C would (its trial is recorded as interrupted and continues on the next run), and
    exit after `grace_s` if that has not ended it."""
    value = os.environ.pop(ENV, None)
    if value is None or not value.isdigit():
        return

    def interrupt() -> None:
        threading.Timer(grace_s, _hard_exit).start()  # a worker that does not stop in time is ended
        os.kill(os.getpid(), signal.SIGINT)

    watch(int(value), interrupt)
