"""Per-host politeness: how many requests may run at once and when the next may start.

Every request to a host (robots.txt, retries and redirect hops included) takes
its start time from the host's gate, so a retry after a 503 is spaced by the
same interval as any other request, and ``Crawl-delay`` slows them all.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Optional


class SlotBeyondDeadline(Exception):
    """The host's next free start time lies past the request's deadline."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"next slot in {wait:.1f} s")
        self.wait = wait


@dataclass
class HostGate:
    """Politeness state of one origin (scheme, host, port)."""

    concurrency: int
    interval: float
    next_start: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    robots_lock: threading.Lock = field(default_factory=threading.Lock)
    robots: Optional[object] = None  # the origin's RobotsRules once read
    semaphore: threading.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.semaphore = threading.Semaphore(self.concurrency)

    def reserve(self, not_before: float = 0.0, deadline: Optional[float] = None) -> float:
        """Book the next start time (no earlier than ``not_before``); return seconds to wait.

        Nothing is booked when the start would lie past ``deadline``:
        ``SlotBeyondDeadline`` says so, so the caller can give up at once.
        """
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_start, not_before)
            if deadline is not None and start >= deadline:
                raise SlotBeyondDeadline(start - now)
            self.next_start = start + self.interval
            return start - now

    def started(self, moment: float) -> None:
        """A request started at ``moment``: the next may start no earlier than the interval after it.

        A request that got under way late (a busy machine, a slow thread) must
        not shorten the gap to the next one below the interval.
        """
        with self.lock:
            self.next_start = max(self.next_start, moment + self.interval)

    def widen_interval(self, seconds: float) -> None:
        """Raise the interval (robots.txt ``Crawl-delay``); the slot already booked moves too."""
        with self.lock:
            if seconds > self.interval:
                self.next_start += seconds - self.interval
                self.interval = seconds


class HostGates:
    """The gates of all hosts one fetcher talks to."""

    def __init__(self, concurrency: int, interval: float) -> None:
        self._concurrency, self._interval = concurrency, interval
        self._gates: dict[str, HostGate] = {}
        self._lock = threading.Lock()

    def __getitem__(self, origin: str) -> HostGate:
        with self._lock:
            gate = self._gates.get(origin)
            if gate is None:
                gate = self._gates[origin] = HostGate(self._concurrency, self._interval)
            return gate
