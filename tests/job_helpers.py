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


# -- steps for the parse pool (jobs/cpu_pool.py): importable, plain data in and out ----------

def process_id() -> int:
    return os.getpid()


def die_at_once() -> None:
    """Crash the pool process the way a segfault or the OOM killer would: no cleanup, no exception."""
    os._exit(3)


def sleep_then_return(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def offload_job(job: Job, step: str, *args) -> object:
    """Run one of this module's steps through the job's pool and return its result."""
    job.add_message("Schritt im Parser-Prozess")
    return job.wait_for(job.offload(globals()[step], *args))


def thread_niceness(job: Job) -> int:
    """The niceness the worker thread running this job has (Linux: per thread)."""
    import threading
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
