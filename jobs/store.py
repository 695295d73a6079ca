"""The job store: everything the queue reads and writes in the job tables, for SQLite and PostgreSQL.

The database is the truth about jobs, so any process of the app can answer
for any job. The statements live in ``jobs/sql.py``; the worker's writes in
``jobs/leases.py``, sweeping and clearing in ``jobs/maintenance.py``.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Optional

from jobs.leases import LeasedWrites
from jobs.maintenance import StoreMaintenance
from jobs.schema import RECORD_COLUMNS, JobEvent, JobRecord, Message
from jobs.sql import NOTIFY_CHANNEL
from jobs.status import JobStatus
from jobs.store_base import (QUEUED, daily_from_row, message_from_row, record_from_row, run_from_row,
                              stored_datetime)

NO_LIMIT = 2**62  # a LIMIT bigger than any table: "all rows"
INSERT_ATTEMPTS = 5


def _unique_violations() -> tuple[type[Exception], ...]:
    import psycopg

    return (sqlite3.IntegrityError, psycopg.IntegrityError)


UNIQUE_VIOLATIONS = _unique_violations()


def _with_messages(records: list[JobRecord], messages: list[tuple]) -> list[JobRecord]:
    by_id = {record.id: record for record in records}
    for job_id, timestamp, text in messages:
        if job_id in by_id:
            by_id[job_id].messages.append(message_from_row(timestamp, text))
    return records


class JobStore(LeasedWrites, StoreMaintenance):
    """The job tables of one database."""

    # -- writes by the enqueuer and by people -----------------------------------------

    def insert(self, record: JobRecord) -> Optional[tuple[str, JobStatus]]:
        """Store a new queued job and return None; or, when an active job holds its ``unique_key``, that one.

        The partial unique index decides, so two processes enqueueing the same
        scraper at once get one job. Returns (id, status) of the job that won.
        """
        values = {
            "id": record.id, "name": record.name, "func_path": record.func_path,
            "args_json": record.args_json, "pinned_to": record.pinned_to, "queued": QUEUED,
            "created_at": self._time(record.created_at), "max_attempts": record.max_attempts,
            "unique_key": record.unique_key, "time_limit": record.time_limit, "isolation": record.isolation,
        }
        for _ in range(INSERT_ATTEMPTS):
            try:
                with self._transaction(single=True) as cursor:
                    if self.is_postgresql:
                        self._run(cursor, "insert_and_notify", channel=NOTIFY_CHANNEL, **values)
                    else:
                        self._run(cursor, "insert", **values)
                return None
            except UNIQUE_VIOLATIONS:
                if record.unique_key is None:
                    raise
            existing = self.active_with_key(record.unique_key)
            if existing is not None:
                return existing
            # the active one ended between our insert and our look: insert again
        raise RuntimeError(f"job key {record.unique_key!r} kept changing hands; gave up enqueueing")

    def active_with_key(self, unique_key: str) -> Optional[tuple[str, JobStatus]]:
        with self._transaction(write=False, single=True) as cursor:
            row = self._run(cursor, "active_with_key", unique_key=unique_key, queued=QUEUED,
                            running=JobStatus.RUNNING.value).fetchone()
        return (row[0], JobStatus(row[1])) if row is not None else None

    def cancel(self, job_id: str, note: Message) -> Optional[JobStatus]:
        """Cancel a queued job at once, or ask a running one to stop; return the job's status before.

        None for an unknown job; a final status means nothing was changed.
        """
        now = self._time(note[0])
        with self._transaction() as cursor:
            cancelled = self._run(cursor, "cancel_queued", id=job_id, queued=QUEUED,
                                  cancelled=JobStatus.CANCELLED.value, now=now).rowcount
            if cancelled:
                self._add_event(cursor, job_id, JobStatus.CANCELLED.value, note[0])
                self._add_messages(cursor, job_id, [note])
                return JobStatus.QUEUED
            if self._run(cursor, "request_cancel", id=job_id, running=JobStatus.RUNNING.value, now=now).rowcount:
                return JobStatus.RUNNING
            row = self._run(cursor, "select_status", id=job_id).fetchone()
        return JobStatus(row[0]) if row is not None else None

    # -- the outbox of job events, for a consumer (jobs/signals.py: JobEventOutbox) -----

    def pending_events(self, limit: int = 100) -> list[JobEvent]:
        """The oldest job events no consumer has removed yet."""
        with self._transaction(write=False, single=True) as cursor:
            rows = self._run(cursor, "pending_events", limit=limit).fetchall()
        return [JobEvent(event_id, job_id, JobStatus(status), stored_datetime(occurred_at))
                for event_id, job_id, status, occurred_at in rows]

    def forget_events(self, event_ids: list[int]) -> None:
        """Remove consumed events: by id, never by range (an older id may commit after a newer one)."""
        if not event_ids:
            return
        statement = self._statements["forget_event"]
        with self._transaction() as cursor:
            cursor.executemany(statement.text, [statement.params({"event_id": event_id}) for event_id in event_ids])
        self.checkpoint_due = not self.is_postgresql  # the workers' housekeeper folds the log back when idle

    # -- reads ----------------------------------------------------------------

    def get(self, job_id: str) -> Optional[JobRecord]:
        """One job with its messages, in one statement."""
        with self._transaction(write=False, single=True) as cursor:
            rows = self._run(cursor, "select_one", id=job_id).fetchall()
        if not rows:
            return None
        record = record_from_row(rows[0][:len(RECORD_COLUMNS)])
        record.messages = [message_from_row(ts, text) for *_, ts, text in rows if text is not None]
        return record

    def newest(self, limit: Optional[int] = None) -> list[JobRecord]:
        """The newest jobs with their messages, all of them without ``limit``."""
        limit = limit if limit is not None else NO_LIMIT
        with self._transaction(write=False) as cursor:
            rows = self._run(cursor, "select_newest", limit=limit).fetchall()
            messages = self._run(cursor, "messages_of_newest", limit=limit).fetchall()
        return _with_messages([record_from_row(row) for row in rows], messages)

    def find(self, *, name: Optional[str] = None, status: Optional[str] = None,
             since: Optional[datetime] = None, until: Optional[datetime] = None, before: Optional[str] = None,
             limit: int = 20, with_messages: bool = True) -> list[JobRecord]:
        """Jobs matching the history's filters, newest first; ``before`` is the job id a page ends at."""
        params = {"name": name, "status": status, "since": self._time(since), "until": self._time(until),
                  "before": before, "limit": limit}
        with self._transaction(write=False) as cursor:
            rows = self._run(cursor, "select_filtered", **params).fetchall()
            messages = self._run(cursor, "messages_of_filtered", **params).fetchall() if with_messages else []
        return _with_messages([record_from_row(row) for row in rows], messages)

    def finished_runs(self, since: datetime) -> tuple[list[tuple], list[tuple]]:
        """For statistics: (name, status, started, completed, result) of each run finished since ``since``,
        and the rows of the days that ``clear_old_jobs`` has already folded up."""
        final = {"completed": JobStatus.COMPLETED.value, "failed": JobStatus.FAILED.value,
                 "cancelled": JobStatus.CANCELLED.value}
        with self._transaction(write=False) as cursor:
            runs = self._run(cursor, "finished_since", since=self._time(since), **final).fetchall()
            days = self._run(cursor, "daily_since", since_day=self._day(since.date())).fetchall()
        return [run_from_row(row) for row in runs], [daily_from_row(row) for row in days]

    def count(self, status: JobStatus) -> int:
        with self._transaction(write=False, single=True) as cursor:
            return self._run(cursor, "count_status", status=JobStatus(status).value).fetchone()[0]
