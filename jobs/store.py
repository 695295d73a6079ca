"""The job tables and every SQL statement the queue runs, for SQLite and PostgreSQL.

The database is the truth about jobs, so any process of the app can answer for
any job. Workers claim a job in one atomic statement (PostgreSQL: ``FOR UPDATE
SKIP LOCKED``; SQLite: one ``UPDATE ... RETURNING`` inside ``BEGIN
IMMEDIATE``), record themselves as its owner with a lease, and every later
write of that job names the owner: a worker whose lease was taken over writes
nothing. Timestamps are naive UTC.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Iterator, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

QUEUED, RUNNING, COMPLETED, FAILED = "queued", "running", "completed", "failed"
FINAL = (COMPLETED, FAILED)
NOTIFY_CHANNEL = "job_queue"
WORKER_LOST = "Worker verloren: der Prozess, der den Job ausführte, antwortet nicht mehr"

metadata = sa.MetaData()

job_table = sa.Table(
    "job",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
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
    sa.Index("ix_job_status_seq", "status", "seq"),
)

message_table = sa.Table(
    "job_message",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(36), nullable=False, index=True),
    sa.Column("timestamp", sa.DateTime, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
)



def utcnow_naive() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass
class JobRecord:
    """One job row with its messages, as plain data."""

    id: str
    name: str
    status: str
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
    seq: Optional[int] = None
    messages: list[tuple[datetime, str]] = field(default_factory=list)


def create_tables(engine: Engine, table_metadata: sa.MetaData) -> None:
    """Create missing tables; safe when several processes start at once."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # One process at a time: concurrent CREATE TABLE races on PostgreSQL.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(727274)"))
        table_metadata.create_all(conn)


def make_engine(url: str, durable_commit: bool = False) -> Engine:
    """An engine for the queue: on SQLite, WAL, a busy timeout and BEGIN IMMEDIATE.

    On PostgreSQL, job writes do not wait for the WAL to reach the disk unless
    ``durable_commit``: a crash of the database server (not of the app) may
    then lose the last fraction of a second of job updates, in exchange for a
    queue several times faster. Shop data is written durably either way.
    """
    if not url.startswith("sqlite"):
        # Each transaction commits or rolls back itself: no reset round trip on
        # check-in. A broken connection fails one call and is discarded (_transaction).
        engine = sa.create_engine(url, pool_size=10, max_overflow=20, pool_reset_on_return=None)

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Autocommit: one-statement work costs one round trip; JobStore
            # brackets longer work in BEGIN ... COMMIT itself.
            dbapi_connection.autocommit = True
            if not durable_commit:
                dbapi_connection.execute("SET synchronous_commit TO OFF")

        return engine
    engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                              pool_reset_on_return=None)
    configure_sqlite_engine(engine)
    return engine


def configure_sqlite_engine(engine: Engine) -> None:
    """Let several threads and processes write one SQLite file without "database is locked".

    WAL lets readers go on while one writer writes, and the busy timeout makes
    a writer wait for the lock instead of failing. A transaction that reads
    first and writes later must take the write lock up front (``BEGIN
    IMMEDIATE``): a deferred one fails at once when another connection
    committed in between. The queue's own transactions always do
    (``JobStore._transaction``); an ORM session asks for it with the
    ``sqlite_immediate`` execution option (``models.begin_write``).
    """

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        _prepare_sqlite(dbapi_connection)

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _prepare_sqlite(connection: sqlite3.Connection) -> None:
    """WAL, fsync only at checkpoints, wait up to 30 s for the write lock; BEGIN is ours to issue."""
    connection.isolation_level = None
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA busy_timeout=30000")


def _is_broken(connection: Any) -> bool:
    return bool(connection.closed or getattr(connection, "broken", False))


def _to_json(value: Any) -> Optional[str]:
    return None if value is None else json.dumps(value, default=str, ensure_ascii=False)


_NAMED_PARAM = re.compile(r"(?<!:):([a-z_][a-z0-9_]*)")
_RECORD_COLUMNS = (
    "seq", "id", "name", "func_path", "args_json", "pinned_to", "status", "progress", "total_steps",
    "result_json", "error", "traceback", "created_at", "started_at", "completed_at", "owner",
    "lease_until", "attempts", "max_attempts",
)
# Every statement is a literal: parameters carry all values. The few that differ
# between the two databases come in two spellings.
_INSERT = """INSERT INTO job (id, name, func_path, args_json, pinned_to, status, progress, total_steps,
        created_at, attempts, max_attempts)
    VALUES (:id, :name, :func_path, :args_json, :pinned_to, :queued, 0, 100, :created_at, 0, :max_attempts)"""
