"""Benchmark: throughput and pickup latency of the durable job queue.

For each backend it prints, side by side:

* jobs/s: enqueue 2,000 no-op jobs and wait until all are completed (every
  job is inserted, claimed, run and finished in the database, with its
  progress and messages columns);
* pickup: median and p95 time from ``enqueue`` to the job starting, for 200
  jobs enqueued one at a time into an idle queue.

Backends: SQLite with the worker thread in the enqueuing process; SQLite with
2 ``flask worker`` processes (they poll every ``JOBS_POLL_INTERVAL``);
PostgreSQL with 4 ``flask worker`` processes woken by LISTEN/NOTIFY
(needs ``TEST_DATABASE_URL`` or ``--postgresql URL``).

    python bench/queue_throughput.py [--jobs 2000] [--pickups 200] [--postgresql URL]
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for folder in (str(REPO), str(BENCH)):
    if folder not in sys.path:
        sys.path.insert(0, folder)

from flask import Flask  # noqa: E402

import sqlalchemy as sa  # noqa: E402

from app import create_app  # noqa: E402
from job_queue import JobQueue, JobStatus  # noqa: E402
from jobs_for_bench import noop  # noqa: E402
from processes import ProcessGroup  # noqa: E402

COMPLETED = JobStatus.COMPLETED

TARGETS = {
    "SQLite, in process": "≥ 1,300 jobs/s, median pickup < 2 ms",
    "SQLite, 2 processes": "(polls: shown for comparison)",
    "PostgreSQL, 4 processes": "≥ 1,000 jobs/s, median pickup < 2.6 ms",
}


@dataclass
class Figures:
    backend: str
    jobs_per_second: float
    pickups_ms: list[float]
    processes_alive: int = 1  # worker processes (or the in-process worker) alive when the run ended
    processes: int = 1


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def bare_app(url: str, **config: object) -> tuple[Flask, JobQueue]:
    app = Flask("bench")
    app.config.update(SQLALCHEMY_DATABASE_URI=url, JOBS_AUTOSTART=False, **config)
    queue = JobQueue(app)
    return app, queue


def wait_for_completed(queue: JobQueue, count: int, timeout: float = 300,
                       group: Optional[ProcessGroup] = None) -> None:
    store = queue._state().store
    deadline = time.monotonic() + timeout
    while store.count(COMPLETED) < count:
        if group is not None:
            group.assert_alive()  # fail at once with the dead worker's output, not after the timeout
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {store.count(COMPLETED)} of {count} jobs completed")
        time.sleep(0.005)


def throughput(queue: JobQueue, jobs: int, repeat: int, group: Optional[ProcessGroup] = None) -> float:
    """Median over ``repeat`` runs of: enqueue ``jobs`` no-op jobs, wait until all are done."""
    rates = []
    for run in range(1, repeat + 1):
        started = time.perf_counter()
        for _ in range(jobs):
            queue.enqueue(noop)
        wait_for_completed(queue, jobs * run, group=group)
        rates.append(jobs / (time.perf_counter() - started))
        if group is not None:
            print(f"  run {run}: {group.alive()} of {len(group.started)} worker processes alive", flush=True)
    return statistics.median(rates)


def in_process(url: str, jobs: int, pickups: int, repeat: int, **config: object) -> Figures:
    """The default shape: the enqueuing process runs the worker thread itself (``config``: e.g. its threads)."""
    app, queue = bare_app(url, **config)
    with app.app_context():
        queue.start()
        rate = throughput(queue, jobs, repeat)

        latencies: list[float] = []
        began, done = threading.Event(), threading.Event()
        began_at: list[float] = []

        def timed(job) -> None:
            began_at.append(time.perf_counter())
            done.set()

        for _ in range(pickups):
            time.sleep(random.uniform(0, 0.02))  # the worker is idle, waiting
            done.clear()
            enqueued = time.perf_counter()
            queue.enqueue(timed)
            if not done.wait(10):
                raise TimeoutError("job not picked up")
            latencies.append((began_at[-1] - enqueued) * 1000)
        alive = int(queue.is_running())
        queue.stop()
    return Figures("SQLite, in process", rate, latencies, alive, 1)


@contextmanager
def worker_processes(url: str, count: int) -> Iterator[ProcessGroup]:
    env = dict(os.environ, DATABASE_URL=url, SECRET_KEY="bench-only-secret-key-0123456789abcdef", PYTHONPATH=os.pathsep.join([str(BENCH), str(REPO)]))
    group = ProcessGroup()
    for _ in range(count):
        group.start([sys.executable, "-m", "flask", "--app", "app", "worker"], cwd=REPO, env=env)
    try:
        time.sleep(3)  # let them import, connect and LISTEN
        group.assert_alive()
        yield group
    finally:
        group.stop()


def other_processes(label: str, url: str, workers: int, jobs: int, pickups: int, repeat: int) -> Figures:
    app, queue = bare_app(url, JOBS_RUN_IN_WEB=False)
    with app.app_context(), worker_processes(url, workers) as group:
        store = queue._state().store
        print(f"{label}:", flush=True)
        rate = throughput(queue, jobs, repeat, group)

        latencies = []
        for _ in range(pickups):
            time.sleep(random.uniform(0, 0.02))
            job_id = queue.enqueue(noop)
            record = store.get(job_id)
            while record.status != COMPLETED:
                time.sleep(0.001)
                record = store.get(job_id)
            # both stamped by this machine's clock: created by us, started by the worker
            latencies.append((record.started_at - record.created_at).total_seconds() * 1000)
        alive, dead = group.alive(), group.dead()
        print(f"  end: {alive} of {workers} worker processes alive", flush=True)
        for started in dead:
            print(f"  died (exit {started.process.returncode}):\n{started.output()[-3000:]}", flush=True)
    return Figures(label, rate, latencies, alive, workers)


def fresh_database(url: str) -> None:
    """Empty the database, then let the app create its schema, as a first start does."""
    engine = sa.create_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    with tempfile.TemporaryDirectory(prefix="bench-instance-") as instance:  # first-start files: not in instance/
        app = create_app({"DATABASE_URL": url, "TESTING": True, "SECRET_KEY": "bench-only-secret-key-0123456789abcdef",
                          "JOBS_AUTOSTART": False}, instance_path=instance)
        with app.app_context():
            app.extensions["job_queue"].store.engine.dispose()
            app.extensions["sqlalchemy"].engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--pickups", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3, help="throughput runs per backend (median)")
    parser.add_argument("--postgresql", default=os.environ.get("TEST_DATABASE_URL"),
                        help="PostgreSQL URL (the database is emptied first)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)

    results: list[Figures] = []
    with tempfile.TemporaryDirectory() as folder:
        results.append(in_process(f"sqlite:///{folder}/in-process.sqlite", args.jobs, args.pickups, args.repeat))
        shared = f"sqlite:///{folder}/shared.sqlite"
        fresh_database(shared)
        results.append(other_processes("SQLite, 2 processes", shared, 2, args.jobs, args.pickups, args.repeat))
    if args.postgresql:
        url = args.postgresql.replace("postgresql://", "postgresql+psycopg://", 1)
        fresh_database(url)
        results.append(other_processes("PostgreSQL, 4 processes", url, 4, args.jobs, args.pickups, args.repeat))
    else:
        print("PostgreSQL skipped: pass --postgresql URL or set TEST_DATABASE_URL\n")

    print(f"jobs/s: median of {args.repeat} runs of {args.jobs} no-op jobs; "
          f"pickup: {args.pickups} jobs enqueued one at a time into an idle queue\n")
    print(f"{'backend':<26}{'jobs/s':>9}{'pickup median ms':>18}{'p95 ms':>9}{'alive':>7}   target")
    for figures in results:
        print(f"{figures.backend:<26}{figures.jobs_per_second:>9.0f}"
              f"{statistics.median(figures.pickups_ms):>18.2f}{percentile(figures.pickups_ms, 0.95):>9.2f}"
              f"{figures.processes_alive:>4}/{figures.processes:<2}   {TARGETS[figures.backend]}")
    print("\nFor comparison (issue 5, measured on this machine): Huey/SQLite ~1,300 jobs/s, ~56 ms pickup;"
          " RQ SimpleWorker/Redis ~250 jobs/s, 2.6 ms median pickup.")
    died = [figures.backend for figures in results if figures.processes_alive < figures.processes]
    if died:
        sys.exit(f"FAILED: a worker process died during: {', '.join(died)} (its output is printed above)")


if __name__ == "__main__":
    main()
