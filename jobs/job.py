"""A job as its function sees it: ``Job``, the running handle (``JobSnapshot`` is in ``jobs/view.py``).

The handle is what a job function gets as its first argument: it records
progress and messages in memory, and this process's housekeeper writes them
to the database at most every ``JOBS_FLUSH_INTERVAL`` (a scraper may call
``set_progress`` in a tight loop). A job run in a child process gets a
``ChildJob`` (``jobs/child.py``) that reports the same over a pipe to this one.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
import traceback as tracebacks
import uuid
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any, Callable, Iterator, Optional

from database import is_database_unavailable, utcnow
from jobs.kinds import JobStopped
from jobs.schema import JobRecord, Message
from jobs.status import JobStatus
from jobs.view import JobView

log = logging.getLogger(__name__)


def describe_error(exc: BaseException) -> tuple[str, Optional[str]]:
    """The error text and traceback a failed job keeps; an error relayed from a child brings its own.

    A database that went away is said in German, in one line, without the
    statement and its parameters (those stay in the traceback).
    """
    if hasattr(exc, "error_text"):
        return exc.error_text, getattr(exc, "traceback_text", None)
    traceback = "".join(tracebacks.format_exception(type(exc), exc, exc.__traceback__))
    if is_database_unavailable(exc):
        cause = str(getattr(exc, "orig", None) or exc).strip()
        return f"Datenbank nicht erreichbar: {cause.splitlines()[0] if cause else type(exc).__name__}", traceback
    return f"{type(exc).__name__}: {exc}", traceback


def too_late(stop: JobStopped) -> str:
    """The message of a job that was asked to stop once its work was already done and stored."""
    return f"{stop}: kam zu spät, der Job war schon fertig (Daten gespeichert)"


class Job(JobView):
    """The handle a job function gets: it reports progress and messages.

    ``Job(func)`` makes a detached job that lives only in memory (scripts,
    tests of a job function); the worker makes the handles of queued jobs.
    """

    def __init__(self, func: Optional[Callable[..., Any]] = None, args: tuple = (),
                 kwargs: Optional[dict] = None, name: Optional[str] = None) -> None:
        record = JobRecord(id=str(uuid.uuid4()), name=name or getattr(func, "__name__", repr(func)),
                           status=JobStatus.QUEUED, created_at=utcnow())
        self._setup(record)
        self.func, self.args, self.kwargs = func, tuple(args), dict(kwargs or {})

    @classmethod
    def claimed(cls, record: JobRecord, owner: str) -> "Job":
        """The handle of a job this process's worker ``owner`` has claimed."""
        job = cls.__new__(cls)
        job._setup(record)
        job.owner = owner
        return job

    def _setup(self, record: JobRecord) -> None:
        self._record = record
        self.owner: Optional[str] = None
        self._lock = threading.Lock()
        # Heartbeat and final write must not overlap: messages taken by one must
        # not be lost when the other changes the row first.
        self.write_lock = threading.Lock()
        self._pending: list[Message] = []  # messages not yet in the database
        self.dirty = False
        self.lost = False  # another worker took the lease over (or it was given back): write nothing more
        self.settled = False  # the outcome is stored
        self.stop_reason: Optional[JobStopped] = None  # set when the job must stop (cancel, time limit)
        self._on_stop: list[Callable[[], None]] = []
        self._committing = False  # inside committing(): a stop waits for the block's end
        self.committed = False  # committing() ended: the job's work is stored, later stops come too late
        self.in_child = False  # its function runs in a child process (jobs/supervisor.py)
        self.last_write = time.monotonic()  # the claim renewed the lease

    def _guard(self) -> AbstractContextManager[Any]:
        return self._lock

    # -- called by the job function ----------------------------------------------------

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the job is asked to stop (a supervisor passes the stop on to the child)."""
        with self._lock:
            if self.stop_reason is None:
                self._on_stop.append(callback)
                return
        callback()

    def raise_if_stopped(self) -> None:
        """Raise the stop reason, unless the job is committing its work or has committed it."""
        if self.stop_reason is not None and not (self._committing or self.committed):
            raise self.stop_reason

    @contextmanager
    def committing(self) -> Iterator[None]:
        """Store the job's work in this block: a stop that comes meanwhile waits for its end.

        Once the block has ended without an error, the work is stored and the
        job completes: a stop that comes later only says it came too late.
        """
        self.raise_if_stopped()
        self._committing = True
        try:
            yield
            self.committed = True
        finally:
            self._committing = False

    def add_message(self, msg: str) -> None:
        """Append a timestamped status message that the admin page shows.

        Raises ``JobCancelled``/``JobTimedOut`` once the job was asked to stop.
        """
        self.raise_if_stopped()
        self.note(str(msg))

    def note(self, text: str, moment: Optional[datetime] = None) -> None:
        """Record a message whatever the job's state: a child's relayed, or why the job ended."""
        log.info("job %s: %s", self.id, text)
        with self._lock:
            self._note(moment or utcnow(), text)
            self.dirty = True

    def set_progress(self, current: int, total: int = 100) -> None:
        """Record ``current`` of ``total`` steps done, clamped to ``0..total``.

        Raises ``JobCancelled``/``JobTimedOut`` once the job was asked to stop.
        """
        self.raise_if_stopped()
        self.record_progress(current, total)

    def record_progress(self, current: int, total: int = 100) -> None:
        """Set the progress whatever the job's state (a child's, relayed)."""
        total = int(total)
        if total <= 0:
            raise ValueError(f"total must be positive, got {total}")
        current = max(0, min(int(current), total))
        with self._lock:
            self._record.progress = current
            self._record.total_steps = total
            self.dirty = True

    # -- called by this process's worker and housekeeper -------------------------------

    def request_stop(self, reason: JobStopped) -> bool:
        """Ask the job to stop (at its next ``add_message``/``set_progress`` in a thread); False if asked already.

        The first reason wins.
        """
        with self._lock:
            if self.stop_reason is not None:
                return False
            self.stop_reason, callbacks, self._on_stop = reason, self._on_stop, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("job %s: a stop callback failed", self.id)
        return True

    def snapshot_record(self) -> JobRecord:
        """A copy of the current state, for readers in this process."""
        with self._lock:
            record = copy.copy(self._record)
            record.messages = list(self._record.messages)
            return record

    def take_changes(self) -> tuple[int, int, list[Message]]:
        """Progress and the messages not yet written; the caller writes them or gives them back."""
        with self._lock:
            pending, self._pending = self._pending, []
            self.dirty = False
            return self._record.progress, self._record.total_steps, pending

    def give_back_messages(self, pending: list[Message]) -> None:
        """Keep messages whose write failed for the next try, in order."""
        with self._lock:
            self._pending[:0] = pending
            self.dirty = True

    def record_outcome(self, status: JobStatus, result: Any = None,
                       exc: Optional[BaseException] = None) -> dict[str, Any]:
        """Set the final state in memory; return what the final write must store.

        A cancelled job has no error, only the message why; a job stopped by
        its time limit fails with that reason, without a traceback.
        """
        now = utcnow()
        with self._lock:
            record = self._record
            if isinstance(exc, JobStopped):
                record.error = None if status is JobStatus.CANCELLED else str(exc)
                self._note(now, str(exc) if record.error is None else f"Fehler: {record.error}")
            elif exc is not None:
                record.error, record.traceback = describe_error(exc)
                self._note(now, f"Fehler: {record.error}")
            else:
                record.result = result
                record.progress = record.total_steps
            record.status, record.completed_at = status, now
            pending, self._pending = self._pending, []
            return dict(status=status, progress=record.progress, total_steps=record.total_steps,
                        result=record.result, error=record.error, traceback=record.traceback,
                        completed_at=now, messages=[] if self.lost else pending)

    def record_retry(self, note: str, retry_at: datetime) -> tuple[int, int, list[Message]]:
        """Mark the job queued again for a later attempt; return progress and the messages to write."""
        now = utcnow()
        with self._lock:
            self._note(now, note)
            self._record.status, self._record.retry_at = JobStatus.QUEUED, retry_at
            pending, self._pending = self._pending, []
            return self._record.progress, self._record.total_steps, pending

    def _note(self, moment: datetime, text: str) -> None:
        entry = (moment, text)
        self._record.messages.append(entry)
        self._pending.append(entry)
