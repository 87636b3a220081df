"""A TCP proxy a test owns, between the code under test and a server (the CI PostgreSQL server):
`down()` resets every open connection and refuses new ones (nothing listens on its port), as a
server restarting or a network blip does; `up()` lets connections through again, on the same
port. The server itself is never touched (other tests and engineers share it)."""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import struct
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import pytest


class TcpProxy:
    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.up()

    @classmethod
    def before(cls, url: str) -> tuple[TcpProxy, str]:
        """A proxy in front of the server of a database URL, and the URL that goes through it."""
        parts = urlsplit(url)
        proxy = cls(parts.hostname or "127.0.0.1", parts.port or 5432)
        netloc = parts.netloc.rsplit("@", 1)[0] + f"@127.0.0.1:{proxy.port}"
        return proxy, urlunsplit(parts._replace(netloc=netloc))

    def up(self) -> None:
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(64)
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        """Reset every open connection (RST, as a crashed server's kernel answers) and refuse new ones."""
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._connections = self._connections, set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    def outage(self, seconds: float) -> None:
        """Down for `seconds`, then up again (in the background)."""
        self.down()
        threading.Timer(seconds, self.up).start()

    def close(self) -> None:
        self.down()

    # -- forwarding
    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by down()
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # went down meanwhile
                    client.close()
                    server.close()
                    return
                self._connections |= {client, server}
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        try:
            selector.register(a, selectors.EVENT_READ, b)
            selector.register(b, selectors.EVENT_READ, a)
            while True:
                for key, _ in selector.select(timeout=1.0):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        raise OSError("closed")
                    key.data.sendall(data)
                if a.fileno() < 0 or b.fileno() < 0:
                    return
        except (OSError, ValueError):
            pass
        finally:
            selector.close()
            for conn in (a, b):
                with self._lock:
                    self._connections.discard(conn)
                with contextlib.suppress(OSError):
                    conn.close()


def wait_until(condition, timeout: float = 60.0, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(step)


@pytest.fixture(scope="module")
def postgres_url() -> str:
    """The CI PostgreSQL server's URL (as tests/leafsearch/test_workers.py finds it)."""
    url = os.environ.get("LEAFSEARCH_TEST_POSTGRES")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("LEAFSEARCH_TEST_POSTGRES is not set: .ci/run starts PostgreSQL for these tests")
        pytest.skip("no PostgreSQL server: run `export LEAFSEARCH_TEST_POSTGRES=$(bash .ci/postgres.sh start)` first")
    return url


@pytest.fixture
def proxied(postgres_url):
    """(proxy, the server's URL through it), the proxy closed after the test."""
    proxy, url = TcpProxy.before(postgres_url)
    yield proxy, url
    proxy.close()
