"""Engine setup shared by the ORM (``models.py``) and the job store (``jobs/``).

Both talk to the same database: on SQLite several threads and processes write
one file, so every connection is prepared the same way (WAL, a busy timeout,
BEGIN issued by us), and there is one clock for timestamps: naive UTC, because
SQLite drops time zones and mixing aware and naive values across the two
supported databases breaks comparisons.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig
    from flask import Flask

# How long a writer waits for SQLite's write lock before "database is locked".
SQLITE_BUSY_TIMEOUT_SECONDS = 30
# After a checkpoint SQLite cuts its write-ahead log back to this size, so the file stays small.
SQLITE_WAL_SIZE_LIMIT = 1024 * 1024
# PostgreSQL advisory lock key held while one process creates or upgrades the schema.
SCHEMA_LOCK_KEY = 727274


def utcnow() -> datetime:
    """Return the current UTC time without tzinfo, as stored in the database."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def storable_text(text: str) -> str:
    """Show each NUL in ``text`` as ``\\x00``, so that the text can be stored.

    PostgreSQL refuses NUL in text (SQLite keeps it, invisibly), and a
    refused write must never be what keeps a job from ending.
    """
    return text.replace("\x00", "\\x00")


def is_sqlite(engine_or_connection: Engine | Connection) -> bool:
    return engine_or_connection.dialect.name == "sqlite"


def prepare_sqlite(connection: sqlite3.Connection) -> None:
    """WAL, fsync only at checkpoints, wait for the write lock; BEGIN is ours to issue."""
    connection.isolation_level = None
    # First: switching a new file to WAL needs a lock that another process starting
    # at the same moment may hold; without a busy timeout that fails at once.
    connection.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_SECONDS * 1000):d}")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(f"PRAGMA journal_size_limit={SQLITE_WAL_SIZE_LIMIT:d}")


def configure_sqlite_engine(engine: Engine) -> None:
    """Let several threads and processes write one SQLite file without "database is locked".

    WAL lets readers go on while one writer writes, and the busy timeout makes
    a writer wait for the lock instead of failing. A transaction that reads
    first and writes later must take the write lock up front (``BEGIN
    IMMEDIATE``): a deferred one fails at once when another connection
    committed in between. The job store's own transactions always do; an ORM
    session asks for it with the ``sqlite_immediate`` execution option
    (``models.begin_write``).
    """

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        prepare_sqlite(dbapi_connection)

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def schema_lock(engine: Engine, timeout: float) -> Iterator[Connection]:
    """Yield a connection holding the database's schema lock, waiting at most ``timeout`` seconds.

    Several processes starting at once (a web process and workers under one
    process manager) must not create or upgrade tables side by side: the loser
    of such a race fails with "table already exists" or "database is locked".
    SQLite: the write lock itself (``BEGIN IMMEDIATE``), so DDL and the check
    before it are one transaction. PostgreSQL: a session advisory lock, taken
    with a lock timeout. Work done on the yielded connection is committed when
    the block ends without an error.
    """
    with engine.connect() as conn:
        if is_sqlite(conn):
            # On the driver's connection: a statement through SQLAlchemy would begin a transaction.
            driver = conn.connection.driver_connection
            driver.execute(f"PRAGMA busy_timeout={int(timeout * 1000):d}")
            try:
                with conn.execution_options(sqlite_immediate=True).begin():
                    yield conn
            finally:
                driver.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_SECONDS * 1000):d}")
            return
        if conn.dialect.name == "postgresql":
            with conn.begin():
                conn.execute(sa.text("SELECT set_config('lock_timeout', :ms, false)"),
                             {"ms": f"{int(timeout * 1000)}ms"})
                conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            try:
                with conn.begin():
                    yield conn
            finally:
                with conn.begin():
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": SCHEMA_LOCK_KEY})
                    conn.execute(sa.text("SELECT set_config('lock_timeout', '0', false)"))
            return
        with conn.begin():
            yield conn


def create_missing_tables(engine: Engine, metadata: sa.MetaData, timeout: float = 30.0) -> None:
    """Create the tables of ``metadata`` that do not exist yet, under the schema lock."""
    with schema_lock(engine, timeout) as conn:
        metadata.create_all(conn)


# -- the schema at start-up ------------------------------------------------------------

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")
# The schema of the releases before migrations existed (tables from create_all).
BASELINE_REVISION = "0001"
UPGRADE_COMMAND = "flask --app app db upgrade"


class SchemaError(RuntimeError):
    """The database schema cannot be brought up to date here; the message says what to do."""


def _alembic_config(connection: Optional[Connection] = None) -> "AlembicConfig":
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None, f"no migrations in {MIGRATIONS_DIR}"
    return head


