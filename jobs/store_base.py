"""Plumbing of the job store: rows to records, compiled statements on one cursor, SQLite's text dates.

``JobStore`` (``jobs/store.py``) is built from this base and two parts that
use it: ``LeasedWrites`` (``jobs/leases.py``, what a worker writes) and
``StoreMaintenance`` (``jobs/maintenance.py``, sweeping and clearing).
"""

from __future__ import annotations

import functools
import json
from datetime import date, datetime, timedelta
from typing import Any, Iterable, Optional

from sqlalchemy.engine import Engine

from database import storable_text, utcnow
from jobs.connections import Connections
from jobs.schema import DATETIME_COLUMNS, RECORD_COLUMNS, JobRecord, Message
from jobs.sql import CompiledStatement, compiled_statements
from jobs.status import JobStatus

QUEUED, RUNNING = JobStatus.QUEUED.value, JobStatus.RUNNING.value


def to_json(value: Any) -> Optional[str]:
    return None if value is None else json.dumps(value, default=str, ensure_ascii=False)


def record_from_row(row: Any) -> JobRecord:
    """A job row (columns in ``RECORD_COLUMNS`` order) as a ``JobRecord``; SQLite's text dates parsed."""
    data = dict(zip(RECORD_COLUMNS, row))
    for name in DATETIME_COLUMNS:
        if isinstance(data[name], str):
            data[name] = datetime.fromisoformat(data[name])
    result_json = data.pop("result_json")
    data["status"] = JobStatus(data["status"])
    return JobRecord(result=json.loads(result_json) if result_json else None, **data)


def stored_datetime(value: Any) -> Optional[datetime]:
    """A time as the database returned it: SQLite gives text, PostgreSQL a datetime."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def run_from_row(row: Any) -> tuple:
    """(name, status, started_at, completed_at, result) of a finished run."""
    name, status, started, completed, result_json = row
    return (name, JobStatus(status), stored_datetime(started), stored_datetime(completed),
            json.loads(result_json) if result_json else None)


def daily_from_row(row: Any) -> tuple:
    """(day, name, completed, failed, cancelled, durations, totals, last_success_at) of a folded day."""
    day, name, completed, failed, cancelled, durations_json, totals_json, last_success = row
    return (date.fromisoformat(day) if isinstance(day, str) else day, name, completed, failed, cancelled,
            json.loads(durations_json), json.loads(totals_json), stored_datetime(last_success))


def message_from_row(timestamp: Any, text: str) -> Message:
    return (datetime.fromisoformat(timestamp) if isinstance(timestamp, str) else timestamp, text)


class StoreBase:
    """The job tables of one database, reached through plain SQL on DB-API connections."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._connections = Connections(engine)
        self._transaction = self._connections.transaction
        self.is_postgresql = self._connections.is_postgresql
        self.checkpoint_due = False  # SQLite: written outside a job since the log was last folded back

    @functools.cached_property
    def _statements(self) -> dict[str, CompiledStatement]:
        """Compile the statements at their first use, not when the store is made.

        A job's child process builds the app, and with it a store it mostly
        never uses; compiling costs 50–90 ms, once per process.
        """
        return compiled_statements("postgresql" if self.is_postgresql else "sqlite")

    def _time(self, moment: Optional[datetime]) -> Any:
        # SQLite keeps datetimes as text; this is the format SQLAlchemy uses too.
        if moment is None or self.is_postgresql:
            return moment
        return moment.isoformat(sep=" ", timespec="microseconds")

    def _day(self, day: date) -> Any:
        return day if self.is_postgresql else day.isoformat()

    def _run(self, cursor: Any, statement_name: str, /, **values: Any) -> Any:
        statement = self._statements[statement_name]
        return cursor.execute(statement.text, statement.params(values))

    def _add_messages(self, cursor: Any, job_id: str, messages: Iterable[Message]) -> None:
        statement = self._statements["insert_message"]
        rows = [statement.params({"job_id": job_id, "timestamp": self._time(ts), "message": storable_text(text)})
                for ts, text in messages]
        if rows:
            cursor.executemany(statement.text, rows)

    def _add_event(self, cursor: Any, job_id: str, status: str, occurred_at: Optional[datetime]) -> None:
        """Record in the outbox that a job reached a final state: call it in the transaction that wrote it."""
        self._run(cursor, "insert_event", id=job_id, status=status, occurred_at=self._time(occurred_at or utcnow()))

    def _lease_params(self, owner: str, lease_seconds: float) -> dict[str, Any]:
        now = utcnow()
        return {"owner": owner, "running": RUNNING, "now": self._time(now),
                "lease_until": self._time(now + timedelta(seconds=lease_seconds))}

