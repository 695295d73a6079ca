"""Benchmark: peak memory of a ``flask worker`` process after it has finished many jobs.

Why
    A worker lives for weeks; anything it keeps per finished job (messages,
    results, snapshots, log records) shows as a peak RSS that grows with the
    number of jobs. Reading ``VmHWM`` (the high-water mark of the resident set)
    from ``/proc/<pid>/status`` after 10,000 trivial jobs shows it without a
    profiler.

How
    Enqueue ``--jobs`` no-op jobs (``jobs_for_bench:noop``, importable) into a
    fresh SQLite database, start one ``flask --app app worker --threads N``,
    wait until all are completed, read its ``VmHWM`` and ``VmRSS``, stop it.
    Linux only (``/proc``).

    python bench/worker_memory.py [--jobs 10000] [--threads 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for folder in (str(REPO), str(BENCH)):
    if folder not in sys.path:
        sys.path.insert(0, folder)

from jobs_for_bench import noop  # noqa: E402
from processes import ProcessGroup  # noqa: E402
from queue_throughput import bare_app, fresh_database, wait_for_completed  # noqa: E402


@dataclass
class WorkerMemory:
    jobs: int
    threads: int
    peak_kib: int  # VmHWM
    resident_kib: int  # VmRSS when the last job had finished


def proc_status_kib(pid: int, field: str) -> int:
    """One ``kB`` field (``VmHWM``, ``VmRSS``) of ``/proc/<pid>/status``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(f"{field} not in /proc/{pid}/status")


def measure(jobs: int, threads: int, timeout: float = 600.0) -> WorkerMemory:
    """Run ``jobs`` no-op jobs through one worker process of ``threads`` threads; return its memory."""
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as scratch:
        url = f"sqlite:///{scratch}/memory.sqlite"
        fresh_database(url)
        app, queue = bare_app(url, JOBS_RUN_IN_WEB=False)
        env = dict(os.environ, DATABASE_URL=url, SECRET_KEY="bench-only-secret-key-0123456789abcdef", INSTANCE_PATH=scratch,
                   PYTHONPATH=os.pathsep.join([str(BENCH), str(REPO)]))
        group = ProcessGroup(Path(scratch) / "logs")
        with app.app_context():
            for _ in range(jobs):
                queue.enqueue(noop)
            worker = group.start([sys.executable, "-m", "flask", "--app", "app", "worker", "--threads", str(threads)],
                                 cwd=REPO, env=env)
            try:
                wait_for_completed(queue, jobs, timeout, group)
                return WorkerMemory(jobs, threads, proc_status_kib(worker.pid, "VmHWM"),
                                    proc_status_kib(worker.pid, "VmRSS"))
            finally:
                group.stop()
                queue._state().store.engine.dispose()


def main(argv: Optional[list[str]] = None) -> None:
    """Measure one worker and print its peak and current RSS."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=3)
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    figures = measure(args.jobs, args.threads)
    print(f"flask worker --threads {figures.threads} after {figures.jobs} jobs: "
          f"peak RSS (VmHWM) {figures.peak_kib / 1024:.1f} MiB, RSS {figures.resident_kib / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
