"""Wake this process's idle workers when another process queues a job: PostgreSQL's NOTIFY, SQLite's change counter.

PostgreSQL tells every worker process at once (LISTEN/NOTIFY, ``listen_postgresql``).
SQLite has no such channel: a separate ``flask worker`` saw a job queued by the
web process only at its next poll (``JOBS_POLL_INTERVAL``, 1 s), so a click on
"Run" showed "queued" for up to a second. Instead one thread per process asks
SQLite every ``JOBS_SQLITE_WATCH_INTERVAL`` seconds whether another connection
has committed since (``PRAGMA data_version``: read from the shared memory of the
write-ahead log, no disk access), and when one has and a job is queued, wakes
the workers, who claim it as ever. The poll stays as the fallback.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Callable

from database import SQLITE_BUSY_TIMEOUT_SECONDS
from jobs.sql import NOTIFY_CHANNEL
from jobs.status import JobStatus

log = logging.getLogger(__name__)

_ANY_QUEUED = "SELECT EXISTS (SELECT 1 FROM job WHERE status = ?)"


def watch_sqlite(path: str, interval: float, stopping_after: Callable[[float], bool],
                 wake: Callable[[], None]) -> None:
    """Until ``stopping_after(interval)`` says stop: wake the workers when a commit elsewhere queued a job."""
    connection = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_SECONDS, check_same_thread=False,
                                 isolation_level=None)
    try:
        seen = None
        while not stopping_after(interval):
            try:
                version = connection.execute("PRAGMA data_version").fetchone()[0]
                if version != seen:
                    seen = version
                    if connection.execute(_ANY_QUEUED, (JobStatus.QUEUED.value,)).fetchone()[0]:
                        wake()
            except sqlite3.Error as error:  # locked or away for a moment: the workers' poll still runs
                log.debug("job watcher: %s", error)
    finally:
        connection.close()


def listen_postgresql(url: str, stopping_after: Callable[[float], bool], wake: Callable[[], None],
                      connected: Callable[[], None], lost: Callable[[Exception], None],
                      retry_after: float) -> None:
    """Wake the workers on every NOTIFY from any process; reconnect after ``retry_after`` seconds when cut off.

    ``connected`` and ``lost`` tell the app's outage log: one line when the
    database goes, one when it is back, not a traceback per attempt.
    """
    import psycopg

    while True:
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                connected()
                while not stopping_after(0):
                    for _ in conn.notifies(timeout=1.0, stop_after=1):
                        wake()
        except psycopg.Error as error:
            lost(error)
            if stopping_after(retry_after):
                return
            continue
        return
