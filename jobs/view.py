"""A job as everyone but its own function sees it: ``JobView`` and ``JobSnapshot``.

A snapshot is plain data read once from the database (or from the running
handle, for a job running in this process): reading it never queries, and
``refresh()`` reloads it when the caller wants news. ``JobView`` holds what a
snapshot and the running handle (``jobs/job.py``) share: the seed's fields,
``get_progress_percent()`` and ``to_dict()``.
"""

from __future__ import annotations

import copy
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from jobs.schema import JobRecord, Message
from jobs.status import JobStatus


def _aware(moment: Optional[datetime]) -> Optional[datetime]:
    return moment.replace(tzinfo=timezone.utc) if moment is not None and moment.tzinfo is None else moment


def _iso(moment: Optional[datetime]) -> Optional[str]:
    aware = _aware(moment)
    return aware.isoformat() if aware is not None else None


def message_dicts(messages: list[Message]) -> list[dict[str, Optional[str]]]:
    return [{"timestamp": _iso(ts), "message": text} for ts, text in messages]


def _field(name: str, doc: str = "") -> Any:
    """A read-only attribute that reads the record's field of the same name."""
    return property(lambda view: getattr(view._record, name), doc=doc)


def _timestamp(name: str) -> Any:
    """A record's naive UTC timestamp, read as an aware datetime."""
    return property(lambda view: _aware(getattr(view._record, name)))


class JobView:
    """The seed's read-only fields of a job, read from one ``JobRecord``."""

    _record: JobRecord
    _label: Optional[str] = None

    @property
    def label(self) -> str:
        """What people call the job (a kind's German name), else its name."""
        return self._label or self._record.name

    def _guard(self) -> AbstractContextManager[Any]:
        return nullcontext()

    id: str = _field("id")
    name: str = _field("name")
    status: JobStatus = _field("status")
    progress: int = _field("progress")
    total_steps: int = _field("total_steps")
    result: Any = _field("result")
    error: Optional[str] = _field("error")
    traceback: Optional[str] = _field("traceback", "the full traceback of a failed job")
    func_path: Optional[str] = _field(
        "func_path", "``module:qualname`` of the function; None for one only its own process can run")
    attempts: int = _field("attempts")
    time_limit: Optional[float] = _field("time_limit", "seconds a run may take, or None")
    max_attempts: int = _field("max_attempts")
    retry_at: Optional[datetime] = _timestamp("retry_at")
    created_at: Optional[datetime] = _timestamp("created_at")
    started_at: Optional[datetime] = _timestamp("started_at")
    completed_at: Optional[datetime] = _timestamp("completed_at")

    @property
    def messages(self) -> list[dict[str, Optional[str]]]:
        with self._guard():
            return message_dicts(self._record.messages)

    def get_progress_percent(self) -> int:
        """Return progress as a whole percentage (0..100)."""
        with self._guard():
            return self._record.percent

    def to_dict(self) -> dict[str, Any]:
        """Return the seed's JSON shape, as one consistent snapshot."""
        with self._guard():
            record = self._record
            return {
                "id": record.id,
                "status": record.status.value,
                "progress": record.progress,
                "progress_percent": record.percent,
                "total_steps": record.total_steps,
                "messages": message_dicts(record.messages),
                "error": record.error,
                "result": copy.deepcopy(record.result),
                "created_at": _iso(record.created_at),
                "started_at": _iso(record.started_at),
                "completed_at": _iso(record.completed_at),
                # Beyond the seed: which kind of job, which run this is, how many it may get,
                # when the next one is due.
                "name": record.name,
                "label": self.label,
                "attempt": record.attempts,
                "max_attempts": record.max_attempts,
                "retry_at": _iso(record.retry_at),
            }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.name} {self.status.value}>"


class JobSnapshot(JobView):
    """A job as it was when it was read; ``refresh()`` reads it again."""

    def __init__(self, record: JobRecord, reload: Callable[[str], Optional[JobRecord]],
                 label: Optional[str] = None) -> None:
        self._record = record
        self._reload = reload
        self._label = label

    owner: Optional[str] = _field("owner", "the worker holding the job's lease while it runs")
    lease_until: Optional[datetime] = _timestamp("lease_until")

    def refresh(self) -> "JobSnapshot":
        """Reload this job's state (it may have been removed: then it stays as it was)."""
        fresh = self._reload(self.id)
        if fresh is not None:
            self._record = fresh
        return self
