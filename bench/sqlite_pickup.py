"""Benchmark: how soon a separate ``flask worker`` on SQLite picks up a job another process queued.

    python bench/sqlite_pickup.py [--jobs 20]

Starts one ``flask worker`` on a scratch SQLite file, then, from this process,
enqueues one job at a time at a random moment (50-300 ms after the previous
one ended) and reads from the job's row the time from its creation to its
start. Run twice in one window: with the SQLite watcher (``JOBS_SQLITE_WATCH_INTERVAL``
0.02 s, the default) and with it effectively off (3600 s: the worker then
finds jobs only at its ``JOBS_POLL_INTERVAL`` poll, 1 s), and the idle
worker's CPU over 20 s for each. Prints figures only.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for folder in (str(REPO), str(BENCH)):
    if folder not in sys.path:
        sys.path.insert(0, folder)

from app import create_app  # noqa: E402
from job_queue import job_queue  # noqa: E402

SECRET_KEY = "bench-only-secret-key-0123456789abcdef"
IDLE_SECONDS = 20.0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(watch_interval: float, jobs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-sqlite-pickup-") as scratch:
        url = f"sqlite:///{scratch}/pickup.sqlite"
        app = create_app({"DATABASE_URL": url, "TESTING": True, "SECRET_KEY": SECRET_KEY, "JOBS_AUTOSTART": False,
                          "JOBS_RUN_IN_WEB": False, "WEBHOOK_DELIVERY_AUTOSTART": False}, instance_path=scratch)
        env = dict(os.environ, DATABASE_URL=url, SECRET_KEY=SECRET_KEY, INSTANCE_PATH=scratch,
                   JOBS_SQLITE_WATCH_INTERVAL=str(watch_interval), PYTHONPATH=os.pathsep.join([str(BENCH), str(REPO)]))
        worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "worker"], cwd=REPO, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(4.0)  # started, looked once, now idle
            before = _cpu_seconds(worker.pid)
            time.sleep(IDLE_SECONDS)
            idle_cpu = (_cpu_seconds(worker.pid) - before) / IDLE_SECONDS
            waits = []
            with app.app_context():
                for _ in range(jobs):
                    time.sleep(random.uniform(0.05, 0.3))
                    job_id = job_queue.enqueue("jobs_for_bench:first_line")
                    while not (job := job_queue.get_job(job_id)).status.is_final:
                        time.sleep(0.005)
                    waits.append((job.started_at - job.created_at).total_seconds())
        finally:
            worker.terminate()
            worker.wait(30)
        waits.sort()
        return {"median ms": statistics.median(waits) * 1000, "p95 ms": waits[max(0, int(0.95 * len(waits)) - 1)] * 1000,
                "max ms": waits[-1] * 1000, "idle CPU %": idle_cpu * 100}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    rows = {label: measure(interval, args.jobs) for label, interval in
            (("watcher on (0.02 s)", 0.02), ("watcher off (poll only)", 3600.0))}
    print(f"{args.jobs} jobs queued one at a time by another process; pickup = the job's created_at to started_at\n")
    print(f"{'':<26}" + "".join(f"{label:>12}" for label in next(iter(rows.values()))))
    for label, figures in rows.items():
        print(f"{label:<26}" + "".join(f"{value:>12.1f}" for value in figures.values()))


if __name__ == "__main__":
    main()
