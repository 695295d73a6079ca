"""Benchmark: jobs through a kill -9 storm, counted by the jobs themselves.

    python bench/kill_storm.py [--jobs 2000] [--workers 4] [--every 2.0] [--postgresql URL]

Enqueues ``--jobs`` jobs of 50 ms; ``--workers`` ``flask worker`` processes
run them while every ``--every`` seconds one of them is killed with SIGKILL
and a new one started. Each job writes a line to a file when it starts and
when it ends, so executions are counted outside the queue. Prints, per
database: executions, jobs run more than once (split into re-runs of an
execution that was killed mid-way, which the queue must repeat, and true
duplicates of an execution that had ended), and lost jobs.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for folder in (str(REPO), str(BENCH)):
    if folder not in sys.path:
        sys.path.insert(0, folder)

from jobs_for_bench import counted  # noqa: E402
from processes import ProcessGroup  # noqa: E402
from queue_throughput import bare_app, fresh_database  # noqa: E402

from job_queue import JobStatus  # noqa: E402


def storm(label: str, url: str, jobs: int, workers: int, every: float, folder: Path) -> dict:
    fresh_database(url)
    log_path = folder / f"executions-{label.split(',')[0]}.log"
    app, queue = bare_app(url, JOBS_RUN_IN_WEB=False)
    env = dict(os.environ, DATABASE_URL=url, SECRET_KEY="bench-only-secret-key-0123456789abcdef", JOBS_LEASE_SECONDS="5",
               JOBS_POLL_INTERVAL="0.2", PYTHONPATH=os.pathsep.join([str(BENCH), str(REPO)]))
    command = [sys.executable, "-m", "flask", "--app", "app", "worker"]
    group = ProcessGroup(folder / label.split(",")[0])
    kills = 0
    with app.app_context():
        ids = [queue.enqueue(counted, args=(str(log_path),)) for _ in range(jobs)]
        live = [group.start(command, cwd=REPO, env=env) for _ in range(workers)]
        store = queue._state().store
        started = time.monotonic()
        next_kill = started + every
        while store.count(JobStatus.COMPLETED) + store.count(JobStatus.FAILED) < jobs:
            if time.monotonic() - started > 600:
                break
            if time.monotonic() >= next_kill:
                victim = random.choice(live)
                group.expect_exit(victim)
                victim.kill()
                victim.wait(10)
                live.remove(victim)
                live.append(group.start(command, cwd=REPO, env=env))
                kills += 1
                next_kill += every
            group.assert_alive()
            time.sleep(0.05)
        took = time.monotonic() - started
        statuses = {job_id: queue.get_job(job_id).status for job_id in ids}
    group.stop()
    return {"label": label, "took": took, "kills": kills, **_count(log_path, ids, statuses)}


def _count(log_path: Path, ids: list[str], statuses: dict) -> dict:
    runs: dict[str, list[str]] = defaultdict(list)  # job id -> "start"/"end" in order
    for line in log_path.read_text().splitlines():
        event, job_id, _pid = line.split()
        runs[job_id].append(event)
    executions = sum(events.count("start") for events in runs.values())
    repeated = [job_id for job_id, events in runs.items() if events.count("start") > 1]
    duplicates = [job_id for job_id in repeated if _ran_again_after_it_ended(runs[job_id])]
    lost = [job_id for job_id in ids if statuses[job_id] is not JobStatus.COMPLETED or not runs[job_id]]
    return {"executions": executions, "rerun_after_kill": len(repeated) - len(duplicates),
            "duplicates": len(duplicates), "lost": len(lost)}


def _ran_again_after_it_ended(events: list[str]) -> bool:
    """A true duplicate: an execution had ended (its outcome was the job's), and the job started again."""
    return "end" in events and "start" in events[events.index("end") + 1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--every", type=float, default=2.0, help="seconds between two kills")
    parser.add_argument("--postgresql", default=os.environ.get("TEST_DATABASE_URL"))
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        results.append(storm("SQLite", f"sqlite:///{folder / 'storm.sqlite'}", args.jobs, args.workers,
                             args.every, folder))
        if args.postgresql:
            url = args.postgresql.replace("postgresql://", "postgresql+psycopg://", 1)
            results.append(storm("PostgreSQL", url, args.jobs, args.workers, args.every, folder))
        else:
            print("PostgreSQL skipped: pass --postgresql URL or set TEST_DATABASE_URL\n")
    print(f"{args.jobs} jobs of 50 ms, {args.workers} worker processes, one killed (-9) every {args.every:g} s\n")
    print(f"{'database':<12}{'time s':>8}{'kills':>7}{'executions':>12}{'re-run after kill':>19}"
          f"{'duplicates':>12}{'lost':>6}")
    for row in results:
        print(f"{row['label']:<12}{row['took']:>8.1f}{row['kills']:>7}{row['executions']:>12}"
              f"{row['rerun_after_kill']:>19}{row['duplicates']:>12}{row['lost']:>6}")
    if any(row["duplicates"] or row["lost"] for row in results):
        sys.exit("FAILED: a job ran twice after it had ended, or a job was lost")


if __name__ == "__main__":
    main()
