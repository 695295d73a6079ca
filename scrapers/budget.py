"""One time budget per fetch: connect, headers, body, retries and redirects together.

Socket timeouts apply to each ``recv()``: a server that sends one header line
or one body byte a second never trips them and can hold a worker for hours.
So each ``Fetcher.get()`` runs under a ``RequestBudget``: a timer that, when
the budget ends, shuts down the socket of the connection in use. A blocked
read then returns at once, wherever it is (status line, headers, body), and
the fetcher reports the budget as the cause.

The connection in use is found without threading it through requests: the
budget is active for the calling thread (``with budget:``), and the
connections made by ``BudgetedHTTPAdapter`` attach themselves to the active
budget when a request starts on them.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any, Optional

from urllib3.connection import HTTPConnection

from scrapers.address_guard import GuardedHTTPAdapter, GuardedHTTPConnection, GuardedHTTPSConnection

_active = threading.local()


class RequestBudget:
    """A deadline for one fetch and a watchdog that enforces it on the connection in use."""

    def __init__(self, seconds: float, cap: Optional[float] = None) -> None:
        """Allow ``seconds`` from now, but never past the absolute monotonic time ``cap``."""
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds if cap is None else min(time.monotonic() + seconds, cap)
        self.expired = threading.Event()
        self._lock = threading.Lock()
        self._connection: Optional[HTTPConnection] = None
        self._timer = threading.Timer(max(self.remaining(), 0.0), self._expire)
        self._timer.daemon = True
        self._outer: Optional[RequestBudget] = None

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def timeouts(self, connect: float, read: float) -> tuple[float, float]:
        """Connect and read timeouts for the next attempt, never beyond the deadline."""
        remaining = self.remaining()
        # 0 would make the socket non-blocking; a tiny timeout fails cleanly instead.
        return max(min(connect, remaining), 0.001), max(min(read, remaining), 0.001)

    def attach(self, connection: HTTPConnection) -> None:
        """Watch ``connection`` from now on; cut it at once if the budget has already run out."""
        with self._lock:
            self._connection = connection
            if self.expired.is_set():
                _shutdown(connection)

    def detach(self) -> None:
        """Stop watching the connection (it goes back to the pool or is closed)."""
        with self._lock:
            self._connection = None

    def _expire(self) -> None:
        with self._lock:
            self.expired.set()
            if self._connection is not None:
                _shutdown(self._connection)

    def __enter__(self) -> "RequestBudget":
        self._outer = getattr(_active, "budget", None)
        _active.budget = self
        self._timer.start()
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self._timer.cancel()
        self.detach()
        _active.budget = self._outer


def active_budget() -> Optional[RequestBudget]:
    """The budget of the fetch running in this thread, if any."""
    return getattr(_active, "budget", None)


def _shutdown(connection: HTTPConnection) -> None:
    sock = connection.sock
    if sock is None:
        return
    try:
        # The plain socket's shutdown, also for an SSLSocket: a reader blocked
        # in another thread gets EOF; the TLS object is left for it to fail on.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: nothing left to interrupt


class _BudgetedConnectionMixin:
    """Attach to the active budget whenever a request starts, and again once connected."""

    def request(self, *args: Any, **kwargs: Any) -> None:
        budget = active_budget()
        if budget is not None:
            budget.attach(self)  # type: ignore[arg-type]
        super().request(*args, **kwargs)  # type: ignore[misc]

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        budget = active_budget()
        if budget is not None:
            budget.attach(self)  # type: ignore[arg-type]  # the timer may have fired while connecting


class BudgetedHTTPConnection(_BudgetedConnectionMixin, GuardedHTTPConnection):
    """A guarded HTTP connection that the active budget can cut."""


class BudgetedHTTPSConnection(_BudgetedConnectionMixin, GuardedHTTPSConnection):
    """A guarded HTTPS connection that the active budget can cut."""


class BudgetedHTTPAdapter(GuardedHTTPAdapter):
    """The fetcher's adapter: address guard plus budget watchdog on every connection."""

    http_connection_cls = BudgetedHTTPConnection
    https_connection_cls = BudgetedHTTPSConnection