def current_revision(conn: Connection) -> Optional[str]:
    from alembic.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def upgrade_schema(engine: Engine, table_names: set[str], *, auto_upgrade: bool,
                   lock_timeout: float) -> Optional[str]:
    """Bring the schema to the newest migration; return the revision reached, None if it was current.

    Needs an app context (the migrations read the app's models). Runs under
    the schema lock, so of several processes starting at once one upgrades and
    the others wait, then find the schema current. An empty database is
    created; a database of a release before migrations (our tables, no
    revision) is recognised as the baseline. An existing schema that is behind
    is upgraded only with ``auto_upgrade``; else ``SchemaError`` names the
    command to run.
    """
    from alembic import command

    head = head_revision()
    try:
        with schema_lock(engine, lock_timeout) as conn:
            current = current_revision(conn)
            if current == head:
                return None
            existing = set(sa.inspect(conn).get_table_names()) & table_names
            if existing and not auto_upgrade:
                raise SchemaError(
                    f"Das Datenbankschema ist veraltet (Revision {current or 'vor den Migrationen'}, "
                    f"benötigt {head}). Bitte zuerst ausführen: {UPGRADE_COMMAND}"
                )
            config = _alembic_config(conn)
            if existing and current is None:
                command.stamp(config, BASELINE_REVISION)
            command.upgrade(config, "head")
    except sa.exc.OperationalError as exc:
        raise SchemaError(_connection_problem(engine, exc, lock_timeout)) from exc
    return head


def is_lock_conflict(error: BaseException) -> bool:
    """Whether ``error`` (or the database error behind a ``SchemaError``) says a lock was held.

    SQLite: "database is locked"; PostgreSQL: the schema lock's ``lock_timeout``.
    """
    cause = error.__cause__ if isinstance(error, SchemaError) else error
    if not isinstance(cause, sa.exc.OperationalError):
        return False
    detail = str(cause.orig if cause.orig is not None else cause).lower()
    return "locked" in detail or "lock timeout" in detail


def _connection_problem(engine: Engine, exc: sa.exc.OperationalError, lock_timeout: float) -> str:
    detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    where = engine.url.render_as_string(hide_password=True)
    if is_lock_conflict(exc):
        return (f"Datenbank {where}: die Schema-Sperre war nach {lock_timeout:g} s noch belegt "
                f"(ein anderer Prozess migriert?): {detail}")
    return f"Datenbank {where} nicht erreichbar oder nicht beschreibbar: {detail}"


# -- when the database is away ------------------------------------------------------------

# What SQLite says when its file cannot be used right now (as opposed to a faulty statement).
_SQLITE_UNAVAILABLE = ("database is locked", "database table is locked", "unable to open database",
                       "disk i/o error", "readonly database", "database or disk is full")


def is_database_unavailable(error: BaseException) -> bool:
    """Tell an unreachable or locked database from a bug in a statement.

    The ORM wraps driver errors in SQLAlchemy's; the job store runs on DB-API
    connections and sees the drivers' own. A statement the database rejects
    (no such table, bad syntax) is a bug and is never retried as an outage.
    """
    if isinstance(error, sa.exc.DBAPIError):
        if error.connection_invalidated:
            return True
        return error.orig is not None and is_database_unavailable(error.orig)
    if isinstance(error, sa.exc.InterfaceError):
        return True
    if isinstance(error, (sqlite3.OperationalError, sqlite3.InterfaceError)):
        return any(text in str(error).lower() for text in _SQLITE_UNAVAILABLE)
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a requirement
        return False
    # OperationalError: the server went away, refused, or shut down; InterfaceError: the connection is closed.
    return isinstance(error, (psycopg.OperationalError, psycopg.InterfaceError))


class OutageLog:
    """Log an outage of the database as two lines: when it starts and when it ends.

    Every request or worker that meets the outage reports it here; only the
    first report logs (with the cause, no traceback), and the first success
    afterwards logs the end with the outage's duration.
    """

    def __init__(self, logger: "logging.Logger", what: str) -> None:
        self._logger, self._what = logger, what
        self._lock = threading.Lock()
        self._since: Optional[float] = None

    @property
    def is_down(self) -> bool:
        return self._since is not None

    def failed(self, error: BaseException) -> None:
        with self._lock:
            if self._since is not None:
                return
            self._since = time.monotonic()
        cause = str(getattr(error, "orig", None) or error).strip().splitlines()
        self._logger.warning("%s: Datenbank nicht erreichbar (%s)", self._what, cause[0] if cause else type(error).__name__)

    def recovered(self) -> None:
        if self._since is None:
            return
        with self._lock:
            if self._since is None:
                return
            duration, self._since = time.monotonic() - self._since, None
        self._logger.warning("%s: Datenbank wieder erreichbar nach %.1f s", self._what, duration)


OUTAGE_LOG_KEY = "database_outage"


def outage_log(app: "Flask") -> OutageLog:
    """The one outage log of ``app``: web requests and job workers report to it alike."""
    log = app.extensions.get(OUTAGE_LOG_KEY)
    if log is None:
        log = app.extensions.setdefault(OUTAGE_LOG_KEY, OutageLog(logging.getLogger("database"), app.name))
    return log
