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
    Parsing runs on the web process's interpreter lock unless it is moved
    elsewhere; a request that needs the lock waits for it. Issue 14 found p95
    20-38 times worse while the scrapers ran. This measures every way the app
    is meant to be served, so the fix can be judged on each.

Rows (``--servers`` x ``--shapes`` x ``--scenarios``)
    servers: ``flask`` (the README's ``flask --app app run``), ``gunicorn``
    (``-k gthread -w 1 --threads 8``) or ``gunicorn:WxT`` (W processes x T threads);
    shapes: ``pool`` (default: ``SCRAPER_PARSE_PROCESSES=2``), ``inthread``
    (``SCRAPER_PARSE_PROCESSES=0``), ``worker`` (``JOBS_RUN_IN_WEB=0`` for the
    web plus a ``flask --app app worker`` process);
    scenarios: ``lifted`` (``SCRAPER_MIN_INTERVAL=0``, ``SCRAPER_HOST_CONCURRENCY=8``)
    or ``polite`` (the default politeness: Miles & More then takes ~4 1/2 minutes).

Everything is on loopback: the app (SQLite in a temporary instance folder),
the sources (``loopback_sources.py``, its own process) and this load generator
(the process running this script). Only figures are printed.

    python bench/responsiveness.py [--servers flask,gunicorn] [--shapes pool,inthread,worker]
        [--scenarios lifted,polite] [--idle-seconds 20] [--rate 100] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Optional

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for folder in (str(REPO), str(BENCH)):
    if folder not in sys.path:
        sys.path.insert(0, folder)

from loopback_sources import LIVE_PARTNER_PAGES, LIVE_PAYBACK_SHOPS, PAYBACK_ENDPOINT  # noqa: E402
from open_loop import HttpClient, Sample, Stream, run_streams  # noqa: E402
from processes import ProcessGroup  # noqa: E402
from queue_throughput import percentile  # noqa: E402

SHAPES: dict[str, dict[str, str]] = {
    "pool": {"SCRAPER_PARSE_PROCESSES": "2"},
    "inthread": {"SCRAPER_PARSE_PROCESSES": "0"},
    "worker": {"SCRAPER_PARSE_PROCESSES": "2", "JOBS_RUN_IN_WEB": "0"},
}
SCENARIOS: dict[str, dict[str, str]] = {
    "lifted": {"SCRAPER_MIN_INTERVAL": "0", "SCRAPER_HOST_CONCURRENCY": "8"},
    "polite": {},  # the defaults of app.py
}
FINAL = ("completed", "failed", "cancelled")
SCRAPES = (("miles_and_more", "run_miles_and_more"), ("payback", "run_payback"))
#: Seconds any single request of the bench may take (the load generator's own requests included).
REQUEST_TIMEOUT = 10.0
START_TIMEOUT = 90.0
#: The app and the sources run at a lower priority than this load generator: on a 2-core machine
#: that the scrapers saturate, the generator would otherwise wait for a core and send late, and the
#: figures would show its lateness (the "gen lag" column) instead of the server's. In production no
#: load generator competes with the server, so this is the closer picture; the app's processes keep
#: equal priority among themselves.
NICE = ["nice", "-n", "5"]


@dataclass(frozen=True)
class Plan:
    """One row: which server command, which shape of job processing, which politeness."""

    server: str
    shape: str
    scenario: str

    @property
    def label(self) -> str:
        return f"{self.server} {self.shape} {self.scenario}"


@dataclass
class Options:
    rate: float = 100.0
    idle_seconds: float = 20.0
    page_every: float = 2.0
    max_busy_seconds: float = 900.0
    conditional: bool = True  # poll as the admin page does: If-None-Match with the last ETag


@dataclass
class RowResult:
    """What one row measured: samples per phase, the scrapes' outcomes and wall times."""

    plan: Plan
    idle: list[Sample] = field(default_factory=list)
    busy: list[Sample] = field(default_factory=list)
    pages_idle: list[Sample] = field(default_factory=list)
    pages_busy: list[Sample] = field(default_factory=list)
    walls: dict[str, float] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)
    load: float = 0.0  # the machine's 1-minute load average as the busy phase ended: other work skews figures


