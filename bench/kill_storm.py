"""Benchmark: jobs through a kill -9 storm and a database outage, counted outside the queue.

    python bench/kill_storm.py [--jobs 2000] [--workers 4] [--kills 20] [--every 2.0] [--outage 40]
                               [--postgresql URL]

Enqueues ``--jobs`` jobs of 50 ms; ``--workers`` ``flask worker`` processes
run them while every ``--every`` seconds one of them is killed with SIGKILL
and a new one started (``--kills`` in all), and, from a few seconds in, the
database goes away for ``--outage`` seconds: PostgreSQL through a TCP proxy
the workers connect through (the shared server is never stopped), SQLite by
another connection holding its write lock.

Two things are counted, each outside the queue's own bookkeeping:
* executions: each job writes a line to a file when it starts and when it
  ends;
* outcomes: a trigger on the job table logs every change of a job to a final
  status (completed, failed, cancelled) into a table of its own.

A *re-run* is a job executed more than once but recorded once: an execution
killed (or cut off from the database) before its outcome was stored, run
again. That is at-least-once delivery, expected. A *duplicate* is a job whose
outcome was recorded twice; *lost* a job that did not end completed; *stuck*
one still queued or running when everything has settled. The run fails on
any duplicate, lost or stuck job.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from contextlib import ExitStack
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for folder in (str(REPO), str(BENCH), str(REPO / "tests")):
    if folder not in sys.path:
        sys.path.insert(0, folder)

import sqlalchemy as sa  # noqa: E402

from jobs_for_bench import counted  # noqa: E402
from processes import ProcessGroup  # noqa: E402
from queue_throughput import bare_app, fresh_database  # noqa: E402
from tcp_proxy import TcpProxy  # noqa: E402

from job_queue import JobStatus  # noqa: E402

LEASE_SECONDS = 5.0
OUTAGE_STARTS_AFTER = 6.0  # seconds into the run: jobs are finishing when the database goes

_OUTCOME_TRIGGER = {
    "postgresql": [
        "CREATE TABLE outcome_log (job_id varchar(36) NOT NULL, status varchar(20) NOT NULL)",
        "CREATE FUNCTION log_outcome() RETURNS trigger AS $$ BEGIN "
        "INSERT INTO outcome_log VALUES (NEW.id, NEW.status); RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER job_outcome AFTER UPDATE OF status ON job FOR EACH ROW "
        "WHEN (NEW.status IN ('completed', 'failed', 'cancelled') AND OLD.status IS DISTINCT FROM NEW.status) "
        "EXECUTE FUNCTION log_outcome()",
    ],
    "sqlite": [
        "CREATE TABLE outcome_log (job_id TEXT NOT NULL, status TEXT NOT NULL)",
        "CREATE TRIGGER job_outcome AFTER UPDATE OF status ON job WHEN NEW.status IN ('completed', 'failed', "
        "'cancelled') AND OLD.status <> NEW.status BEGIN INSERT INTO outcome_log VALUES (NEW.id, NEW.status); END",
    ],
}


def _log_outcomes(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in _OUTCOME_TRIGGER[engine.dialect.name]:
            conn.exec_driver_sql(statement)
    engine.dispose()


def _outcomes(url: str) -> Counter:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        counts = Counter(job_id for (job_id,) in conn.exec_driver_sql("SELECT job_id FROM outcome_log"))
    engine.dispose()
    return counts


class _SqliteLockHolder:
    """A SQLite 'outage': another connection holds the write lock, so every writer waits and then fails."""

    def __init__(self, path: str) -> None:
        self._connection = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)

    def cut(self) -> None:
        self._connection.execute("BEGIN IMMEDIATE")

    def restore(self) -> None:
        self._connection.execute("ROLLBACK")

    def close(self) -> None:
        self._connection.close()


def storm(label: str, url: str, args: argparse.Namespace, folder: Path) -> dict:
    fresh_database(url)
    _log_outcomes(url)
    log_path = folder / f"executions-{label}.log"
    app, queue = bare_app(url, JOBS_RUN_IN_WEB=False)
    with ExitStack() as stack:
        worker_url, cut, restore = _outage_switch(url, stack)
        env = dict(os.environ, DATABASE_URL=worker_url, SECRET_KEY="bench-only-secret-key-0123456789abcdef",
                   JOBS_LEASE_SECONDS=str(LEASE_SECONDS), JOBS_POLL_INTERVAL="0.2",
                   PYTHONPATH=os.pathsep.join([str(BENCH), str(REPO)]))
        command = [sys.executable, "-m", "flask", "--app", "app", "worker"]
        group = ProcessGroup(folder / label)
        stack.callback(group.stop)  # also when the run fails: no worker outlives the bench
        with app.app_context():
            ids = [queue.enqueue(counted, args=(str(log_path),)) for _ in range(args.jobs)]
            store = queue._state().store
            live = [group.start(command, cwd=REPO, env=env) for _ in range(args.workers)]
            started = time.monotonic()
            outage = threading.Timer(OUTAGE_STARTS_AFTER, _outage, (cut, restore, args.outage)) if args.outage else None
            if outage is not None:
                outage.start()
            kills, restarts, next_kill = 0, 0, started + args.every
            settle_by = started + OUTAGE_STARTS_AFTER + args.outage + 600
            while time.monotonic() < settle_by:
                if kills < args.kills and time.monotonic() >= next_kill:
                    victim = random.choice(live)
                    group.expect_exit(victim)
                    victim.kill()
                    victim.wait(10)
                    live.remove(victim)
                    live.append(group.start(command, cwd=REPO, env=env))
                    kills, next_kill = kills + 1, next_kill + args.every
                restarts += _restart_refused_starts(group, live, lambda: group.start(command, cwd=REPO, env=env))
                if kills >= args.kills and (outage is None or not outage.is_alive()) and _all_final(store, args.jobs):
                    break
                time.sleep(0.05)
            took = time.monotonic() - started
            time.sleep(2 * LEASE_SECONDS)  # a job whose outcome would be recorded twice has done so by now
            statuses = {job_id: queue.get_job(job_id).status for job_id in ids}
    return {"label": label, "took": took, "kills": kills, "restarts": restarts, **_count(log_path, ids, statuses, _outcomes(url))}


def _outage_switch(url: str, stack: ExitStack) -> tuple[str, Callable[[], None], Callable[[], None]]:
    """The URL the workers use, and how to take their database away and give it back."""
    if url.startswith("sqlite"):
        holder = _SqliteLockHolder(url.removeprefix("sqlite:///"))
        stack.callback(holder.close)
        return url, holder.cut, holder.restore
    port = urlsplit(url.replace("+psycopg", "")).port or 5432
    proxy = stack.enter_context(TcpProxy(port))
    return url.replace(f":{port}/", f":{proxy.port}/"), proxy.cut, proxy.restore


def _restart_refused_starts(group: ProcessGroup, live: list, start: Callable[[], object]) -> int:
    """Start again, as a service manager would, a worker that refused to start (its database was away);
    any other exit fails the run with that worker's output."""
    dead = group.dead()
    refused = [s for s in dead if "Start abgebrochen" in s.output()]
    if len(refused) < len(dead):
        group.assert_alive()
    for started in refused:
        group.expect_exit(started.process)
        live.remove(started.process)
        time.sleep(1.0)  # systemd's RestartSec
        live.append(start())
    return len(refused)


