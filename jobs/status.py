"""The one source of truth for a job's state."""

from __future__ import annotations

from enum import Enum


class JobStatus(str, Enum):
    """A job's state; serialises as the plain lower-case string of the seed's JSON."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"  # stopped on request; not one of the seed's four

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