def free_port() -> int:
    """A port free on loopback now (the server binds it a moment later; on a quiet machine that holds)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_command(server: str, port: int) -> list[str]:
    """The command line that serves the app on ``port``: ``flask``, ``gunicorn`` or ``gunicorn:WxT``."""
    if server == "flask":
        return [sys.executable, "-m", "flask", "--app", "app", "run", "--host", "127.0.0.1", "--port", str(port)]
    if server == "gunicorn" or server.startswith("gunicorn:"):
        workers, threads = gunicorn_counts(server)
        return [sys.executable, "-m", "gunicorn", "-k", "gthread", "-w", str(workers), "--threads", str(threads),
                "-b", f"127.0.0.1:{port}", "app:create_app()"]
    raise ValueError(f"unknown server {server!r}: flask, gunicorn or gunicorn:WxT")


def gunicorn_counts(server: str) -> tuple[int, int]:
    """Worker processes and threads of ``gunicorn`` (1 x 8) or ``gunicorn:WxT``."""
    if server == "gunicorn":
        return 1, 8
    workers, threads = server.split(":", 1)[1].lower().split("x")
    return int(workers), int(threads)


@dataclass
class Source:
    """The loopback sources' process and address."""

    base: str

    @property
    def config(self) -> dict[str, str]:
        """The app's settings that point both scrapers at it."""
        return {
            "SCRAPER_SOURCES": "online",
            "MILES_AND_MORE_SITEMAP_URL": f"{self.base}/sitemap.xml",
            "PAYBACK_CATALOGUE_URL": f"{self.base}{PAYBACK_ENDPOINT}",
            "SCRAPER_ALLOWED_HOSTS": self.base.removeprefix("http://"),
        }


def start_source(group: ProcessGroup, pages: int = LIVE_PARTNER_PAGES, shops: int = LIVE_PAYBACK_SHOPS) -> Source:
    """Start ``loopback_sources.py`` in its own process and wait for its ``READY <port>`` line."""
    process = group.start(NICE + [sys.executable, str(BENCH / "loopback_sources.py"), "--pages", str(pages),
                           "--shops", str(shops)], cwd=REPO, env=dict(os.environ))
    started = group.started[-1]
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        for line in started.output().splitlines():
            if line.startswith("READY "):
                return Source(f"http://127.0.0.1:{int(line.split()[1])}")
        if process.poll() is not None:
            group.assert_alive()
        time.sleep(0.05)  # a child's first line: no event to wait on across processes
    raise TimeoutError("the loopback sources did not start")


def app_environment(plan: Plan, source: Source, instance: Path, token: str) -> dict[str, str]:
    """The environment of the app's processes for one row (SQLite in ``instance``)."""
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "FLASK_DEBUG")}
    env.update(source.config)
    env.update(SCENARIOS[plan.scenario])
    env.update(SHAPES[plan.shape])
    env.update({
        "INSTANCE_PATH": str(instance),
        "SECRET_KEY": secrets.token_hex(16),
        "ADMIN_API_TOKEN": token,
        "EXAMPLE_PAGE_INTERVAL": "0",  # the job polled while idle: over at once
        "PYTHONPATH": os.pathsep.join([str(REPO), str(BENCH)]),
    })
    return env


def _started_processes(plan: Plan, group: ProcessGroup, env: dict[str, str], port: int) -> None:
    group.start(NICE + server_command(plan.server, port), cwd=REPO, env=env)
    if plan.shape == "worker":
        group.start(NICE + [sys.executable, "-m", "flask", "--app", "app", "worker"], cwd=REPO, env=env)


async def _wait_ready(client: HttpClient, group: ProcessGroup) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        group.assert_alive()
        try:
            if (await client.request("GET", "/")).status == 200:
                return
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            pass  # not listening yet
        await asyncio.sleep(0.2)
    raise TimeoutError("the app did not answer / in time")


async def _job_json(client: HttpClient, job_id: str) -> dict[str, Any]:
    response = await client.request("GET", f"/admin/job_status/{job_id}")
    if response.status != 200:
        raise RuntimeError(f"job_status {job_id}: {response.status} {response.body[:200]!r}")
    return json.loads(response.body)


async def start_job(client: HttpClient, endpoint: str) -> str:
    """POST ``/admin/<endpoint>`` as an API client and return the job's id."""
    response = await client.request("POST", f"/admin/{endpoint}")
    if response.status not in (200, 202):
        raise RuntimeError(f"POST /admin/{endpoint}: {response.status} {response.body[:300]!r}")
    return json.loads(response.body)["job_id"]


