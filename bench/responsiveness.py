"""Benchmark: how fast the site answers ``job_status`` while both big scrapers run (issue 14).

What is measured
    ``GET /admin/job_status/<id>`` at a steady rate (default 100 per second,
    open loop: each request is due on a fixed schedule and its latency counts
    from that due time, see ``open_loop.py``), plus ``GET /`` now and then.
    First for ``--idle-seconds`` with nothing running (polling a finished
    Example job), then from the moment the Miles & More scraper (536 partner
    pages) and the PAYBACK scraper (706 shops) are started until both jobs are
    final, polling the two running jobs in turn as the admin page does.
    Printed per row: p50, p95, p99, max and errors idle and busy, the busy/idle
    ratios, and each scrape's wall time (from the job's own timestamps).

Why
    A scrape run in a thread of the web process holds the interpreter lock
    that every page answer needs; issue 14 found p95 20-38 times worse while
    the scrapers ran. Scrapes now run in child processes of their own. This
    measures every way the app is meant to be served, so each can be judged.

Rows (``--servers`` x ``--shapes`` x ``--scenarios``)
    servers: ``flask`` (the README's ``flask --app app run``), ``gunicorn``
    (``-k gthread -w 1 --threads 8``) or ``gunicorn:WxT`` (W processes x T threads);
    shapes: ``process`` (the default: each scrape in a child process), ``thread``
    (``JOBS_PROCESS_ISOLATION=0``: in a worker thread), ``worker`` (``JOBS_RUN_IN_WEB=0`` for the
    web plus a ``flask --app app worker`` process);
    scenarios: ``lifted`` (``SCRAPER_MIN_INTERVAL=0``, ``SCRAPER_HOST_CONCURRENCY=8``)
    or ``polite`` (the default politeness: Miles & More then takes ~4 1/2 minutes).

Everything is on loopback: the app (SQLite in a temporary instance folder),
the sources (``loopback_sources.py``, its own process) and this load generator
(the process running this script). Only figures are printed.

    python bench/responsiveness.py [--servers flask,gunicorn] [--shapes process,thread,worker]
        [--scenarios lifted,polite] [--idle-seconds 20] [--rate 100] [--quick]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from loopback_sources import LIVE_PARTNER_PAGES, LIVE_PAYBACK_SHOPS  # noqa: E402
from open_loop import Sample  # noqa: E402
from queue_throughput import percentile  # noqa: E402
from served_app import (SCENARIOS, SCRAPES, SHAPES, Options, RowResult, plans, run_plans,  # noqa: E402
                        server_command)


@dataclass
class Latencies:
    """Summary of one series in milliseconds."""

    count: int
    errors: int
    p50: float
    p95: float
    p99: float
    max: float
    send_lag_p99: float  # how late the generator itself sent: a check on the figures, not the server's doing
    not_modified: int = 0  # answers 304 (the job had not changed since the ETag sent)

    @classmethod
    def of(cls, samples: list[Sample]) -> "Latencies":
        """Summarise ``samples``; a failed request counts with the time it took to fail."""
        # Dropping failed requests from the percentiles would flatter a server that times out.
        values = [s.latency * 1000 for s in samples if s.latency is not None]
        errors = sum(1 for s in samples if not s.ok)
        if not values:
            return cls(len(samples), errors, *(float("nan"),) * 5)
        lags = [(s.sent - s.due) * 1000 for s in samples if s.sent is not None]
        return cls(len(samples), errors, percentile(values, 0.50), percentile(values, 0.95),
                   percentile(values, 0.99), max(values), percentile(lags, 0.99),
                   sum(1 for s in samples if s.status == 304))

def print_report(results: list[RowResult], options: Options) -> None:
    """One line per row, then the wall-time ratios of each shape vs scrapes in a thread.

    ``gen lag`` is the 99th percentile of how late this generator sent (a
    large one means the machine was short of CPU for the generator too);
    ``load`` is the 1-minute load average as the busy phase ended (2 cores);
    ``304s`` the share of job_status answers that were 304 Not Modified.
    """
    print(f"\njob_status at {options.rate:g}/s open loop (latency from each request's due time), "
          f"'/' every {options.page_every:g} s; idle {options.idle_seconds:g} s, busy until both scrapes end\n")
    print(f"{'server':<14}{'shape':<9}{'scenario':<9}"
          f"{'idle p50/p95/p99 ms':>21}{'busy p50/p95/p99 ms':>26}{'busy max':>9}{'x p95':>7}{'x p99':>7}"
          f"{'errors':>8}{'/ busy p95':>11}{'M&M s':>8}{'PAYBACK s':>10}{'gen lag':>9}{'load':>6}{'304s':>6}")
    for row in results:
        idle, busy, page = Latencies.of(row.idle), Latencies.of(row.busy), Latencies.of(row.pages_busy)
        walls = [f"{row.walls[name]:.1f}" if name in row.walls else row.outcomes.get(name, "-")
                 for name, _ in SCRAPES]
        print(f"{row.plan.server:<14}{row.plan.shape:<9}{row.plan.scenario:<9}"
              f"{idle.p50:>7.1f}{idle.p95:>7.1f}{idle.p99:>7.1f}"
              f"{busy.p50:>10.1f}{busy.p95:>8.1f}{busy.p99:>8.1f}{busy.max:>9.0f}"
              f"{busy.p95 / idle.p95:>7.1f}{busy.p99 / idle.p99:>7.1f}"
              f"{idle.errors + busy.errors:>8}{page.p95:>11.1f}{walls[0]:>8}{walls[1]:>10}"
              f"{max(idle.send_lag_p99, busy.send_lag_p99):>9.1f}{row.load:>6.1f}"
              f"{(idle.not_modified + busy.not_modified) / max(1, idle.count + busy.count):>6.0%}")
    by_key = {(row.plan.server, row.plan.shape, row.plan.scenario): row for row in results}
    for (server, shape, scenario), row in by_key.items():
        baseline = by_key.get((server, "thread", scenario))
        if shape == "thread" or baseline is None:
            continue
        ratios = [f"{label} {row.walls[name] / baseline.walls[name]:.2f}"
                  for name, label in (("miles_and_more", "M&M"), ("payback", "PAYBACK"))
                  if name in row.walls and name in baseline.walls]
        print(f"wall time {shape} / thread ({server}, {scenario}): {', '.join(ratios) or '-'}")


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """Read the flags; ``--quick`` fills in only what was not given."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", help="flask, gunicorn, gunicorn:WxT, comma-separated (default flask,gunicorn)")
    parser.add_argument("--shapes", help=f"of {', '.join(SHAPES)}, comma-separated (default all)")
    parser.add_argument("--scenarios", default="lifted", help=f"of {', '.join(SCENARIOS)}")
    parser.add_argument("--idle-seconds", type=float, help="default 20")
    parser.add_argument("--rate", type=float, default=100.0, help="job_status requests per second")
    parser.add_argument("--page-every", type=float, default=2.0, help="seconds between two loads of /")
    parser.add_argument("--max-busy-seconds", type=float, default=900.0)
    parser.add_argument("--no-etag", dest="conditional", action="store_false",
                        help="never send If-None-Match (the admin page does, once the server sends ETags)")
    parser.add_argument("--pages", type=int, default=LIVE_PARTNER_PAGES, help="Miles & More partner pages")
    parser.add_argument("--shops", type=int, default=LIVE_PAYBACK_SHOPS, help="PAYBACK shops")
    parser.add_argument("--quick", action="store_true",
                        help="defaults for a fast pass: flask only, process and thread, 5 s idle")
    args = parser.parse_args(argv)
    quick = {"servers": "flask", "shapes": "process,thread", "idle_seconds": 5.0}
    full = {"servers": "flask,gunicorn", "shapes": ",".join(SHAPES), "idle_seconds": 20.0}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:  # a flag given explicitly wins over --quick
            setattr(args, name, value)
    for shape in args.shapes.split(","):
        if shape not in SHAPES:
            parser.error(f"unknown shape {shape!r}")
    for scenario in args.scenarios.split(","):
        if scenario not in SCENARIOS:
            parser.error(f"unknown scenario {scenario!r}")
    for server in args.servers.split(","):
        try:
            server_command(server, 0)
        except ValueError as exc:
            parser.error(str(exc))
    return args


def main(argv: Optional[list[str]] = None) -> None:
    """Measure the selected rows and print the report."""
    args = parse_args(argv)
    options = Options(args.rate, args.idle_seconds, args.page_every, args.max_busy_seconds, args.conditional)
    selected = list(plans(args.servers.split(","), args.shapes.split(","), args.scenarios.split(",")))
    results = run_plans(selected, options, args.pages, args.shops)
    print_report(results, options)


if __name__ == "__main__":
    main()