# PostgreSQL, one round trip: insert, and wake the listening workers on commit, but
# only when no other job waits. While jobs wait, the workers are busy and each claims
# its next job as it finishes one (a NOTIFY per job to every listening process would
# cost more than the job). The statement's snapshot does not see its own new row.
_INSERT_AND_NOTIFY = """WITH new_job AS (
        INSERT INTO job (id, name, func_path, args_json, pinned_to, status, progress, total_steps,
            created_at, attempts, max_attempts)
        VALUES (:id, :name, :func_path, :args_json, :pinned_to, :queued, 0, 100, :created_at, 0,
                :max_attempts)
        RETURNING id)
    SELECT pg_notify(:channel, id) FROM new_job
    WHERE NOT EXISTS (SELECT 1 FROM job WHERE status = :queued AND pinned_to IS NULL)"""
_CLAIM = {
    "sqlite": """UPDATE job SET status = :running, owner = :owner, lease_until = :lease_until,
            attempts = attempts + 1, started_at = :now
        WHERE seq = (SELECT seq FROM job
                     WHERE status = :queued AND (pinned_to IS NULL OR pinned_to = :token)
                     ORDER BY seq LIMIT 1)
        RETURNING seq, id, name, func_path, args_json, pinned_to, status, progress, total_steps,
            result_json, error, traceback, created_at, started_at, completed_at, owner, lease_until,
            attempts, max_attempts""",
    "postgresql": """UPDATE job SET status = :running, owner = :owner, lease_until = :lease_until,
            attempts = attempts + 1, started_at = :now
        WHERE seq = (SELECT seq FROM job
                     WHERE status = :queued AND (pinned_to IS NULL OR pinned_to = :token)
                     ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING seq, id, name, func_path, args_json, pinned_to, status, progress, total_steps,
            result_json, error, traceback, created_at, started_at, completed_at, owner, lease_until,
            attempts, max_attempts""",
}
# PostgreSQL, one round trip for a worker's whole turn: finish a job, claim the next.
_FINISH_AND_CLAIM = """WITH done AS (
        UPDATE job SET status = :status, progress = :progress, total_steps = :total_steps,
            result_json = :result_json, error = :error, traceback = :traceback,
            completed_at = :completed_at, owner = NULL, lease_until = NULL
        WHERE id = :id AND owner = :owner AND status = :running RETURNING id),
    following AS (
        UPDATE job SET status = :running, owner = :owner, lease_until = :lease_until,
            attempts = attempts + 1, started_at = :now
        WHERE seq = (SELECT seq FROM job
                     WHERE status = :queued AND (pinned_to IS NULL OR pinned_to = :token)
                     ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING seq, id, name, func_path, args_json, pinned_to, status, progress, total_steps,
            result_json, error, traceback, created_at, started_at, completed_at, owner, lease_until,
            attempts, max_attempts)
    SELECT (SELECT count(*) FROM done), following.*
    FROM (SELECT 1) AS one LEFT JOIN following ON true"""
_EXPIRED = {
    "sqlite": "SELECT id, attempts, max_attempts FROM job WHERE status = :running AND lease_until < :now",
    "postgresql": """SELECT id, attempts, max_attempts FROM job WHERE status = :running AND lease_until < :now
        FOR UPDATE SKIP LOCKED""",
}
_SELECT_ONE = """SELECT seq, id, name, func_path, args_json, pinned_to, status, progress, total_steps,
        result_json, error, traceback, created_at, started_at, completed_at, owner, lease_until,
        attempts, max_attempts
    FROM job WHERE id = :id"""
_MESSAGES_OF_ONE = "SELECT job_id, timestamp, message FROM job_message WHERE job_id = :id ORDER BY seq"
_SELECT_NEWEST = """SELECT seq, id, name, func_path, args_json, pinned_to, status, progress, total_steps,
        result_json, error, traceback, created_at, started_at, completed_at, owner, lease_until,
        attempts, max_attempts
    FROM job ORDER BY seq DESC LIMIT :limit"""
_MESSAGES_OF_NEWEST = """SELECT job_id, timestamp, message FROM job_message
    WHERE job_id IN (SELECT id FROM job ORDER BY seq DESC LIMIT :limit) ORDER BY seq"""
_DELETE_OLD_MESSAGES = """DELETE FROM job_message WHERE job_id IN (
    SELECT id FROM job WHERE status IN (:completed, :failed) AND completed_at < :cutoff)"""
_DELETE_OLD_JOBS = "DELETE FROM job WHERE status IN (:completed, :failed) AND completed_at < :cutoff"
_DATETIMES = {"created_at", "started_at", "completed_at", "lease_until"}


