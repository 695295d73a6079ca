"""Job functions the throughput bench enqueues; importable by worker processes."""

from __future__ import annotations

import os
import time


def noop(job) -> None:
    """Do nothing: the bench measures the queue, not the work."""
    return None


def crash_worker(job) -> None:
    """Kill the worker process running it: shows that a benchmark notices a dead worker."""
    os._exit(3)


def counted(job, log_path: str, seconds: float = 0.05) -> None:
    """Log this execution's start and end to a file: the job counts its own runs, not the queue."""
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"start {job.id} {os.getpid()}\n")
    time.sleep(seconds)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"end {job.id} {os.getpid()}\n")


def first_line(job) -> None:
    """Say one line at once: the time from the claim to it is a child's start."""
    job.add_message("erste Zeile")


def spin(job) -> None:
    """Keep a core busy and never report: only a stop from outside ends it."""
    job.add_message("drehe Runden")
    while True:
        pass


def read_dripping(job, url: str) -> int:
    """Fetch ``url`` with the scrapers' fetcher: a source sending a byte a second blocks it in a read."""
    from flask import current_app

    from scrapers.fetcher import Fetcher, FetchSettings

    job.add_message("lese")
    with Fetcher(FetchSettings.from_config(current_app.config)) as fetcher:
        return len(fetcher.get(url))
