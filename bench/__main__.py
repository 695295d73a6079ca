"""One benchmark suite: ``python -m bench`` prints one table, each figure beside its baseline.

Why one table
    The site must stay responsive while the scrapers run, without giving
    back what earlier issues gained (pickup latency, queue throughput, scrape
    time, memory). Each figure is measured here beside a baseline from the
    same run, on the same machine at the same load, so the ratio means
    something even on a busy 2-core machine. The baseline is the seed-style
    set-up: one worker thread, scraper concurrency 1, an idle server, the
    scrape in the worker's own thread.

Rows (each script can also be run alone, with more detail)
    * pickup latency (``pickup_latency.py``): JobQueue vs a 100 ms sleep-polling worker;
    * queue throughput per database (``queue_throughput.py``): 3 worker threads vs 1,
      SQLite, and PostgreSQL with ``--postgres URL`` or ``TEST_DATABASE_URL`` (emptied first);
    * jobs in child processes (``job_children.py``): a child's start (claim to its first line)
      and how long a cancel takes to end a spinning child and one blocked in a read (target 2 s);
    * Miles & More scrape wall time (``scrape_speed.py``, 50 ms per page, pages of a live page's
      size): concurrency 16 in a child process vs concurrency 1 in the worker's thread;
    * ``job_status`` latency while both scrapers run (``responsiveness.py``; gunicorn gthread with
      one process of 8 threads; ``--server flask`` for ``flask run``): busy vs idle, scrapes in
      child processes (the default) and in the web process's worker threads;
    * peak RSS of a ``flask worker`` after 10,000 jobs (``worker_memory.py``): 3 threads vs 1;
    * peak RSS of the web process after 20 rounds of both scrapes vs after the first, and each
      scrape child's peak (``web_memory.py``).

    python -m bench [--quick] [--postgres URL]

About 8-9 minutes by default on a 2-core machine, about 3 with ``--quick``.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

BENCH = Path(__file__).resolve().parent
for folder in (str(BENCH.parent), str(BENCH)):
    if folder not in sys.path:
        sys.path.insert(0, folder)

import job_children  # noqa: E402
import loopback_sources  # noqa: E402
import pickup_latency  # noqa: E402
import queue_throughput  # noqa: E402
import responsiveness  # noqa: E402
import scrape_speed  # noqa: E402
import served_app  # noqa: E402
import web_memory  # noqa: E402
import worker_memory  # noqa: E402


@dataclass
class Row:
    """One figure beside its baseline; ``lower_is_better`` says which way the ratio should go."""

    figure: str
    unit: str
    value: float
    baseline_label: str
    baseline: float
    lower_is_better: bool = True

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("nan")


@dataclass
class Sizes:
    """How much work each part does: the default run, or ``--quick``."""

    pickups: int = 200
    jobs: int = 2000
    repeat: int = 3
    pages: int = 536
    idle_seconds: float = 10.0
    shapes: tuple[str, ...] = ("process", "thread")
    memory_jobs: int = 10_000
    children: int = 50  # children started one after the other for the start latency
    stops: int = 5  # cancels of each kind of stuck child
    scrape_rounds: int = 20  # rounds of both scrapes for the web process's memory

    @classmethod
    def quick(cls) -> "Sizes":
        """Sizes for a fast pass (about 3 minutes)."""
        return cls(pickups=50, jobs=500, repeat=1, pages=150, idle_seconds=5.0, shapes=("process",),
                   memory_jobs=2000, children=20, stops=2, scrape_rounds=3)


def pickup_rows(sizes: Sizes) -> list[Row]:
    """JobQueue's pickup latency against the 100 ms sleep-polling worker of the seed."""
    rng = random.Random()
    ours = pickup_latency.summarize("JobQueue", pickup_latency.measure_job_queue(sizes.pickups, rng))
    seed = pickup_latency.summarize("seed-style", pickup_latency.measure_seed_style(sizes.pickups, rng))
    return [Row("pickup latency, median", "ms", ours["median"], "100 ms sleep-polling worker", seed["median"]),
            Row("pickup latency, p95", "ms", ours["p95"], "100 ms sleep-polling worker", seed["p95"])]


