"""Clearing many old jobs on SQLite leaves room for writers, and the write-ahead log stays small."""

from __future__ import annotations

import sqlite3
import statistics
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

import database
import jobs.connections
from database import utcnow
from job_queue import job_queue

MAX_LOCK_HOLD = 0.2  # seconds: the bound for one hold of the write lock (printed, see below)
MAX_HOLD_OVER_MEDIAN = 20  # the longest hold against the median one


def _fill_finished_jobs(path: Path, count: int) -> None:
    old = (utcnow() - timedelta(days=3)).isoformat(sep=" ")
    with sqlite3.connect(path) as connection:
        connection.executemany(
            "INSERT INTO job (id, name, status, progress, total_steps, created_at, started_at, completed_at,"
            " attempts, max_attempts) VALUES (?, 'alt', 'completed', 100, 100, ?, ?, ?, 1, 3)",
            [(f"old-{index:06d}", old, old, old) for index in range(count)])
        connection.executemany("INSERT INTO job_message (job_id, timestamp, message) VALUES (?, ?, 'fertig')",
                               [(f"old-{index:06d}", old) for index in range(count)])


class LockHolds:
    """When each connection of this thread began and ended a write transaction (statement trace)."""

    def __init__(self, thread: threading.Thread) -> None:
        self.thread, self.started, self.holds = thread, None, []

    def trace(self, statement: str) -> None:
        if threading.current_thread() is not self.thread:
            return
        word = statement.split(None, 1)[0].upper() if statement.strip() else ""
        if statement.upper().startswith("BEGIN IMMEDIATE"):
            self.started = time.monotonic()
        elif word in ("COMMIT", "ROLLBACK") and self.started is not None:
            self.holds.append(time.monotonic() - self.started)
            self.started = None


def test_clearing_100000_jobs_never_holds_the_write_lock_long_while_a_scraper_writes(
    make_app, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    holds = LockHolds(threading.current_thread())
    prepare = database.prepare_sqlite

    def prepare_and_trace(connection: sqlite3.Connection) -> None:
        prepare(connection)
        connection.set_trace_callback(holds.trace)

    monkeypatch.setattr(jobs.connections, "prepare_sqlite", prepare_and_trace)
    path = tmp_path / "jobs.sqlite"
    app = make_app(DATABASE_URL=f"sqlite:///{path}")
    _fill_finished_jobs(path, 100_000)

    stop, waits, written, errors = threading.Event(), [], [0], []

    def scraper() -> None:
        """Writes as a scraper storing shops does: small transactions, one after the other."""
        connection = sqlite3.connect(path, isolation_level=None, timeout=30)
        prepare(connection)
        while not stop.is_set():
            asked = time.monotonic()
            try:
                connection.execute("BEGIN IMMEDIATE")
                waits.append(time.monotonic() - asked)
                connection.execute("INSERT INTO scrape_run (scraper, started_at, outcome, added, updated)"
                                   " VALUES ('payback', '2026-11-29 10:00:00', 'running', 0, 0)")
                connection.execute("COMMIT")
                written[0] += 1
            except sqlite3.Error as error:
                errors.append(error)
            time.sleep(0.005)
        connection.close()

    writer = threading.Thread(target=scraper)
    writer.start()
    try:
        with app.app_context():
            started = time.monotonic()
            removed = job_queue.clear_old_jobs(max_age_hours=24)
            took = time.monotonic() - started
    finally:
        stop.set()
        writer.join(30)

    assert removed == 100_000
    assert errors == []
    # Many short holds, none much longer than a typical one: a ratio, not seconds, because this
    # machine is shared and noisy (the bound, 0.2 s, is printed beside the figure below).
    # Clearing everything in one transaction would make the longest hold ~100x the median.
    assert len(holds.holds) >= 20
    assert max(holds.holds) <= MAX_HOLD_OVER_MEDIAN * statistics.median(holds.holds), sorted(holds.holds)[-5:]
    assert written[0] > 0
    print(f"cleared 100,000 jobs in {took:.1f} s in {len(holds.holds)} transactions; longest lock hold "
          f"{max(holds.holds) * 1000:.0f} ms (bound {MAX_LOCK_HOLD * 1000:.0f} ms), median "
          f"{statistics.median(holds.holds) * 1000:.1f} ms; the scraper wrote {written[0]} times meanwhile, "
          f"longest wait {max(waits) * 1000:.0f} ms")
    wal = path.with_name(path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size <= database.SQLITE_WAL_SIZE_LIMIT


def test_the_write_ahead_log_is_folded_back_when_the_queue_goes_idle(make_app, tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    app = make_app(DATABASE_URL=f"sqlite:///{path}", JOBS_FLUSH_INTERVAL=0.05)

    def chatty(job) -> None:
        for step in range(50):
            job.add_message("x" * 200)

    wal = path.with_name(path.name + "-wal")
    with app.app_context():
        ids = [job_queue.enqueue(chatty) for _ in range(40)]
        job_queue.start()
        deadline, grown = time.monotonic() + 30, 0
        while not all(job_queue.get_job(job_id).status.is_final for job_id in ids):
            assert time.monotonic() < deadline
            grown = max(grown, wal.stat().st_size if wal.exists() else 0)
            time.sleep(0.02)
        deadline = time.monotonic() + 10
        while wal.exists() and wal.stat().st_size > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert grown > 0
    assert not wal.exists() or wal.stat().st_size == 0
