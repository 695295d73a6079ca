"""Processes that run jobs stop warmly: SIGTERM finishes or gives back the running job; kill -9 is noticed at restart.

Every serving shape (``flask run``, gunicorn, ``flask worker``), with thread
jobs and with scrapes in supervised child processes.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
import requests

from job_helpers import slow_job
from job_queue import PROCESS, JobStatus, job_queue
from loopback_sources import live_partner_pages, serve_sources
from models import RUN_INTERRUPTED, RUN_SUCCESS, ScrapeRun, db
from processes import ProcessGroup
from test_job_processes import REPO, process_env, wait_until

GRACE = 1.5
SERVERS = ["flask run", "gunicorn"]
WORKER = "flask worker"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """One process of the app that runs jobs (a web process, the default shape, or a ``flask worker``)."""

    def __init__(self, kind: str, url: str, folder: Path, **settings: object) -> None:
        self.kind, self.url, self.group = kind, url, ProcessGroup(folder)
        self.settings = {"JOBS_STOP_GRACE": GRACE, **settings}
        self.process = None

    def start(self, own_group: bool = False) -> None:
        port = _free_port()
        if self.kind == "flask run":
            command = [sys.executable, "-m", "flask", "--app", "app", "run", "--port", str(port), "--no-reload"]
        elif self.kind == "gunicorn":
            command = [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}",
                       "--graceful-timeout", "30", "app:create_web_app()"]
        else:
            command = [sys.executable, "-m", "flask", "--app", "app", "worker"]
        self.process = self.group.start(command, cwd=REPO, env=process_env(self.url, **self.settings),
                                        expected_to_exit=True, own_group=own_group)
        started = (lambda: "läuft mit" in self.group.output()) if self.kind == WORKER else lambda: self._answers(port)
        assert wait_until(started, 60), self.group.output()

    def _answers(self, port: int) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def stop(self, sig: int) -> float:
        """Send ``sig`` and wait for the process to end; return how long that took."""
        sent = time.monotonic()
        self.process.send_signal(sig)
        self.process.wait(60)
        return time.monotonic() - sent


@pytest.fixture
def server_factory(tmp_path: Path):
    servers: list[Server] = []

    def make(kind: str, url: str, **settings: object) -> Server:
        server = Server(kind, url, tmp_path / f"server-{len(servers)}", **settings)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.group.stop()


def _job_is(app, job_id: str, predicate: Callable) -> Callable[[], bool]:
    def check() -> bool:
        with app.app_context():
            return predicate(job_queue.get_job(job_id))
    return check


@pytest.mark.parametrize("kind", SERVERS)
def test_sigterm_mid_job_lets_a_short_job_finish(make_app, server_factory, tmp_path: Path, kind: str) -> None:
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    app = make_app(DATABASE_URL=url)
    server = server_factory(kind, url)
    server.start()
    with app.app_context():
        job_id = job_queue.enqueue(slow_job, args=(1.0, 10))  # shorter than the grace
    assert wait_until(_job_is(app, job_id, lambda job: job.progress >= 1), 30), server.group.output()
    server.stop(signal.SIGTERM)
    with app.app_context():
        job = job_queue.get_job(job_id)
        assert job.status is JobStatus.COMPLETED, (job.to_dict(), server.group.output())
        assert job.attempts == 1


@pytest.mark.parametrize("kind", SERVERS)
def test_sigterm_mid_job_gives_a_long_job_back_and_a_restart_runs_it_at_once(
    make_app, server_factory, tmp_path: Path, kind: str
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    app = make_app(DATABASE_URL=url)
    server = server_factory(kind, url)
    server.start()
    with app.app_context():
        job_id = job_queue.enqueue(slow_job, args=(6.0, 60))  # longer than the grace
    assert wait_until(_job_is(app, job_id, lambda job: job.progress >= 2), 30), server.group.output()
    took = server.stop(signal.SIGTERM)
    assert took < GRACE + 10, took
    with app.app_context():
        job = job_queue.get_job(job_id)
        assert job.status is JobStatus.QUEUED, (job.to_dict(), server.group.output())
        assert job.attempts == 0  # the restart is not the job's fault
        assert any("Neustart des Servers" in m["message"] for m in job.messages)
        assert any("Langsamer Job" in m["message"] for m in job.messages)  # its own messages were kept

    restarted = time.monotonic()
    server.start()
    assert wait_until(_job_is(app, job_id, lambda job: job.status is JobStatus.RUNNING), 10), server.group.output()
    started_again = time.monotonic() - restarted
    assert wait_until(_job_is(app, job_id, lambda job: job.status is JobStatus.COMPLETED), 60)
    print(f"{kind}: stopped {took:.1f} s after SIGTERM, job running again {started_again:.1f} s after restart")


def test_a_web_process_killed_mid_job_has_its_job_requeued_at_restart(make_app, server_factory,
                                                                      tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    app = make_app(DATABASE_URL=url)
    server = server_factory("flask run", url)
    server.start()
    with app.app_context():
        job_id = job_queue.enqueue(slow_job, args=(4.0, 40))
    assert wait_until(_job_is(app, job_id, lambda job: job.progress >= 2), 30), server.group.output()
    server.stop(signal.SIGKILL)
    with app.app_context():
        assert job_queue.get_job(job_id).status is JobStatus.RUNNING  # nobody knows yet

    restarted = time.monotonic()
    server.start()
    # The lease is 30 s; the restart sees the owner's process is gone and does not wait for it.
    assert wait_until(_job_is(app, job_id, lambda job: job.attempts == 2), 10), server.group.output()
    requeued_after = time.monotonic() - restarted
    assert wait_until(_job_is(app, job_id, lambda job: job.status is JobStatus.COMPLETED), 60)
    with app.app_context():
        assert any("ohne Wartezeit" in m["message"] for m in job_queue.get_job(job_id).messages)
    print(f"kill -9: running again {requeued_after:.1f} s after the restart (lease 30 s)")


# -- scrapes in child processes ------------------------------------------------------------------

PAGES, PAGE_SECONDS = 60, 0.1  # two at a time: a scrape of about 3 s


@pytest.fixture
def portal():
    """A loopback Miles & More portal whose partner pages take a moment each."""
    with serve_sources(live_partner_pages(PAGES, 2000), [], latency=PAGE_SECONDS) as source:
        yield source


def _portal_settings(portal, grace: float) -> dict[str, object]:
    return {"SCRAPER_SOURCES": "online", "MILES_AND_MORE_SITEMAP_URL": f"{portal.base}/sitemap.xml",
            "SCRAPER_ALLOWED_HOSTS": portal.base.removeprefix("http://"), "SCRAPER_MIN_INTERVAL": 0,
            "SCRAPER_HOST_CONCURRENCY": 2, "JOBS_STOP_GRACE": grace, "JOBS_FLUSH_INTERVAL": 0.1}


def _pages_read(app, job_id: str) -> int:
    with app.app_context():
        seen = db.session.scalar(db.select(ScrapeRun.shops_seen).where(ScrapeRun.job_id == job_id)
                                 .order_by(ScrapeRun.id.desc()).limit(1))
        db.session.remove()
    return seen


def _runs(app, job_id: str) -> list[str]:
    with app.app_context():
        outcomes = db.session.scalars(db.select(ScrapeRun.outcome).where(ScrapeRun.job_id == job_id)
                                      .order_by(ScrapeRun.id)).all()
        db.session.remove()
    return list(outcomes)


@pytest.mark.parametrize("kind", [*SERVERS, WORKER])
def test_sigterm_mid_scrape_hands_the_scrape_back_and_the_restart_completes_it(
        make_app, server_factory, portal, database_url: str, kind: str) -> None:
    url = database_url
    app = make_app(DATABASE_URL=url, JOBS_RUN_IN_WEB=False)
    server = server_factory(kind, url, **_portal_settings(portal, GRACE))
    server.start()
    with app.app_context():
        job_id = job_queue.submit("miles_and_more").job_id
    assert wait_until(_job_is(app, job_id, lambda job: job.progress >= 10), 30), server.group.output()
    took = server.stop(signal.SIGTERM)
    with app.app_context():
        job = job_queue.get_job(job_id)
    assert job.status is JobStatus.QUEUED and job.attempts == 0, (job.to_dict(), server.group.output())
    assert any("Neustart des Servers" in m["message"] for m in job.messages)
    assert _runs(app, job_id) == [RUN_INTERRUPTED]  # the log says what the job says: nothing stored

    server.start()
    assert wait_until(_job_is(app, job_id, lambda job: job.status.is_final), 60), server.group.output()
    with app.app_context():
        job = job_queue.get_job(job_id)
    assert job.status is JobStatus.COMPLETED and job.result["added"] > 0, job.to_dict()
    assert _runs(app, job_id) == [RUN_INTERRUPTED, RUN_SUCCESS]
    assert _pages_read(app, job_id) == PAGES  # the whole portal, read again after the restart
    print(f"{kind}: stopped {took:.1f} s after SIGTERM mid-scrape (grace {GRACE} s); completed after the restart")


def test_sigterm_mid_scrape_lets_the_scrape_finish_within_the_grace(make_app, server_factory, portal,
                                                                    tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    app = make_app(DATABASE_URL=url, JOBS_RUN_IN_WEB=False)
    server = server_factory("flask run", url, **_portal_settings(portal, 30.0))
    server.start()
    with app.app_context():
        job_id = job_queue.submit("miles_and_more").job_id
    assert wait_until(_job_is(app, job_id, lambda job: job.progress >= 10), 30), server.group.output()
    server.stop(signal.SIGTERM)
    with app.app_context():
        job = job_queue.get_job(job_id)
    assert job.status is JobStatus.COMPLETED and job.attempts == 1, (job.to_dict(), server.group.output())
    assert _runs(app, job_id) == [RUN_SUCCESS]


def test_sigint_to_the_process_group_of_a_worker_hands_the_job_back(make_app, server_factory,
                                                                   database_url: str) -> None:
    """Ctrl-C in the worker's terminal reaches the job's child too: the worker decides, the job is not cancelled."""
    url = database_url
    app = make_app(DATABASE_URL=url, JOBS_RUN_IN_WEB=False)
    server = server_factory(WORKER, url)
    server.start(own_group=True)
    with app.app_context():
        job_id = job_queue.enqueue(slow_job, args=(30.0, 300), isolation=PROCESS)
    assert wait_until(_job_is(app, job_id, lambda job: job.progress >= 2), 30), server.group.output()
    os.killpg(server.process.pid, signal.SIGINT)
    server.process.wait(GRACE + 10)
    with app.app_context():
        job = job_queue.get_job(job_id)
    assert job.status is JobStatus.QUEUED and job.attempts == 0, (job.to_dict(), server.group.output())
    assert any("Neustart des Servers" in m["message"] for m in job.messages)


def test_kill_9_of_a_worker_ends_its_child_at_once_and_the_job_runs_again(make_app, server_factory,
                                                                         database_url: str) -> None:
    url = database_url
    app = make_app(DATABASE_URL=url, JOBS_RUN_IN_WEB=False)
    first = server_factory(WORKER, url)
    first.start()
    with app.app_context():
        job_id = job_queue.enqueue(slow_job, args=(3.0, 30), isolation=PROCESS)
    assert wait_until(_job_is(app, job_id, lambda job: job.progress >= 2), 30), first.group.output()
    with app.app_context():
        child = int(job_queue.get_job(job_id).messages[0]["message"].rsplit(" ", 1)[1])
    assert child != first.process.pid and _alive(child)
    killed = time.monotonic()
    first.stop(signal.SIGKILL)
    assert wait_until(lambda: not _alive(child), 1.0), "the child outlived its worker by a second"
    print(f"kill -9 of the worker: its child gone after {time.monotonic() - killed:.2f} s")

    second = server_factory(WORKER, url)
    second.start()
    assert wait_until(_job_is(app, job_id, lambda job: job.status.is_final), 30), second.group.output()
    with app.app_context():
        job = job_queue.get_job(job_id)
    assert job.status is JobStatus.COMPLETED and job.attempts == 2, job.to_dict()
    assert job.result not in (child, first.process.pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False