def throughput_rows(label: str, url: str, sizes: Sizes) -> list[Row]:
    """3 worker threads (the app's default) against 1, both in the enqueuing process."""
    queue_throughput.fresh_database(url)
    threads3 = queue_throughput.in_process(url, sizes.jobs, 0, sizes.repeat, JOBS_WORKER_THREADS=3)
    queue_throughput.fresh_database(url)
    threads1 = queue_throughput.in_process(url, sizes.jobs, 0, sizes.repeat, JOBS_WORKER_THREADS=1)
    return [Row(f"queue throughput, {label}, 3 threads", "jobs/s", threads3.jobs_per_second,
                "1 worker thread", threads1.jobs_per_second, lower_is_better=False)]


def children_rows(sizes: Sizes) -> list[Row]:
    """A child's start against the 100 ms target; a cancel's end of stuck children against 2 s."""
    figures = job_children.measure(sizes.children, sizes.stops)
    rows = [Row(f"child start, claim to first line, {name}", "ms", figures.start(name), "target", 100.0)
            for name in ("median", "p95")]
    rows += [Row(f"cancel to end, child {label}, max of {len(seconds)}", "s", max(seconds), "target", 2.0)
             for label, seconds in figures.stop_seconds.items()]
    return rows


def scrape_rows(sizes: Sizes) -> list[Row]:
    """The Miles & More scrape with limits lifted in a child against concurrency 1 in the worker's thread."""
    size = loopback_sources.LIVE_PAGE_BYTES
    fast = scrape_speed.run("lifted, child", sizes.pages, 0.05, 16, 0.0, size, in_child=True)
    seed = scrape_speed.run("concurrency 1, in-thread", sizes.pages, 0.05, 1, 0.0, size)
    return [Row(f"Miles & More scrape, {sizes.pages} pages of 50 ms, {size // 1000} KB, conc. 16", "s", fast.seconds,
                "concurrency 1, in the worker thread", seed.seconds)]


def responsiveness_rows(sizes: Sizes, server: str) -> list[Row]:
    """job_status p95/p99 while both scrapers run against the same rows' idle phase.

    Each shape is measured ``sizes.repeat`` times and each figure is the
    median over those runs: one run of a few seconds busy moves by a third
    from run to run on a shared 2-core machine.
    """
    options = served_app.Options(idle_seconds=sizes.idle_seconds)
    plans = [served_app.Plan(server, shape, "lifted") for shape in sizes.shapes for _ in range(sizes.repeat)]
    runs: dict[str, list[tuple[responsiveness.Latencies, responsiveness.Latencies]]] = {}
    for result in served_app.run_plans(plans, options, progress=False):
        idle = responsiveness.Latencies.of(result.idle)
        busy = responsiveness.Latencies.of(result.busy)
        runs.setdefault(result.plan.shape, []).append((idle, busy))
        if busy.errors or idle.errors:
            print(f"  job_status errors ({result.plan.label}; a timeout counts {served_app.REQUEST_TIMEOUT:g} s): "
                  f"{idle.errors} idle, {busy.errors} busy", flush=True)
    rows = []
    for shape, measured in runs.items():
        where = f"{server}, {'scrapes in children' if shape == 'process' else 'scrapes in threads'}"
        of_runs = f", median of {len(measured)}" if len(measured) > 1 else ""
        for name in ("p95", "p99"):
            busy_value = statistics.median(getattr(busy, name) for _, busy in measured)
            idle_value = statistics.median(getattr(idle, name) for idle, _ in measured)
            rows.append(Row(f"job_status {name} while scraping, {where}{of_runs}", "ms", busy_value,
                            "idle server", idle_value))
    return rows


