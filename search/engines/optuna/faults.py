"""Which database errors mean "the storage cannot be reached right now" (worth waiting for) and
which are real (a wrong password, an unknown database, a schema mismatch: an error at once).

Optuna's RDBStorage re-raises every SQLAlchemy error of a commit as a StorageInternalError that
blames "invalid data"; the error underneath is its `__cause__`, so the whole chain is looked at.
In order:
1. SQLAlchemy's own verdict: `DBAPIError.connection_invalidated` is set when the dialect found
   the connection dead (`is_disconnect`: reset, closed by a server shutting down...).
2. The server's SQLSTATE where the driver has one (psycopg's `sqlstate`, psycopg2's `pgcode`):
   class 08 (connection exception), 57P01-57P03 (shutdown, crash, cannot connect now), 53300 (too
   many connections), 25006 (a read-only transaction: a standby not yet promoted in a failover).
3. A failure to connect carries no SQLSTATE (libpq keeps it from the client: psycopg's `sqlstate`
   is None for a wrong password and for a refused connection alike), so there, and only there, the
   message is read, as SQLAlchemy's dialects read it for `is_disconnect`: the markers below are
   the network's and the server's words for "not now"; anything else (authentication, a missing
   database, an unknown host) is real.
4. The standard library's connection errors and timeouts, and SQLAlchemy's pool timeout.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import sqlalchemy.exc

from search.errors import one_line

TRANSIENT_SQLSTATES = {"57P01", "57P02", "57P03", "53300", "25006"}
TRANSIENT_SQLSTATE_CLASSES = {"08"}
# Lower-case fragments of libpq's, the operating system's and the servers' messages for a
# connection that could not be made or was lost (English messages: a server or client set to
# another language reports these as real errors, at once).
TRANSIENT_MARKERS = (
    "connection refused",
    "connection reset",
    "connection timed out",
    "timeout expired",  # libpq's connect_timeout
    "could not connect to server",
    "server closed the connection unexpectedly",
    "could not receive data from server",
    "could not send data to server",
    "consuming input failed",
    "ssl syscall error",
    "ssl connection has been closed unexpectedly",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "terminating connection due to administrator command",
    "sorry, too many clients already",
    "no route to host",
    "network is unreachable",
    "temporary failure in name resolution",
    "can't connect to mysql server",
    "lost connection to mysql server",
    "mysql server has gone away",
    "database is locked",  # SQLite: another process holds the write lock
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and the errors it was raised from."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _sqlstate(exc: BaseException | None) -> str | None:
    state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return state if isinstance(state, str) and len(state) == 5 else None


def transient(exc: BaseException) -> bool:
    """Whether `exc` (or an error it was raised from) means the database cannot be reached now."""
    for error in _chain(exc):
        if isinstance(error, sqlalchemy.exc.DBAPIError):
            if error.connection_invalidated:
                return True
            state = _sqlstate(error.orig)  # the driver's own error
            if state is not None:
                return state in TRANSIENT_SQLSTATES or state[:2] in TRANSIENT_SQLSTATE_CLASSES
            if isinstance(error, sqlalchemy.exc.OperationalError):  # PEP 249's class for a failed connection
                text = str(error.orig).lower()
                return any(marker in text for marker in TRANSIENT_MARKERS)
            return False
        if isinstance(error, sqlalchemy.exc.TimeoutError):  # no pooled connection came free in time
            return True
        if isinstance(error, (ConnectionError, TimeoutError, socket.timeout)):
            return True
    return False


def reason(exc: BaseException) -> str:
    """The error as the user should read it: the driver's own (Optuna's StorageInternalError around
    it blames "invalid data in the commit", which an outage is not)."""
    for error in _chain(exc):
        if isinstance(error, sqlalchemy.exc.DBAPIError) and isinstance(error.orig, BaseException):
            return one_line(error.orig)
    return one_line(exc)
