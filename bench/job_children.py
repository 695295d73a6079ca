"""Benchmark: jobs in child processes: how fast a child starts, how fast a stop ends it, what it holds.

What is measured (one app in this process, SQLite in a scratch folder, the fork server warmed first)
    * start: ``--starts`` process-isolated jobs one after the other, each saying one line at once:
      from the job's claim (its ``started_at``) to that line (its timestamp), both read from the one
      clock of this machine; median and p95 (target: median under 100 ms);
    * stop: a child spinning in ``while True: pass``, and one blocked in a socket read of a loopback
      source that sends a byte a second, each cancelled ``--stops`` times: from the cancel to the job's
      final status; median and max (target under 2 s);
    * memory: each child's peak resident set, as its supervising worker logs it when it ends.

    python bench/job_children.py [--starts 50] [--stops 5]
"""

from __future__ import annotations

import argparse
import logging
import re
import socket
import statistics
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for folder in (str(REPO), str(BENCH)):
    if folder not in sys.path:
        sys.path.insert(0, folder)

from app import create_app  # noqa: E402
from job_queue import PROCESS, job_queue  # noqa: E402
from queue_throughput import percentile  # noqa: E402

PEAK = re.compile(r"child \d+ ended \((\w+)\), peak memory ([\d.]+) MiB")


@dataclass
class ChildFigures:
    start_ms: list[float] = field(default_factory=list)
    stop_seconds: dict[str, list[float]] = field(default_factory=dict)
    peaks_mib: list[float] = field(default_factory=list)

    def start(self, name: str) -> float:
        return {"median": statistics.median, "p95": lambda v: percentile(v, 0.95)}[name](self.start_ms)


class _PeakLog(logging.Handler):
    """Collects the children's peak memory from the supervisor's log lines."""

    def __init__(self, figures: ChildFigures) -> None:
        super().__init__(logging.INFO)
        self.figures = figures

    def emit(self, record: logging.LogRecord) -> None:
        found = PEAK.search(record.getMessage())
        if found:
            self.figures.peaks_mib.append(float(found.group(2)))


@contextmanager
def dripping_source() -> Iterator[str]:
    """A loopback HTTP source that answers with headers, then one body byte a second."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(connection: socket.socket) -> None:
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            while not stop.wait(1.0):
                try:
                    connection.sendall(b"x")
                except OSError:
                    return

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(connection,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()


def _final(job_id: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = job_queue.get_job(job_id)
        if job.status.is_final:
            return job.status.value
        time.sleep(0.005)  # another process's end: the database says when
    raise TimeoutError(f"job {job_id} did not end")


def _running_with_a_line(job_id: str) -> None:
    deadline = time.monotonic() + 60
    while not job_queue.get_job(job_id).messages:
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} said nothing")
        time.sleep(0.005)


def measure(starts: int = 50, stops: int = 5) -> ChildFigures:
    """Start ``starts`` children one by one, then stop ``stops`` spinning and ``stops`` blocked ones."""
    figures = ChildFigures()
    handler = _PeakLog(figures)
    logging.getLogger("jobs.supervisor").addHandler(handler)
    with tempfile.TemporaryDirectory(prefix="bench-children-") as scratch, dripping_source() as drip:
        app = create_app({"DATABASE_URL": f"sqlite:///{scratch}/children.sqlite", "SECRET_KEY": "bench-only-secret-key-0123456789abcdef",
                          "JOBS_AUTOSTART": False, "WEBHOOK_DELIVERY_AUTOSTART": False,
                          "JOBS_FLUSH_INTERVAL": 0.02, "JOBS_POLL_INTERVAL": 0.05,
                          "SCRAPER_ALLOWED_HOSTS": drip.removeprefix("http://"), "SCRAPER_TOTAL_TIMEOUT": 120.0,
                          "SCRAPER_TIMEOUT": 60.0}, instance_path=scratch)
        try:
            with app.app_context():
                job_queue.warm_up().result(timeout=120)
                job_queue.start(threads=1)
                for _ in range(starts):
                    job_id = job_queue.enqueue("jobs_for_bench:first_line", isolation=PROCESS)
                    _final(job_id)
                    job = job_queue.get_job(job_id)
                    line = job.messages[0]["timestamp"]
                    figures.start_ms.append((_parse(line) - job.started_at).total_seconds() * 1000)
                for label, func, args in (("spinning", "jobs_for_bench:spin", ()),
                                          ("blocked in a dripping read", "jobs_for_bench:read_dripping",
                                           (f"{drip}/drip",))):
                    for _ in range(stops):
                        job_id = job_queue.enqueue(func, args=args, isolation=PROCESS)
                        _running_with_a_line(job_id)
                        time.sleep(0.3)  # well inside the loop or the read
                        asked = time.monotonic()
                        job_queue.cancel(job_id)
                        outcome = _final(job_id)
                        if outcome != "cancelled":
                            raise RuntimeError(f"{label}: {outcome}")
                        figures.stop_seconds.setdefault(label, []).append(time.monotonic() - asked)
                job_queue.stop()
        finally:
            logging.getLogger("jobs.supervisor").removeHandler(handler)
            with app.app_context():
                app.extensions["job_queue"].store.engine.dispose()
    return figures


def _parse(timestamp: str):
    from datetime import datetime

    return datetime.fromisoformat(timestamp)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=50)
    parser.add_argument("--stops", type=int, default=5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("jobs.supervisor").setLevel(logging.INFO)
    figures = measure(args.starts, args.stops)
    print(f"child start, claim to its first line: median {figures.start('median'):.1f} ms, "
          f"p95 {figures.start('p95'):.1f} ms ({len(figures.start_ms)} children; target: median < 100 ms)")
    for label, seconds in figures.stop_seconds.items():
        print(f"cancel of a child {label}: median {statistics.median(seconds):.2f} s, "
              f"max {max(seconds):.2f} s ({len(seconds)} runs; target < 2 s)")
    peaks = figures.peaks_mib
    print(f"children's peak memory: median {statistics.median(peaks):.1f} MiB, max {max(peaks):.1f} MiB "
          f"({len(peaks)} children)")


if __name__ == "__main__":
    main()