def memory_rows(sizes: Sizes) -> list[Row]:
    """A flask worker's peak RSS after many jobs, 3 threads against 1."""
    default = worker_memory.measure(sizes.memory_jobs, 3)
    seed = worker_memory.measure(sizes.memory_jobs, 1)
    return [Row(f"flask worker peak RSS after {sizes.memory_jobs} jobs, 3 threads", "MiB",
                default.peak_kib / 1024, "1 worker thread", seed.peak_kib / 1024)]


def web_memory_rows(sizes: Sizes) -> list[Row]:
    """The web process's peak RSS after many scrapes against after the first; the children's peaks printed."""
    memory = web_memory.measure(sizes.scrape_rounds)
    for name, peaks in sorted(memory.child_peaks_mib.items()):
        print(f"  {name} children: peak RSS {', '.join(f'{peak:.0f}' for peak in peaks)} MiB", flush=True)
    return [Row(f"web process peak RSS after {memory.rounds} rounds of both scrapes", "MiB",
                memory.after_last_kib / 1024, "after the first round", memory.after_first_kib / 1024)]


def print_table(rows: list[Row]) -> None:
    """The one table: figure, value, baseline, ratio value/baseline."""
    print(f"\n{'figure':<62}{'value':>16}  {'baseline':<34}{'value':>16}{'ratio':>8}")
    for row in rows:
        note = "" if row.lower_is_better else "  (higher is better)"
        print(f"{row.figure:<62}{row.value:>9.2f} {row.unit:<6}  {row.baseline_label:<34}"
              f"{row.baseline:>9.2f} {row.unit:<6}{row.ratio:>8.2f}{note}")


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """Read the flags; an unknown ``--server`` is refused before anything runs."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs: about 3 minutes")
    parser.add_argument("--postgres", default=os.environ.get("TEST_DATABASE_URL"),
                        help="PostgreSQL URL for the queue rows (that database is emptied); "
                             "default TEST_DATABASE_URL")
    parser.add_argument("--server", default="gunicorn",
                        help="server of the job_status rows: gunicorn (1 process x 8 threads), gunicorn:WxT "
                             "or flask (the README's flask --app app run)")
    args = parser.parse_args(argv)
    try:
        served_app.server_command(args.server, 0)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def main(argv: Optional[list[str]] = None) -> None:
    """Run every part in turn, then print the one table."""
    args = parse_args(argv)
    logging.disable(logging.WARNING)
    sizes = Sizes.quick() if args.quick else Sizes()
    parts: list[tuple[str, Callable[[], list[Row]]]] = [("pickup latency", lambda: pickup_rows(sizes))]
    with tempfile.TemporaryDirectory(prefix="bench-suite-") as scratch:
        parts.append(("queue throughput, SQLite",
                      lambda: throughput_rows("SQLite", f"sqlite:///{scratch}/queue.sqlite", sizes)))
        if args.postgres:
            url = args.postgres.replace("postgresql://", "postgresql+psycopg://", 1)
            parts.append(("queue throughput, PostgreSQL", lambda: throughput_rows("PostgreSQL", url, sizes)))
        parts += [("jobs in child processes", lambda: children_rows(sizes)),
                  ("scrape wall time", lambda: scrape_rows(sizes)),
                  ("job_status idle and busy", lambda: responsiveness_rows(sizes, args.server)),
                  ("worker memory", lambda: memory_rows(sizes)),
                  ("web process memory", lambda: web_memory_rows(sizes))]
        rows: list[Row] = []
        began = time.monotonic()
        for name, part in parts:
            started = time.monotonic()
            print(f"{name} ...", end=" ", flush=True)
            rows += part()
            print(f"{time.monotonic() - started:.0f} s", flush=True)
    if not args.postgres:
        print("PostgreSQL skipped: pass --postgres URL or set TEST_DATABASE_URL")
    print_table(rows)
    print(f"\nwhole run {time.monotonic() - began:.0f} s; load average now {os.getloadavg()[0]:.1f} "
          f"(other work on the machine moves every figure; compare ratios)")


if __name__ == "__main__":
    main()