async def _wait_final(client: HttpClient, job_ids: list[str], finals: dict[str, dict[str, Any]],
                      group: ProcessGroup, timeout: float, every: float = 0.5) -> None:
    """Record each job's JSON once it is final; the checks are not part of the measured stream."""
    deadline = time.monotonic() + timeout
    while len(finals) < len(job_ids) and time.monotonic() < deadline:
        group.assert_alive()
        for job_id in job_ids:
            if job_id not in finals:
                record = await _job_json(client, job_id)
                if record["status"] in FINAL:
                    finals[job_id] = record
        await asyncio.sleep(every)


def _seconds(record: dict[str, Any]) -> float:
    return (datetime.fromisoformat(record["completed_at"]) - datetime.fromisoformat(record["started_at"])).total_seconds()


async def _measure(plan: Plan, source: Source, options: Options, group: ProcessGroup, instance: Path) -> RowResult:
    token = secrets.token_urlsafe(32)
    port = free_port()
    _started_processes(plan, group, app_environment(plan, source, instance, token), port)
    api_headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    api = HttpClient("127.0.0.1", port, api_headers, REQUEST_TIMEOUT)
    control = HttpClient("127.0.0.1", port, api_headers, REQUEST_TIMEOUT)  # start and watch: not measured
    browser = HttpClient("127.0.0.1", port, {"Accept": "text/html"}, REQUEST_TIMEOUT)
    result = RowResult(plan)
    try:
        await _wait_ready(control, group)
        probe = await start_job(control, "run_scraper")
        probed: dict[str, dict[str, Any]] = {}
        await _wait_final(control, [probe], probed, group, START_TIMEOUT, every=0.1)

        idle = [Stream("job_status", api, options.rate, lambda i: f"/admin/job_status/{probe}",
                       options.conditional),
                Stream("page", browser, 1 / options.page_every, lambda i: "/")]
        await run_streams(idle, lambda: False, options.idle_seconds)
        result.idle, result.pages_idle = idle[0].samples, idle[1].samples
        group.assert_alive()

        ids = [await start_job(control, endpoint) for _name, endpoint in SCRAPES]
        finals: dict[str, dict[str, Any]] = {}
        watcher = asyncio.create_task(_wait_final(control, ids, finals, group, options.max_busy_seconds))
        busy = [Stream("job_status", api, options.rate, lambda i: f"/admin/job_status/{ids[i % len(ids)]}",
                       options.conditional),
                Stream("page", browser, 1 / options.page_every, lambda i: "/")]
        await run_streams(busy, lambda: len(finals) == len(ids) or watcher.done(), options.max_busy_seconds)
        await watcher  # raises if a process died meanwhile
        result.load = os.getloadavg()[0]
        result.busy, result.pages_busy = busy[0].samples, busy[1].samples
        for (name, _endpoint), job_id in zip(SCRAPES, ids):
            record = finals.get(job_id)
            result.outcomes[name] = record["status"] if record else "unfinished"
            if record and record.get("started_at") and record.get("completed_at"):
                result.walls[name] = _seconds(record)
            if record and record["status"] != "completed":
                print(f"  {plan.label}: {name} {record['status']}: {record.get('error')}", flush=True)
    finally:
        for client in (api, control, browser):
            client.close()
    return result


def measure_row(plan: Plan, source: Source, options: Options, folder: Path) -> RowResult:
    """Serve the app as ``plan`` says, measure idle then busy, stop every process of the row."""
    instance = folder / plan.label.replace(" ", "-").replace(":", "-")
    instance.mkdir(mode=0o700)
    group = ProcessGroup(instance / "logs")
    try:
        return asyncio.run(_measure(plan, source, options, group, instance))
    finally:
        group.stop()


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
        # A failed request counts in the percentiles with the time it took to fail: dropping it would flatter.
        values = [s.latency * 1000 for s in samples if s.latency is not None]
        errors = sum(1 for s in samples if not s.ok)
        if not values:
            return cls(len(samples), errors, *(float("nan"),) * 5)
        lags = [(s.sent - s.due) * 1000 for s in samples if s.sent is not None]
        return cls(len(samples), errors, percentile(values, 0.50), percentile(values, 0.95),
                   percentile(values, 0.99), max(values), percentile(lags, 0.99),
                   sum(1 for s in samples if s.status == 304))


