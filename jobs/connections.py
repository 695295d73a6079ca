"""How the job store reaches its database: the engine and one cursor per transaction.

The queue's statements run on DB-API connections, without SQLAlchemy's
statement layer (see ``jobs/sql.py``). SQLite: connections kept on a free
list and lent for one transaction at a time, and writers of this process queue
on a Python lock before ``BEGIN IMMEDIATE``.
PostgreSQL: pooled connections in autocommit mode, so a one-statement
transaction costs one round trip.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager, nullcontext
from typing import Any, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from database import SQLITE_BUSY_TIMEOUT_SECONDS, configure_sqlite_engine, prepare_sqlite

# PostgreSQL pool: every worker thread, the housekeeper and web threads may hold one.
PG_POOL_SIZE, PG_MAX_OVERFLOW = 10, 20
# SQLite connections kept open for the next transaction (more are opened when needed, then closed).
SQLITE_IDLE_CONNECTIONS = 8


def make_engine(url: str, durable_commit: bool = False) -> Engine:
    """An engine for the queue: on SQLite, WAL, a busy timeout and BEGIN IMMEDIATE.

    On PostgreSQL, job writes do not wait for the WAL to reach the disk unless
    ``durable_commit``: a crash of the database server (not of the app) may
    then lose the last fraction of a second of job updates, in exchange for a
    queue several times faster. Shop data is written durably either way.
    """
    if not url.startswith("sqlite"):
        # Each transaction commits or rolls back itself: no reset round trip on
        # check-in. A broken connection fails one call and is discarded (transaction()).
        engine = sa.create_engine(url, pool_size=PG_POOL_SIZE, max_overflow=PG_MAX_OVERFLOW,
                                  pool_reset_on_return=None)

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Autocommit: one-statement work costs one round trip; longer work
            # is bracketed in BEGIN ... COMMIT by transaction().
            dbapi_connection.autocommit = True
            if not durable_commit:
                dbapi_connection.execute("SET synchronous_commit TO OFF")

        return engine
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
                                                 "check_same_thread": False},
                              pool_reset_on_return=None)
    configure_sqlite_engine(engine)
    return engine


def _is_broken(connection: Any) -> bool:
    return bool(connection.closed or getattr(connection, "broken", False))


class Connections:
    """Hands out cursors inside transactions on the job store's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_postgresql = engine.dialect.name == "postgresql"
        self.writer = threading.Lock()  # SQLite: one writer of this process at a time
        self._idle: list[sqlite3.Connection] = []  # SQLite connections not lent out
        self._idle_lock = threading.Lock()

    @contextmanager
    def _sqlite_connection(self) -> Iterator[sqlite3.Connection]:
        """A connection lent for one transaction.

        Not one per thread: the development server and gunicorn's gthread
        worker may answer each request in a new thread, and opening and
        preparing a connection per request cost more than the request's own
        statements.
        """
        with self._idle_lock:
            connection = self._idle.pop() if self._idle else None
        if connection is None:
            connection = sqlite3.connect(self.engine.url.database, timeout=SQLITE_BUSY_TIMEOUT_SECONDS,
                                         check_same_thread=False)
            prepare_sqlite(connection)
        try:
            yield connection
        except BaseException:
            if connection.in_transaction:  # a failure that left it unusable: do not lend it again
                connection.close()
                raise
            self._give_back(connection)
            raise
        self._give_back(connection)

    def _give_back(self, connection: sqlite3.Connection) -> None:
        with self._idle_lock:
            if len(self._idle) < SQLITE_IDLE_CONNECTIONS:
                self._idle.append(connection)
                return
        connection.close()

    def outside_transaction(self, statement: str) -> None:
        """SQLite: run a statement that must not run inside a transaction (a checkpoint)."""
        with self.writer, self._sqlite_connection() as connection:
            connection.execute(statement)

    @contextmanager
    def transaction(self, write: bool = True, single: bool = False) -> Iterator[Any]:
        """A cursor in one transaction.

        SQLite (``write``): the write lock is taken up front (BEGIN IMMEDIATE),
        and threads of this process queue for it on a Python lock, woken at
        once, instead of in SQLite's busy handler, which sleeps in steps of
        milliseconds. PostgreSQL (``single``): one statement runs in autocommit
        mode, saving the round trip of a COMMIT.
        """
        if not self.is_postgresql:
            with self.writer if write else nullcontext(), self._sqlite_connection() as connection:
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
                # The server went away: not this one nor the idle others (they went with it, and
                # each would fail one later call, a new "outage" in the log each time).
                connection.invalidate()
                self.engine.dispose(close=False)
            else:
                connection.close()  # back to the pool