class JobStore:
    """All reads and writes of the job tables.

    The queue's statements run on pooled DB-API connections with plain SQL:
    a job passes through four or five of them, and SQLAlchemy's statement
    layer would cost several times the database's own work (see
    bench/queue_throughput.py). The tables themselves are SQLAlchemy's.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_postgresql = engine.dialect.name == "postgresql"
        self._sql_cache: dict[str, str] = {}
        self._writer = threading.Lock()  # SQLite: one writer of this process at a time
        self._local = threading.local()

    # -- plumbing ---------------------------------------------------------------

    def _sql(self, statement: str) -> str:
        """Write statements with ``:name`` parameters; psycopg wants ``%(name)s``."""
        if not self.is_postgresql:
            return statement
        cached = self._sql_cache.get(statement)
        if cached is None:
            cached = self._sql_cache[statement] = _NAMED_PARAM.sub(r"%(\1)s", statement)
        return cached

    def _time(self, moment: Optional[datetime]) -> Any:
        # SQLite keeps datetimes as text; this is the format SQLAlchemy uses too.
        if moment is None or self.is_postgresql:
            return moment
        return moment.isoformat(sep=" ", timespec="microseconds")

    def _sqlite_connection(self) -> sqlite3.Connection:
        """This thread's own connection: no pool check-out per statement on SQLite."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.engine.url.database, timeout=30, check_same_thread=False)
            _prepare_sqlite(connection)
            self._local.connection = connection
        return connection

    @contextmanager
    def _transaction(self, write: bool = True, single: bool = False) -> Iterator[Any]:
        """A cursor in one transaction.

        SQLite (``write``): the write lock is taken up front (BEGIN IMMEDIATE),
        and threads of this process queue for it on a Python lock, woken at
        once, instead of in SQLite's busy handler, which sleeps in steps of
        milliseconds. PostgreSQL (``single``): one statement runs in autocommit
        mode, saving the round trip of a COMMIT.
        """
        if not self.is_postgresql:
            connection = self._sqlite_connection()
            with self._writer if write else nullcontext():
                cursor = connection.cursor()
                cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield cursor
                    connection.commit()
                except BaseException:
                    connection.rollback()
                    raise
            return
        connection = self.engine.raw_connection()  # in autocommit mode: see make_engine
        cursor = connection.cursor()
        try:
            if not single:
                cursor.execute("BEGIN")
            yield cursor
            if not single:
                cursor.execute("COMMIT")
        except BaseException:
            if not single and not _is_broken(connection.driver_connection):
                cursor.execute("ROLLBACK")
            raise
        finally:
            if _is_broken(connection.driver_connection):
                connection.invalidate()  # the server went away: never hand this one out again
            else:
                connection.close()  # back to the pool

    def _execute(self, cursor: Any, statement: str, params: Optional[dict] = None) -> Any:
        return cursor.execute(self._sql(statement), params or {})

    def _record(self, row: Any) -> JobRecord:
        data = dict(zip(_RECORD_COLUMNS, row))
        for name in _DATETIMES:
            if isinstance(data[name], str):
                data[name] = datetime.fromisoformat(data[name])
        result_json = data.pop("result_json")
        return JobRecord(result=json.loads(result_json) if result_json else None, **data)

    def _add_messages(self, cursor: Any, job_id: str, messages: Iterable[tuple[datetime, str]]) -> None:
        rows = [{"job_id": job_id, "timestamp": self._time(ts), "message": text} for ts, text in messages]
        if rows:
            cursor.executemany(
                self._sql("INSERT INTO job_message (job_id, timestamp, message) VALUES (:job_id, :timestamp, :message)"),
                rows,
            )

    # -- writes by the enqueuer ---------------------------------------------------

    def insert(self, record: JobRecord) -> None:
        params = {
            "id": record.id, "name": record.name, "func_path": record.func_path,
            "args_json": record.args_json, "pinned_to": record.pinned_to, "queued": QUEUED,
            "created_at": self._time(record.created_at), "max_attempts": record.max_attempts,
        }
        if self.is_postgresql:
            params["channel"] = NOTIFY_CHANNEL
        with self._transaction(single=True) as cursor:
            self._execute(cursor, _INSERT_AND_NOTIFY if self.is_postgresql else _INSERT, params)

    # -- worker side: claim, heartbeat, finish ----------------------------------

    def claim(self, owner: str, process_token: str, lease_seconds: float) -> Optional[JobRecord]:
        """Atomically take the oldest runnable queued job, or return None."""
        with self._transaction(single=True) as cursor:
            return self._claim_in(cursor, owner, process_token, lease_seconds)

    def _claim_in(self, cursor: Any, owner: str, process_token: str, lease_seconds: float) -> Optional[JobRecord]:
        now = utcnow_naive()
        params = {"running": RUNNING, "queued": QUEUED, "owner": owner, "token": process_token,
                  "now": self._time(now), "lease_until": self._time(now + timedelta(seconds=lease_seconds))}
        row = self._execute(cursor, _CLAIM[self.engine.dialect.name], params).fetchone()
        return self._record(row) if row is not None else None

    def heartbeat(self, job_id: str, owner: str, lease_seconds: float, progress: int, total_steps: int,
                  messages: list[tuple[datetime, str]]) -> bool:
        """Write progress and new messages and renew the lease; False if the lease was lost."""
        params = {"id": job_id, "owner": owner, "running": RUNNING, "progress": progress,
                  "total_steps": total_steps,
                  "lease_until": self._time(utcnow_naive() + timedelta(seconds=lease_seconds))}
        with self._transaction(single=not messages) as cursor:
            updated = self._execute(cursor, """UPDATE job SET progress = :progress,
                    total_steps = :total_steps, lease_until = :lease_until
                WHERE id = :id AND owner = :owner AND status = :running""", params).rowcount
            if updated:
                self._add_messages(cursor, job_id, messages)
        return updated == 1

    def finish(self, job_id: str, owner: str, *, status: str, progress: int, total_steps: int,
               result: Any, error: Optional[str], traceback: Optional[str],
               completed_at: datetime, messages: list[tuple[datetime, str]]) -> bool:
        """Write a final state; False (and nothing written) if the lease was lost."""
        with self._transaction(single=not messages) as cursor:
            return self._finish_in(cursor, job_id, owner, status=status, progress=progress,
                                   total_steps=total_steps, result=result, error=error,
                                   traceback=traceback, completed_at=completed_at, messages=messages)

    def finish_and_claim(self, job_id: str, owner: str, token: str, lease_seconds: float,
                         **final: Any) -> tuple[bool, Optional[JobRecord]]:
        """Finish a job and claim the next; one transaction on SQLite, where that saves most."""
        if self.is_postgresql:
            if final["messages"]:
                return self.finish(job_id, owner, **final), self.claim(owner, token, lease_seconds)
            return self._finish_and_claim_postgresql(job_id, owner, token, lease_seconds, final)
        with self._transaction() as cursor:
            finished = self._finish_in(cursor, job_id, owner, **final)
            return finished, self._claim_in(cursor, owner, token, lease_seconds)

    def _finish_and_claim_postgresql(self, job_id: str, owner: str, token: str, lease_seconds: float,
                                     final: dict[str, Any]) -> tuple[bool, Optional[JobRecord]]:
        """Both in one statement, one round trip: the worker's whole cost per no-message job."""
        now = utcnow_naive()
        params = {"id": job_id, "owner": owner, "token": token, "running": RUNNING, "queued": QUEUED,
                  "status": final["status"], "progress": final["progress"],
                  "total_steps": final["total_steps"], "result_json": _to_json(final["result"]),
                  "error": final["error"], "traceback": final["traceback"],
                  "completed_at": final["completed_at"], "now": now,
                  "lease_until": now + timedelta(seconds=lease_seconds)}
        with self._transaction(single=True) as cursor:
            row = self._execute(cursor, _FINISH_AND_CLAIM, params).fetchone()
        finished, claimed = row[0] == 1, row[1:]
        return finished, (self._record(claimed) if claimed[0] is not None else None)

    def _finish_in(self, cursor: Any, job_id: str, owner: str, *, status: str, progress: int,
                   total_steps: int, result: Any, error: Optional[str], traceback: Optional[str],
                   completed_at: datetime, messages: list[tuple[datetime, str]]) -> bool:
        params = {"id": job_id, "owner": owner, "running": RUNNING, "status": status,
                  "progress": progress, "total_steps": total_steps, "result_json": _to_json(result),
                  "error": error, "traceback": traceback, "completed_at": self._time(completed_at)}
        updated = self._execute(cursor, """UPDATE job SET status = :status, progress = :progress,
                total_steps = :total_steps, result_json = :result_json, error = :error,
                traceback = :traceback, completed_at = :completed_at, owner = NULL, lease_until = NULL
            WHERE id = :id AND owner = :owner AND status = :running""", params).rowcount
        if updated:
            self._add_messages(cursor, job_id, messages)
        return updated == 1

    def give_back(self, job_id: str, owner: str) -> None:
        """Return a claimed job this worker will not run (it is stopping) to the queue."""
        with self._transaction(single=True) as cursor:
            self._execute(cursor, """UPDATE job SET status = :queued, owner = NULL, lease_until = NULL,
                    attempts = attempts - 1 WHERE id = :id AND owner = :owner AND status = :running""",
                          {"queued": QUEUED, "running": RUNNING, "id": job_id, "owner": owner})

    def sweep(self) -> tuple[int, int]:
        """Requeue running jobs whose lease expired, or fail them when out of attempts."""
        now = utcnow_naive()
        params = {"running": RUNNING, "now": self._time(now)}
        requeued = failed = 0
        with self._transaction() as cursor:
            expired = self._execute(cursor, _EXPIRED[self.engine.dialect.name], params).fetchall()
            for job_id, attempts, max_attempts in expired:
                if attempts < max_attempts:
                    self._execute(cursor, """UPDATE job SET status = :queued, owner = NULL,
                        lease_until = NULL WHERE id = :id""", {"queued": QUEUED, "id": job_id})
                    note = f"{WORKER_LOST}; neu eingereiht (Versuch {attempts + 1} von {max_attempts})"
                    requeued += 1
                else:
                    error = f"{WORKER_LOST} (nach {attempts} Versuchen)"
                    self._execute(cursor, """UPDATE job SET status = :failed, owner = NULL,
                        lease_until = NULL, completed_at = :now, error = :error WHERE id = :id""",
                        {"failed": FAILED, "now": self._time(now), "error": error, "id": job_id})
                    note = f"Fehler: {error}"
                    failed += 1
                self._add_messages(cursor, job_id, [(now, note)])
        if requeued or failed:
            log.warning("job sweep: %d requeued, %d failed after their worker was lost", requeued, failed)
        return requeued, failed

    # -- reads ----------------------------------------------------------------

    def _attach_messages(self, rows: list[Any], records: list[JobRecord]) -> list[JobRecord]:
        by_id = {record.id: record for record in records}
        for job_id, timestamp, message in rows:
            if job_id in by_id:
                if isinstance(timestamp, str):
                    timestamp = datetime.fromisoformat(timestamp)
                by_id[job_id].messages.append((timestamp, message))
        return records

    def get(self, job_id: str) -> Optional[JobRecord]:
        with self._transaction(write=False) as cursor:
            row = self._execute(cursor, _SELECT_ONE, {"id": job_id}).fetchone()
            if row is None:
                return None
            messages = self._execute(cursor, _MESSAGES_OF_ONE, {"id": job_id}).fetchall()
        return self._attach_messages(messages, [self._record(row)])[0]

    def newest(self, limit: Optional[int] = None) -> list[JobRecord]:
        """The newest jobs with their messages, all of them without ``limit``."""
        params = {"limit": limit if limit is not None else 2**62}
        with self._transaction(write=False) as cursor:
            rows = self._execute(cursor, _SELECT_NEWEST, params).fetchall()
            messages = self._execute(cursor, _MESSAGES_OF_NEWEST, params).fetchall()
        return self._attach_messages(messages, [self._record(row) for row in rows])

    def count(self, status: str) -> int:
        with self._transaction(write=False, single=True) as cursor:
            return self._execute(cursor, "SELECT count(*) FROM job WHERE status = :status",
                                 {"status": status}).fetchone()[0]

    # -- housekeeping -----------------------------------------------------------

    def update_fields(self, job_id: str, values: dict[str, Any]) -> None:
        """Set fields of a job directly (an operator's or a test's override)."""
        values = dict(values)
        if "result" in values:
            values["result_json"] = _to_json(values.pop("result"))
        unknown = set(values) - set(_RECORD_COLUMNS)
        if unknown:
            raise ValueError(f"unknown job fields: {sorted(unknown)}")
        with self._writer if not self.is_postgresql else nullcontext(), self.engine.begin() as conn:
            conn.execute(job_table.update().where(job_table.c.id == job_id).values(**values))

    def add_message(self, job_id: str, timestamp: datetime, message: str) -> None:
        with self._transaction() as cursor:
            self._add_messages(cursor, job_id, [(timestamp, message)])

    def delete_finished_before(self, cutoff: datetime) -> int:
        """Delete finished jobs completed before ``cutoff`` and their messages."""
        params = {"completed": COMPLETED, "failed": FAILED, "cutoff": self._time(cutoff)}
        with self._transaction() as cursor:
            self._execute(cursor, _DELETE_OLD_MESSAGES, params)
            return self._execute(cursor, _DELETE_OLD_JOBS, params).rowcount
