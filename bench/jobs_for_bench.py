"""Job functions the throughput bench enqueues; importable by worker processes."""

from __future__ import annotations

import os


def noop(job) -> None:
    """Do nothing: the bench measures the queue, not the work."""
    return None


def crash_worker(job) -> None:
    """Kill the worker process running it: shows that a benchmark notices a dead worker."""
    os._exit(3)
