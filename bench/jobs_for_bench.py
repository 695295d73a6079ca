"""Job functions the throughput bench enqueues; importable by worker processes."""

from __future__ import annotations


def noop(job) -> None:
    """Do nothing: the bench measures the queue, not the work."""
    return None
