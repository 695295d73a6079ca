"""Job functions for the multi-process tests: importable by ``flask worker`` processes.

Tests start workers with ``PYTHONPATH`` pointing here, so these run in another
process than the one that enqueued them.
"""

from __future__ import annotations

import os
import time

import sqlalchemy as sa

from job_queue import Job
from models import db

RUN_LOG = "job_run_log"


def create_run_log(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {RUN_LOG}"))
        conn.execute(sa.text(f"CREATE TABLE {RUN_LOG} (job_id VARCHAR(36) NOT NULL, pid INTEGER NOT NULL)"))


def runs(engine: sa.Engine) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text(f"SELECT job_id, pid FROM {RUN_LOG}"))]


def record_run(job: Job) -> str:
    """Append this job's id to the run log: counting rows finds duplicates and misses."""
    db.session.execute(sa.text(f"INSERT INTO {RUN_LOG} (job_id, pid) VALUES (:job_id, :pid)"),
                       {"job_id": job.id, "pid": os.getpid()})
    db.session.commit()
    return job.id


def slow_job(job: Job, seconds: float, steps: int = 20) -> int:
    """Make steady progress for ``seconds``; its pid shows which process ran it."""
    job.add_message(f"Langsamer Job in Prozess {os.getpid()}")
    for step in range(1, steps + 1):
        time.sleep(seconds / steps)
        job.set_progress(step, steps)
    return os.getpid()


def longer_each_attempt(job: Job, seconds: float) -> int:
    """Work ``seconds`` times the attempt number, reporting progress: a second run outlasts the first."""
    return slow_job(job, seconds * job.attempts, steps=int(20 * job.attempts))


def counted_run(job: Job, log_path: str, seconds: float = 0.0, steps: int = 10) -> int:
    """Write this job's id to ``log_path`` as it starts, then work for ``seconds``.

    The job counts its own executions in a file, outside the database under
    test: a duplicate or a miss shows there whatever the queue believes.
    """
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"{job.id} {os.getpid()} {time.time():.6f}\n")
    for step in range(1, steps + 1):
        time.sleep(seconds / steps)
        job.set_progress(step, steps)
    return os.getpid()


def executions(log_path: str) -> list[str]:
    """The job ids ``counted_run`` wrote, one per execution."""
    try:
        with open(log_path, encoding="utf-8") as log:
            return [line.split()[0] for line in log if line.strip()]
    except FileNotFoundError:
        return []


class Flaky(Exception):
    """A failure that says it is worth another attempt (as a network error does)."""

    retryable = True


def fail_retryably(job: Job, log_path: str) -> None:
    """Log this attempt's start, then fail in a way the retry rule accepts."""
    counted_run(job, log_path)
    raise Flaky(f"Verbindung abgelehnt (Versuch {job.attempts})")


def fail_for_good(job: Job, log_path: str) -> None:
    """Log this attempt's start, then fail as a changed format does: no retry."""
    counted_run(job, log_path)
    raise ValueError("unbekanntes Format")


def execution_times(log_path: str) -> list[float]:
    """When each execution ``counted_run`` logged started (file modification order is not enough)."""
    with open(log_path, encoding="utf-8") as log:
        return [float(line.split()[2]) for line in log if line.strip()]


# -- jobs for process isolation (jobs/supervisor.py) ------------------------------------------

def spin(job: Job) -> None:
    """Keep a core busy for ever, never reporting: only a stop from outside ends it."""
    job.add_message(f"Drehe Runden in Prozess {os.getpid()}")
    while True:
        pass


def read_dripping(job: Job, url: str) -> int:
    """Fetch ``url`` through the scrapers' fetcher: a dripping source blocks it in a socket read."""
    from flask import current_app

    from scrapers.fetcher import Fetcher, FetchSettings

    job.add_message(f"Lese tröpfelnde Quelle in Prozess {os.getpid()}")
    with Fetcher(FetchSettings.from_config(current_app.config)) as fetcher:
        return len(fetcher.get(url))


def crash(job: Job) -> None:
    """Die of SIGSEGV, as a crash in a C extension would: no exception, no cleanup."""
    import signal

    job.add_message(f"Stürze ab in Prozess {os.getpid()}")
    os.kill(os.getpid(), signal.SIGSEGV)


def config_and_niceness(job: Job, key: str) -> list:
    """What the function sees of its app's configuration, and the niceness of the process it runs in."""
    from flask import current_app

    return [current_app.config[key], os.getpriority(os.PRIO_PROCESS, 0), os.getpid()]


def example_pausing(job: Job, where: str, marker: str, seconds: float = 5.0) -> object:
    """The Example scraper, pausing ``seconds`` at one moment of its store, after writing ``marker``.

    ``where``: "before" the store begins, "commit" in the store's commit (its
    data not yet committed) or "committed" right after it. The marker holds
    this process's id, so a test can cancel or kill it there.
    """
    import sqlalchemy as sa

    from models import RUN_SUCCESS, ScrapeRun
    from scrapers.example import scrape_example

    def pause() -> None:
        with open(marker, "w", encoding="utf-8") as file:
            file.write(str(os.getpid()))
        time.sleep(seconds)

    def storing(session) -> bool:
        return any(isinstance(obj, ScrapeRun) and obj.outcome == RUN_SUCCESS for obj in session.identity_map.values())

    class Pausing:
        """The job handle, pausing before the store's first message."""

        def __getattr__(self, name: str) -> object:
            return getattr(job, name)

        def add_message(self, msg: str) -> None:
            if where == "before" and msg.startswith("Registriere"):
                pause()
            job.add_message(msg)

    if where == "commit":
        sa.event.listen(db.session, "before_commit", lambda session: storing(session) and pause())
    elif where == "committed":
        sa.event.listen(db.session, "after_commit", lambda session: storing(session) and pause())
    return scrape_example(Pausing())


def thread_niceness(job: Job) -> int:
    """The niceness of the worker thread running this job (Linux: per thread)."""
    import threading

    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
