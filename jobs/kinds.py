"""Kinds of jobs the app runs by name (its scrapers): label, limits, retries, isolation; why a job stops early.

A kind is registered in every process of the app (``JobQueue.register_kind``),
so whichever process runs a job of it knows its retry rule; what must be known
before a job runs (its time limit, its attempts, its one-at-a-time key, where
it runs) is stored on the job itself.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Optional

THREAD, PROCESS = "thread", "process"  # where a job runs: a worker thread, or a child it supervises
ISOLATIONS = (THREAD, PROCESS)

def never(_error: BaseException) -> bool:
    return False


def if_retryable(error: BaseException) -> bool:
    """Retry errors that say so (``error.retryable``): a network hiccup, a 429 or 5xx answer."""
    return bool(getattr(error, "retryable", False))


@dataclass(frozen=True)
class JobKind:
    """A named kind of job, such as one scraper."""

    name: str  # the job's name, its one-at-a-time key and its schedule's key
    label: str  # German, for people
    func: str  # "module:function" of the job function
    time_limit: Optional[float] = None  # seconds a run may take; None: no limit
    max_attempts: int = 1  # runs in all when failures are retryable (a lost worker uses one too)
    retry_if: Callable[[BaseException], bool] = never
    one_at_a_time: bool = True  # enqueueing it while one is queued or running returns that one
    # PROCESS: each run in a child process of its own (jobs/supervisor.py), stopped at once, killed if need be.
    isolation: str = THREAD
    # "module:function" (job_id, why) -> result or None, called by the supervising worker when a child
    # ended without saying how: the result its committed work stands for, else None (it closes what the
    # child left open, e.g. a scraper's run log entry, as ended by ``why``).
    settle: Optional[str] = None


def retry_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: base, 2·base, 4·base ... (±25 %) for attempts 1, 2, 3, at most ``cap``.

    The jitter spreads retries of many jobs apart; at ±25 % each wait is still
    longer than the one before.
    """
    return min(cap, base * 2 ** (attempt - 1)) * random.uniform(0.75, 1.25)  # nosec B311 - jitter, not a secret


class JobStopped(BaseException):
    """Raised inside a job function (by ``add_message``/``set_progress``) when the job must stop.

    A ``BaseException``, so that a job's own ``except Exception`` does not
    swallow it; code that cleans up may catch it and must re-raise it.
    ``outcome`` names why: "cancelled" or "timeout".
    """

    outcome = "stopped"


class JobCancelled(JobStopped):
    """Someone cancelled the job (the admin page, the API, ``flask jobs cancel``)."""

    outcome = "cancelled"

    def __init__(self) -> None:
        super().__init__("Abgebrochen")

    def __reduce__(self) -> tuple:  # it crosses to a job's child process
        return (JobCancelled, ())


class JobTimedOut(JobStopped):
    """The job ran longer than its kind's time limit."""

    outcome = "timeout"

    def __init__(self, limit: float) -> None:
        super().__init__(f"Zeitlimit überschritten ({_duration(limit)})")
        self.limit = limit

    def __reduce__(self) -> tuple:
        return (JobTimedOut, (self.limit,))


class JobInterrupted(JobStopped):
    """The process running the job is stopping (SIGTERM, Ctrl-C): the job goes back to the queue."""

    outcome = "interrupted"

    def __init__(self, grace: float) -> None:
        super().__init__(f"Neustart des Servers: Job nach {grace:g} s Wartezeit abgebrochen und neu eingereiht")
        self.grace = grace

    def __reduce__(self) -> tuple:
        return (JobInterrupted, (self.grace,))


def _duration(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"
