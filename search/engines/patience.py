"""Riding out an outage of the study's storage (the Optuna database, the KerasTuner chief).

A database restart, a failover or a dropped connection must not end a study whose trials take
hours (optuna/optuna#5600: connections dropping during long trials). Each engine says which of its
errors mean "the storage cannot be reached right now" (its `transient` function: a refused or
reset connection, a server starting up or shutting down, a timeout); a call that fails with one is
tried again with backoff for a window (`--storage-patience`), and any other error is raised at
once. The user hears one line when the outage is first seen and one when the storage is back; if
the window runs out, `StorageUnreachable` (exit code 1) says since when.

Neither SQLAlchemy nor gRPC retries a whole operation: SQLAlchemy's `pool_pre_ping` replaces a
dead pooled connection but lets a failed transaction fail, and gRPC's `wait_for_ready` waits
silently (up to the hour KerasTuner's client gives it) with no word to the user. Hence this small
class of our own, shared by both engines.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from search.errors import SearchAborted, one_line

DEFAULT_PATIENCE_S = 600.0  # --storage-patience: a database restart or failover takes seconds to minutes
FIRST_DELAY_S = 0.5  # the first retry; each next one waits twice as long, up to MAX_DELAY_S
MAX_DELAY_S = 10.0

T = TypeVar("T")


class StorageUnreachable(SearchAborted):
    """The storage stayed unreachable for the whole window: the search stops (exit code 1). The
    trial in flight is left RUNNING in the storage, to be continued by the next run from its last
    checkpoint, as after a kill."""


class StorageDown(Exception):
    """Raised instead of waiting by a call made under `Patience.at_once()`: the caller goes on
    without the storage (a training trial's epoch report is sent later)."""


def duration_text(seconds: float) -> str:
    """'45s', '10m', '2m 30s', '1h 05m'."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if secs else f"{minutes}m"


def _silent(text: str) -> None:
    pass


class Patience:
    """Calls to one storage, tried again while it is unreachable, for `window_s` seconds of waiting.

    `what` names the storage for the user (a URL without its password). `transient(exc)` says
    whether an error means the storage cannot be reached now, `describe(exc)` says it in one line.
    `note` is where the two lines go (the study's display). Thread-safe: a trial's heartbeat thread reports what it sees too
    (`missed` / `reached`), so that an outage seen only by the heartbeat still counts.
    """

    def __init__(
        self,
        what: str,
        transient: Callable[[BaseException], bool],
        window_s: float = DEFAULT_PATIENCE_S,
        note: Callable[[str], None] | None = None,
        describe: Callable[[BaseException], str] = one_line,
    ):
        if window_s < 0:
            raise ValueError(f"the storage patience must be >= 0 seconds. Received: window_s={window_s}")
        self.what = what
        self.transient = transient
        self.window_s = window_s
        self.note = note or _silent
        self.describe = describe  # an error in one line, for the user
        self._lock = threading.Lock()
        self._local = threading.local()
        self.down_since: float | None = None  # wall-clock time of the outage's first failure
        self._reason = ""
        # Since when (time.monotonic) calls have worked without a break: a trial whose heartbeat looks
        # stale is declared dead only once this process has reached the storage for a while.
        self.up_since = time.monotonic()

    # -- calls
    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)`, tried again while it fails with a transient error. Raises
        StorageUnreachable when `window_s` seconds of trying have passed, StorageDown at once
        under `at_once()`, and any other error as it is."""
        delay, started = FIRST_DELAY_S, None
        while True:
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                if not self.transient(exc):
                    raise
                self.missed(exc)
                if getattr(self._local, "at_once", False):
                    raise StorageDown(self.describe(exc)) from exc
                now = time.monotonic()
                started = now if started is None else started
                left = self.window_s - (now - started)
                if left <= 0:
                    raise StorageUnreachable(self._gave_up()) from None
                time.sleep(min(delay, left))
                delay = min(delay * 2, MAX_DELAY_S)
                continue
            self.reached()
            return result

    @contextlib.contextmanager
    def at_once(self) -> Iterator[None]:
        """Calls made in this thread inside the block do not wait: a transient error raises
        StorageDown (the outage is noted all the same)."""
        before = getattr(self._local, "at_once", False)
        self._local.at_once = True
        try:
            yield
        finally:
            self._local.at_once = before

    # -- what callers saw
    def missed(self, exc: BaseException) -> None:
        """A call failed with a transient error: the first of an outage is told to the user."""
        with self._lock:
            if self.down_since is not None:
                return
            self.down_since, self._reason = time.time(), self.describe(exc)
        self.note(
            f"{self.what} unreachable ({self._reason}): waiting up to {duration_text(self.window_s)} for it "
            f"(--storage-patience); a trial in training goes on."
        )

    def reached(self) -> None:
        """A call worked: if the storage was down, the user hears it is back."""
        if self.down_since is None:  # the common case, without the lock
            return
        with self._lock:
            since, self.down_since = self.down_since, None
            self.up_since = time.monotonic()
        if since is not None:
            self.note(f"{self.what} is back after {duration_text(time.time() - since)}; carrying on.")

    def up_for(self) -> float:
        """Seconds since calls last started working (since this object was made, if never down)."""
        return 0.0 if self.down_since is not None else time.monotonic() - self.up_since

    def _gave_up(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.down_since or time.time()))
        return (
            f"{self.what} unreachable since {since} ({self._reason}); gave up after --storage-patience "
            f"{duration_text(self.window_s)}. Nothing finished is lost: run the same command again once it is "
            f"back, and the trial in flight continues from its last checkpoint"
        )
