"""Run a scraper's pure, CPU-heavy steps (parsing) where the job says: off the web's interpreter lock.

A queued job offers ``offload(fn, *args)`` and ``wait_for(future)`` (its queue's
process pool, see ``jobs/cpu_pool.py``); a test double or a script's reporter
does not, and then the steps simply run in the calling thread. Only plain data
crosses: bytes in, offers out. A bounded number of steps is in flight, so
fetching goes on while earlier pages are parsed, without holding every page
in memory.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future
from typing import Any, Callable, Iterator

DEFAULT_IN_FLIGHT = 4


class Steps:
    """Pure steps of one run, started in order and collected in order."""

    def __init__(self, job: Any, in_flight: int = DEFAULT_IN_FLIGHT) -> None:
        self._offload = getattr(job, "offload", None)
        self._wait_for = getattr(job, "wait_for", None)
        self._in_flight = max(1, in_flight)
        self._pending: deque[Future] = deque()

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run one step and return its result (a cancel of the job ends the wait)."""
        if self._offload is None:
            return fn(*args)
        return self._wait_for(self._offload(fn, *args))

    def submit(self, fn: Callable[..., Any], *args: Any) -> Iterator[Any]:
        """Start a step; yield the results of older steps that must end first to stay within bounds."""
        if self._offload is None:
            yield fn(*args)
            return
        self._pending.append(self._offload(fn, *args))
        while len(self._pending) > self._in_flight:
            yield self._wait_for(self._pending.popleft())

    def finish(self) -> Iterator[Any]:
        """Yield the results of every step still in flight, oldest first."""
        while self._pending:
            yield self._wait_for(self._pending.popleft())
