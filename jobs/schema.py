"""The job tables and the plain record a row becomes.

The tables are SQLAlchemy's, so migrations (``migrations/``) and
``create_all`` know them; the store runs plain SQL against them.
Timestamps are naive UTC (``database.utcnow``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Optional

import sqlalchemy as sa

from jobs.status import JobStatus

metadata = sa.MetaData()

_SEQ = sa.BigInteger().with_variant(sa.Integer, "sqlite")  # SQLite autoincrements only INTEGER keys

job_table = sa.Table(
    "job",
    metadata,
    sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(36), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("func_path", sa.String(300)),  # "module:qualname"; None for in-process callables
    sa.Column("args_json", sa.Text),
    sa.Column("pinned_to", sa.String(64)),  # process token that alone can run it
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("progress", sa.Integer, nullable=False, default=0),
    sa.Column("total_steps", sa.Integer, nullable=False, default=100),
    sa.Column("result_json", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("traceback", sa.Text),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("started_at", sa.DateTime),
    sa.Column("completed_at", sa.DateTime),
    sa.Column("owner", sa.String(160)),
    sa.Column("lease_until", sa.DateTime),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("max_attempts", sa.Integer, nullable=False, default=3),
    # One active job per key (a scraper's kind): enforced by the partial unique index below.
    sa.Column("unique_key", sa.String(200)),
    sa.Column("cancel_requested_at", sa.DateTime),  # a running job is asked to stop
    sa.Column("retry_at", sa.DateTime),  # a queued job waiting for its next attempt runs no earlier
    sa.Column("time_limit", sa.Float),  # seconds a run may take; past it the job is stopped
    # "thread" or "process" (jobs/kinds.py): whether a worker runs it in its own thread or in a child.
    sa.Column("isolation", sa.String(10), nullable=False, default="thread", server_default="thread"),
    sa.Index("ix_job_status_seq", "status", "seq"),
    sa.Index("uq_job_active_key", "unique_key", unique=True,
             sqlite_where=sa.text("status IN ('queued', 'running')"),
             postgresql_where=sa.text("status IN ('queued', 'running')")),
)

# A cron schedule per job kind; last_due_at is the due time already enqueued (exactly once).
schedule_table = sa.Table(
    "job_schedule",
    metadata,
    sa.Column("kind", sa.String(40), primary_key=True),
    sa.Column("expression", sa.String(120), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, default=False),
    sa.Column("last_due_at", sa.DateTime),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

# Finished jobs folded into one row per day and job name before clear_old_jobs removes them,
# so statistics outlive the jobs. Durations are kept one by one (a few runs a day): medians stay exact.
daily_stats_table = sa.Table(
    "job_daily_stats",
    metadata,
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("completed", sa.Integer, nullable=False, default=0),
    sa.Column("failed", sa.Integer, nullable=False, default=0),
    sa.Column("cancelled", sa.Integer, nullable=False, default=0),
    sa.Column("durations_json", sa.Text, nullable=False),  # seconds of each run, JSON list
    sa.Column("totals_json", sa.Text, nullable=False),  # sums of the numeric result keys, JSON object
    sa.Column("last_success_at", sa.DateTime),
)

message_table = sa.Table(
    "job_message",
    metadata,
    sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(36), nullable=False, index=True),
    sa.Column("timestamp", sa.DateTime, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
)

# The outbox of job events: one row per job that reached a final state, written in the same
# transaction as that state (jobs/leases.py, store.py, maintenance.py), so what must follow a
# job's end (a webhook) is as durable as the end itself. A consumer (webhooks/) turns rows into
# its own work and deletes them; clear_old_jobs deletes those of the jobs it removes. Ids are
# never reused (AUTOINCREMENT on SQLite): a consumer may key its work on them.
job_event_table = sa.Table(
    "job_event",
    metadata,
    sa.Column("id", _SEQ, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(36), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # the final status the job reached
    sa.Column("occurred_at", sa.DateTime, nullable=False),
    sqlite_autoincrement=True,
)

# The job columns a record is read from, in table order; every SELECT and
# RETURNING of the store lists exactly these.
RECORD_COLUMNS: tuple[str, ...] = tuple(column.name for column in job_table.columns)
DATETIME_COLUMNS = frozenset(
    column.name for column in job_table.columns if isinstance(column.type, sa.DateTime)
)

Message = tuple[datetime, str]


@dataclass(frozen=True)
class JobEvent:
    """One job that reached a final state, as the outbox holds it until a consumer takes it."""

    id: int
    job_id: str
    status: JobStatus
    occurred_at: datetime


@dataclass
class JobRecord:
    """One job row with its messages, as plain data."""

    id: str
    name: str
    status: JobStatus
    progress: int = 0
    total_steps: int = 100
    result: Any = None
    error: Optional[str] = None
    traceback: Optional[str] = None
    created_at: Optional[datetime] = None
    started_at: Optional[datetime] = None
    completed_at: Optional[datetime] = None
    func_path: Optional[str] = None
    args_json: Optional[str] = None
    pinned_to: Optional[str] = None
    owner: Optional[str] = None
    lease_until: Optional[datetime] = None
    attempts: int = 0
    max_attempts: int = 3
    unique_key: Optional[str] = None
    cancel_requested_at: Optional[datetime] = None
    retry_at: Optional[datetime] = None
    time_limit: Optional[float] = None
    isolation: str = "thread"
    seq: Optional[int] = None
    messages: list[Message] = field(default_factory=list)

    @property
    def percent(self) -> int:
        return int(self.progress * 100 // self.total_steps)