def _outage(cut: Callable[[], None], restore: Callable[[], None], seconds: float) -> None:
    cut()
    time.sleep(seconds)
    restore()


def _all_final(store, jobs: int) -> bool:
    return sum(store.count(status) for status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)) >= jobs


def _count(log_path: Path, ids: list[str], statuses: dict, outcomes: Counter) -> dict:
    runs: dict[str, int] = defaultdict(int)  # job id -> executions started
    for line in log_path.read_text().splitlines():
        event, job_id, _pid = line.split()
        runs[job_id] += event == "start"
    return {
        "executions": sum(runs.values()),
        "reruns": sum(1 for job_id in ids if runs[job_id] > 1 and outcomes[job_id] == 1),
        "duplicates": sum(1 for job_id in ids if outcomes[job_id] > 1),
        "lost": sum(1 for job_id in ids if statuses[job_id] in (JobStatus.FAILED, JobStatus.CANCELLED)
                    or (statuses[job_id] is JobStatus.COMPLETED and not runs[job_id])),
        "stuck": sum(1 for job_id in ids if not statuses[job_id].is_final),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--kills", type=int, default=20, help="kill -9s in all")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between two kills")
    parser.add_argument("--outage", type=float, default=40.0, help="seconds the database is away (0: none)")
    parser.add_argument("--postgresql", default=os.environ.get("TEST_DATABASE_URL"))
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        results.append(storm("SQLite", f"sqlite:///{folder / 'storm.sqlite'}", args, folder))
        if args.postgresql:
            url = args.postgresql.replace("postgresql://", "postgresql+psycopg://", 1)
            results.append(storm("PostgreSQL", url, args, folder))
        else:
            print("PostgreSQL skipped: pass --postgresql URL or set TEST_DATABASE_URL (it is emptied)\n")
    print(f"{args.jobs} jobs of 50 ms, {args.workers} worker processes, {args.kills} kill -9s (one every "
          f"{args.every:g} s), the database away for {args.outage:g} s from {OUTAGE_STARTS_AFTER:g} s in\n")
    print(f"{'database':<12}{'time s':>8}{'kills':>7}{'restarts':>10}{'executions':>12}{'re-runs':>9}"
          f"{'duplicates':>12}{'lost':>6}{'stuck':>7}")
    for row in results:
        print(f"{row['label']:<12}{row['took']:>8.1f}{row['kills']:>7}{row['restarts']:>10}{row['executions']:>12}"
              f"{row['reruns']:>9}{row['duplicates']:>12}{row['lost']:>6}{row['stuck']:>7}")
    print("restarts: workers started again after refusing to start while the database was away")
    if any(row["duplicates"] or row["lost"] or row["stuck"] for row in results):
        sys.exit("FAILED: an outcome was recorded twice, or a job was lost or is stuck")


if __name__ == "__main__":
    main()
