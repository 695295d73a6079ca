"""Web processes that run jobs stop warmly: SIGTERM finishes or gives back the running job; kill -9 is noticed at restart."""

from __future__ import annotations

import signal
import socket
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
import requests

from job_helpers import slow_job
from job_queue import JobStatus, job_queue
from processes import ProcessGroup
from test_job_processes import REPO, process_env, wait_until

GRACE = 1.5
SERVERS = ["flask run", "gunicorn"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """One web process of the app (which runs jobs, the default shape), started and restarted by a test."""

    def __init__(self, kind: str, url: str, folder: Path) -> None:
        self.kind, self.url, self.group = kind, url, ProcessGroup(folder)
        self.process = None

    def start(self) -> None:
        port = _free_port()
        if self.kind == "flask run":
            command = [sys.executable, "-m", "flask", "--app", "app", "run", "--port", str(port), "--no-reload"]
        else:
            command = [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}",
                       "--graceful-timeout", "30", "app:create_app()"]
        self.process = self.group.start(command, cwd=REPO, env=process_env(self.url, JOBS_STOP_GRACE=GRACE),
                                        expected_to_exit=True)
        assert wait_until(lambda: self._answers(port), 60), self.group.output()

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

    def make(kind: str, url: str) -> Server:
        server = Server(kind, url, tmp_path / f"server-{len(servers)}")
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
