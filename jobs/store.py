"""All reads and writes of the job tables, for SQLite and PostgreSQL.

The database is the truth about jobs, so any process of the app can answer
for any job. Workers claim a job in one atomic statement, record themselves
as its owner with a lease, and every later write of that job names the
owner: a worker whose lease was taken over writes nothing. The statements
themselves live in ``jobs/sql.py``.
"""

from __future__ import annotations

import json
import logging
from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import Any, Iterable, Optional

from sqlalchemy.engine import Engine

from database import utcnow
from jobs.connections import Connections
from jobs.maintenance import StoreMaintenance
from jobs.schema import DATETIME_COLUMNS, RECORD_COLUMNS, JobRecord, Message, job_table
from jobs.sql import NOTIFY_CHANNEL, compiled_statements
from jobs.status import JobStatus

log = logging.getLogger(__name__)


QUEUED, RUNNING = JobStatus.QUEUED.value, JobStatus.RUNNING.value
NO_LIMIT = 2**62  # a LIMIT bigger than any table: "all rows"


def _to_json(value: Any) -> Optional[str]:
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


def _message(timestamp: Any, text: str) -> Message:
    return (datetime.fromisoformat(timestamp) if isinstance(timestamp, str) else timestamp, text)


class JobStore(StoreMaintenance):
    """The job tables of one database, read and written with plain SQL on DB-API connections."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._connections = Connections(engine)
        self._transaction = self._connections.transaction
        self.is_postgresql = self._connections.is_postgresql
        self._statements = compiled_statements("postgresql" if self.is_postgresql else "sqlite")

    # -- plumbing ---------------------------------------------------------------

    def _time(self, moment: Optional[datetime]) -> Any:
        # SQLite keeps datetimes as text; this is the format SQLAlchemy uses too.
        if moment is None or self.is_postgresql:
            return moment
        return moment.isoformat(sep=" ", timespec="microseconds")

    def _run(self, cursor: Any, statement_name: str, /, **values: Any) -> Any:
        statement = self._statements[statement_name]
        return cursor.execute(statement.text, statement.params(values))

    def _add_messages(self, cursor: Any, job_id: str, messages: Iterable[Message]) -> None:
        statement = self._statements["insert_message"]
        rows = [statement.params({"job_id": job_id, "timestamp": self._time(ts), "message": text})
                for ts, text in messages]
        if rows:
            cursor.executemany(statement.text, rows)

    def _lease_params(self, owner: str, lease_seconds: float) -> dict[str, Any]:
        now = utcnow()
        return {"owner": owner, "running": RUNNING, "now": self._time(now),
                "lease_until": self._time(now + timedelta(seconds=lease_seconds))}

    # -- writes by the enqueuer ---------------------------------------------------

    def insert(self, record: JobRecord) -> None:
        values = {
            "id": record.id, "name": record.name, "func_path": record.func_path,
            "args_json": record.args_json, "pinned_to": record.pinned_to, "queued": QUEUED,
            "created_at": self._time(record.created_at), "max_attempts": record.max_attempts,
        }
        with self._transaction(single=True) as cursor:
            if self.is_postgresql:
                self._run(cursor, "insert_and_notify", channel=NOTIFY_CHANNEL, **values)
            else:
                self._run(cursor, "insert", **values)

    # -- worker side: claim, heartbeat, finish ----------------------------------

    def claim(self, owner: str, process_token: str, lease_seconds: float) -> Optional[JobRecord]:
        """Atomically take the oldest runnable queued job, or return None."""
        with self._transaction(single=True) as cursor:
            return self._claim_in(cursor, owner, process_token, lease_seconds)

    def _claim_in(self, cursor: Any, owner: str, process_token: str, lease_seconds: float) -> Optional[JobRecord]:
        row = self._run(cursor, "claim", queued=QUEUED, token=process_token,
                        **self._lease_params(owner, lease_seconds)).fetchone()
        return record_from_row(row) if row is not None else None

    def heartbeat(self, job_id: str, owner: str, lease_seconds: float, progress: int, total_steps: int,
                  messages: list[Message]) -> bool:
        """Write progress and new messages and renew the lease; False if the lease was lost."""
        with self._transaction(single=not messages) as cursor:
            updated = self._run(cursor, "heartbeat", id=job_id, progress=progress, total_steps=total_steps,
                                **self._lease_params(owner, lease_seconds)).rowcount
            if updated:
                self._add_messages(cursor, job_id, messages)
        return updated == 1

    def finish(self, job_id: str, owner: str, *, status: JobStatus, progress: int, total_steps: int,
               result: Any, error: Optional[str], traceback: Optional[str],
               completed_at: datetime, messages: list[Message]) -> bool:
        """Write a final state; False (and nothing written) if the lease was lost."""
        with self._transaction(single=not messages) as cursor:
            return self._finish_in(cursor, job_id, owner, status=status, progress=progress,
                                   total_steps=total_steps, result=result, error=error,
                                   traceback=traceback, completed_at=completed_at, messages=messages)

    def finish_and_claim(self, job_id: str, owner: str, token: str, lease_seconds: float,
                         **final: Any) -> tuple[bool, Optional[JobRecord]]:
        """Finish a job and claim the next: one transaction on SQLite, one statement on PostgreSQL."""
        if self.is_postgresql:
            if final["messages"]:
                return self.finish(job_id, owner, **final), self.claim(owner, token, lease_seconds)
            with self._transaction(single=True) as cursor:
                row = self._run(cursor, "finish_and_claim", queued=QUEUED, token=token,
                                **self._final_params(job_id, final),
                                **self._lease_params(owner, lease_seconds)).fetchone()
            finished, claimed = row[0] == 1, row[1:]
            return finished, (record_from_row(claimed) if claimed[0] is not None else None)
        with self._transaction() as cursor:
            finished = self._finish_in(cursor, job_id, owner, **final)
            return finished, self._claim_in(cursor, owner, token, lease_seconds)

    def _final_params(self, job_id: str, final: dict[str, Any]) -> dict[str, Any]:
        return {"id": job_id, "status": JobStatus(final["status"]).value, "progress": final["progress"],
                "total_steps": final["total_steps"], "result_json": _to_json(final["result"]),
                "error": final["error"], "traceback": final["traceback"],
                "completed_at": self._time(final["completed_at"])}

    def _finish_in(self, cursor: Any, job_id: str, owner: str, **final: Any) -> bool:
        updated = self._run(cursor, "finish", owner=owner, running=RUNNING,
                            **self._final_params(job_id, final)).rowcount
        if updated:
            self._add_messages(cursor, job_id, final["messages"])
        return updated == 1

    def give_back(self, job_id: str, owner: str, messages: Optional[list[Message]] = None) -> bool:
        """Return a job this worker will not finish (it is stopping) to the queue; its attempt is not counted.

        ``messages`` (those not yet written, and why it goes back) are kept.
        """
        with self._transaction(single=not messages) as cursor:
            returned = self._run(cursor, "give_back", queued=QUEUED, running=RUNNING, id=job_id,
                                 owner=owner).rowcount == 1
            if returned:
                self._add_messages(cursor, job_id, messages or [])
        return returned

    # -- reads ----------------------------------------------------------------

    def get(self, job_id: str) -> Optional[JobRecord]:
        """One job with its messages, in one statement."""
        with self._transaction(write=False, single=True) as cursor:
            rows = self._run(cursor, "select_one", id=job_id).fetchall()
        if not rows:
            return None
        record = record_from_row(rows[0][:len(RECORD_COLUMNS)])
        record.messages = [_message(ts, text) for *_, ts, text in rows if text is not None]
        return record

    def newest(self, limit: Optional[int] = None) -> list[JobRecord]:
        """The newest jobs with their messages, all of them without ``limit``."""
        limit = limit if limit is not None else NO_LIMIT
        with self._transaction(write=False) as cursor:
            rows = self._run(cursor, "select_newest", limit=limit).fetchall()
            messages = self._run(cursor, "messages_of_newest", limit=limit).fetchall()
        records = [record_from_row(row) for row in rows]
        by_id = {record.id: record for record in records}
        for job_id, timestamp, text in messages:
            if job_id in by_id:
                by_id[job_id].messages.append(_message(timestamp, text))
        return records

    def count(self, status: JobStatus) -> int:
        with self._transaction(write=False, single=True) as cursor:
            return self._run(cursor, "count_status", status=JobStatus(status).value).fetchone()[0]
