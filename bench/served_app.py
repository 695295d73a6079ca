"""The app served by a real server command on loopback, pointed at the loopback sources, under load.

Why a module of its own
    ``responsiveness.py`` prints the figures and ``python -m bench`` takes
    two of its rows; both need the same steps: start the sources and the
    app's processes (``flask run`` or gunicorn, with or without a
    ``flask worker``) with the environment of one row, log in with a bearer
    token, start the scrapers through the admin API, drive the open-loop
    load (``open_loop.py``) idle and then while they run, and stop every
    process it started.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Sequence

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for folder in (str(REPO), str(BENCH)):
    if folder not in sys.path:
        sys.path.insert(0, folder)

from loopback_sources import LIVE_PARTNER_PAGES, LIVE_PAYBACK_SHOPS, PAYBACK_ENDPOINT  # noqa: E402
from open_loop import HttpClient, Sample, Stream, run_streams  # noqa: E402
from processes import ProcessGroup  # noqa: E402

SHAPES: dict[str, dict[str, str]] = {
    "process": {"JOBS_PROCESS_ISOLATION": "1"},  # the default: each scrape in a child of the web process
    "thread": {"JOBS_PROCESS_ISOLATION": "0"},  # each scrape in a worker thread of the web process
    "worker": {"JOBS_RUN_IN_WEB": "0"},  # a flask worker process runs them (each in a child of its own)
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
#: How much higher than the app this load generator runs (see ``generator_priority``).
GENERATOR_PRIORITY = 5
# The loopback sources stand in for the portals' servers, which run on other machines: on this
# machine they must not take the cores the app would have. They run at the lowest priority.
SOURCE_NICENESS = 19


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


@contextmanager
def generator_priority() -> Iterator[list[str]]:
    """Run this process (the load generator) at a higher priority than the app; yield the children's prefix.

    On a 2-core machine that the scrapers saturate, the generator would wait
    for a core and send late, and the figures would show its lateness ("gen
    lag") instead of the server's. In production no load generator competes
    with the server, so the generator should cost the server as little as
    possible. Raising our priority needs root (CAP_SYS_NICE); the app's
    processes are then started with ``nice -n +5`` back at the priority they
    would have had, so other work on the machine meets them as usual. Without
    the right, everything runs at one priority and the gen lag column says
    what that cost.
    """
    before = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, before - GENERATOR_PRIORITY)
    except PermissionError:
        yield []
        return
    try:
        yield ["nice", "-n", str(GENERATOR_PRIORITY)]
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, before)


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
                "-b", f"127.0.0.1:{port}", "app:create_web_app()"]
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


def start_source(group: ProcessGroup, pages: int = LIVE_PARTNER_PAGES, shops: int = LIVE_PAYBACK_SHOPS,
                 nice: Sequence[str] = ()) -> Source:
    """Start ``loopback_sources.py`` in its own process and wait for its ``READY <port>`` line.

    ``nice`` is not used: the sources always run at ``SOURCE_NICENESS`` (see there).
    """
    process = group.start(["nice", "-n", str(SOURCE_NICENESS), sys.executable, str(BENCH / "loopback_sources.py"), "--pages", str(pages),
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


def start_app_processes(plan: Plan, group: ProcessGroup, env: dict[str, str], port: int,
                        nice: Sequence[str]) -> None:
    group.start([*nice, *server_command(plan.server, port)], cwd=REPO, env=env)
    if plan.shape == "worker":
        group.start([*nice, sys.executable, "-m", "flask", "--app", "app", "worker"], cwd=REPO, env=env)


async def wait_ready(client: HttpClient, group: ProcessGroup) -> None:
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


async def wait_final(client: HttpClient, job_ids: list[str], finals: dict[str, dict[str, Any]],
                      group: ProcessGroup, timeout: float, every: float = 0.5) -> None:
    """Record each job's JSON once it is final; the checks are not part of the measured stream.

    A server that has fallen behind may not answer a check in time: that is
    the measured stream's finding, not a reason to stop; the next check asks again.
    """
    deadline = time.monotonic() + timeout
    while len(finals) < len(job_ids) and time.monotonic() < deadline:
        group.assert_alive()
        for job_id in job_ids:
            if job_id not in finals:
                try:
                    record = await _job_json(client, job_id)
                except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
                    continue
                if record["status"] in FINAL:
                    finals[job_id] = record
        await asyncio.sleep(every)


def _seconds(record: dict[str, Any]) -> float:
    return (datetime.fromisoformat(record["completed_at"]) - datetime.fromisoformat(record["started_at"])).total_seconds()


async def _measure(plan: Plan, source: Source, options: Options, group: ProcessGroup, instance: Path,
                   nice: Sequence[str]) -> RowResult:
    token = secrets.token_urlsafe(32)
    port = free_port()
    start_app_processes(plan, group, app_environment(plan, source, instance, token), port, nice)
    api_headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    api = HttpClient("127.0.0.1", port, api_headers, REQUEST_TIMEOUT)
    control = HttpClient("127.0.0.1", port, api_headers, REQUEST_TIMEOUT)  # start and watch: not measured
    browser = HttpClient("127.0.0.1", port, {"Accept": "text/html"}, REQUEST_TIMEOUT)
    result = RowResult(plan)
    try:
        await wait_ready(control, group)
        probe = await start_job(control, "run_scraper")
        probed: dict[str, dict[str, Any]] = {}
        await wait_final(control, [probe], probed, group, START_TIMEOUT, every=0.1)

        idle = [Stream("job_status", api, options.rate, lambda i: f"/admin/job_status/{probe}",
                       options.conditional),
                Stream("page", browser, 1 / options.page_every, lambda i: "/")]
        await run_streams(idle, lambda: False, options.idle_seconds)
        result.idle, result.pages_idle = idle[0].samples, idle[1].samples
        group.assert_alive()

        ids = [await start_job(control, endpoint) for _name, endpoint in SCRAPES]
        finals: dict[str, dict[str, Any]] = {}
        watcher = asyncio.create_task(wait_final(control, ids, finals, group, options.max_busy_seconds))
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


def measure_row(plan: Plan, source: Source, options: Options, folder: Path,
                nice: Sequence[str] = ()) -> RowResult:
    """Serve the app as ``plan`` says, measure idle then busy, stop every process of the row."""
    # A folder of its own (0700) for each row, also when a row is measured more than once.
    instance = Path(tempfile.mkdtemp(prefix=plan.label.replace(" ", "-").replace(":", "-") + "-", dir=folder))
    group = ProcessGroup(instance / "logs")
    try:
        return asyncio.run(_measure(plan, source, options, group, instance, nice))
    finally:
        group.stop()

def plans(servers: list[str], shapes: list[str], scenarios: list[str]) -> Iterator[Plan]:
    """Every row of the selection, scenario by scenario, so one scenario's rows sit together."""
    for scenario in scenarios:
        for server in servers:
            for shape in shapes:
                yield Plan(server, shape, scenario)

def run_plans(selected: list[Plan], options: Options, pages: int = LIVE_PARTNER_PAGES,
              shops: int = LIVE_PAYBACK_SHOPS, progress: bool = True) -> list[RowResult]:
    """Measure each row in turn against one loopback source process."""
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-responsiveness-") as scratch, generator_priority() as nice:
        folder = Path(scratch)
        sources = ProcessGroup(folder / "source")
        try:
            source = start_source(sources, pages, shops, nice)
            for plan in selected:
                if progress:
                    print(f"measuring {plan.label} ...", flush=True)
                results.append(measure_row(plan, source, options, folder, nice))
                sources.assert_alive()
        finally:
            sources.stop()
    return results