def plans(servers: list[str], shapes: list[str], scenarios: list[str]) -> Iterator[Plan]:
    for scenario in scenarios:
        for server in servers:
            for shape in shapes:
                yield Plan(server, shape, scenario)


def run_plans(selected: list[Plan], options: Options, pages: int = LIVE_PARTNER_PAGES,
              shops: int = LIVE_PAYBACK_SHOPS, progress: bool = True) -> list[RowResult]:
    """Measure each row in turn against one loopback source process."""
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-responsiveness-") as scratch:
        folder = Path(scratch)
        sources = ProcessGroup(folder / "source")
        try:
            source = start_source(sources, pages, shops)
            for plan in selected:
                if progress:
                    print(f"measuring {plan.label} ...", flush=True)
                results.append(measure_row(plan, source, options, folder))
                sources.assert_alive()
        finally:
            sources.stop()
    return results


def print_report(results: list[RowResult], options: Options) -> None:
    """One line per row, then the wall-time ratios pool vs in-thread.

    ``gen lag`` is the 99th percentile of how late this generator sent (a
    large one means the machine was short of CPU for the generator too);
    ``load`` is the 1-minute load average as the busy phase ended (2 cores);
    ``304s`` the share of job_status answers that were 304 Not Modified.
    """
    print(f"\njob_status at {options.rate:g}/s open loop (latency from each request's due time), "
          f"'/' every {options.page_every:g} s; idle {options.idle_seconds:g} s, busy until both scrapes end\n")
    print(f"{'server':<14}{'shape':<9}{'scenario':<9}"
          f"{'idle p50/p95/p99 ms':>21}{'busy p50/p95/p99 ms':>23}{'busy max':>9}{'x p95':>7}{'x p99':>7}"
          f"{'errors':>8}{'/ busy p95':>11}{'M&M s':>8}{'PAYBACK s':>10}{'gen lag':>9}{'load':>6}{'304s':>6}")
    for row in results:
        idle, busy, page = Latencies.of(row.idle), Latencies.of(row.busy), Latencies.of(row.pages_busy)
        walls = [f"{row.walls[name]:.1f}" if name in row.walls else row.outcomes.get(name, "-")
                 for name, _ in SCRAPES]
        print(f"{row.plan.server:<14}{row.plan.shape:<9}{row.plan.scenario:<9}"
              f"{idle.p50:>7.1f}{idle.p95:>7.1f}{idle.p99:>7.1f}"
              f"{busy.p50:>9.1f}{busy.p95:>7.1f}{busy.p99:>7.1f}{busy.max:>9.0f}"
              f"{busy.p95 / idle.p95:>7.1f}{busy.p99 / idle.p99:>7.1f}"
              f"{idle.errors + busy.errors:>8}{page.p95:>11.1f}{walls[0]:>8}{walls[1]:>10}"
              f"{max(idle.send_lag_p99, busy.send_lag_p99):>9.1f}{row.load:>6.1f}"
              f"{(idle.not_modified + busy.not_modified) / max(1, idle.count + busy.count):>6.0%}")
    by_key = {(row.plan.server, row.plan.shape, row.plan.scenario): row for row in results}
    for (server, shape, scenario), row in by_key.items():
        baseline = by_key.get((server, "inthread", scenario))
        if shape == "inthread" or baseline is None:
            continue
        ratios = [f"{label} {row.walls[name] / baseline.walls[name]:.2f}"
                  for name, label in (("miles_and_more", "M&M"), ("payback", "PAYBACK"))
                  if name in row.walls and name in baseline.walls]
        print(f"wall time {shape} / inthread ({server}, {scenario}): {', '.join(ratios) or '-'}")


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
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
                        help="defaults for a fast pass: flask only, pool and inthread, 5 s idle")
    args = parser.parse_args(argv)
    quick = {"servers": "flask", "shapes": "pool,inthread", "idle_seconds": 5.0}
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
    args = parse_args(argv)
    options = Options(args.rate, args.idle_seconds, args.page_every, args.max_busy_seconds, args.conditional)
    selected = list(plans(args.servers.split(","), args.shapes.split(","), args.scenarios.split(",")))
    results = run_plans(selected, options, args.pages, args.shops)
    print_report(results, options)


if __name__ == "__main__":
    main()
