"""One benchmark suite: ``python -m bench`` prints one table, each figure beside its baseline.

Why one table
    Issue 14 asks whether the site stays responsive while the scrapers run,
    without giving back what earlier issues gained (pickup latency, queue
    throughput, scrape time, memory). Each figure is measured here beside a
    baseline from the same run, on the same machine at the same load, so the
    ratio means something even on a busy 2-core machine. The baseline is the
    seed-style set-up: one worker thread, scraper concurrency 1, an idle
    server, parsing in the job's own thread.

Rows (each script can also be run alone, with more detail)
    * pickup latency (``pickup_latency.py``): JobQueue vs a 100 ms sleep-polling worker;
    * queue throughput per database (``queue_throughput.py``): 3 worker threads vs 1,
      SQLite, and PostgreSQL with ``--postgres URL`` or ``TEST_DATABASE_URL`` (emptied first);
    * Miles & More scrape wall time (``scrape_speed.py``, 50 ms per page, pages of a live page's
      size): concurrency 16 and
      the parse pool vs concurrency 1 parsing in-thread;
    * ``job_status`` latency while both scrapers run (``responsiveness.py``; gunicorn gthread with
      one process of 8 threads, so the one web process is where parsing competes unless the parse
      pool takes it; ``--server flask`` for ``flask run``): busy vs idle, with the parse pool and
      parsing in-thread;
    * peak RSS of a ``flask worker`` after 10,000 jobs (``worker_memory.py``): 3 threads vs 1.

    python -m bench [--quick] [--postgres URL]

About 5-6 minutes by default on a 2-core machine, about 2 with ``--quick``.
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

import loopback_sources  # noqa: E402
import pickup_latency  # noqa: E402
import queue_throughput  # noqa: E402
import responsiveness  # noqa: E402
import scrape_speed  # noqa: E402
import served_app  # noqa: E402
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
    shapes: tuple[str, ...] = ("pool", "inthread")
    memory_jobs: int = 10_000

    @classmethod
    def quick(cls) -> "Sizes":
        """Sizes for a fast pass (about 1.5 minutes)."""
        return cls(pickups=50, jobs=500, repeat=1, pages=150, idle_seconds=5.0, shapes=("pool",),
                   memory_jobs=2000)


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


def scrape_rows(sizes: Sizes) -> list[Row]:
    """The Miles & More scrape with limits lifted and the pool against concurrency 1 in-thread."""
    size = loopback_sources.LIVE_PAGE_BYTES
    fast = scrape_speed.run("lifted, pool", sizes.pages, 0.05, 16, 0.0, size, SCRAPER_PARSE_PROCESSES=2)
    seed = scrape_speed.run("concurrency 1, in-thread", sizes.pages, 0.05, 1, 0.0, size, SCRAPER_PARSE_PROCESSES=0)
    return [Row(f"Miles & More scrape, {sizes.pages} pages of 50 ms, {size // 1000} KB, conc. 16", "s", fast.seconds,
                "concurrency 1, parsing in-thread", seed.seconds)]


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
        where = f"{server}, {'parse pool' if shape == 'pool' else 'parsing in-thread'}"
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
    parser.add_argument("--quick", action="store_true", help="smaller runs: about 2 minutes")
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
        parts += [("scrape wall time", lambda: scrape_rows(sizes)),
                  ("job_status idle and busy", lambda: responsiveness_rows(sizes, args.server)),
                  ("worker memory", lambda: memory_rows(sizes))]
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
