"""Jobs across processes: exactly once, crash recovery, restarts, several web workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Iterator

import pytest
import requests
from flask import Flask

from conftest import API_TOKEN, pg_test_url, reset_database
from processes import ProcessGroup
from job_helpers import create_run_log, record_run, runs, slow_job
from job_queue import JobStatus, job_queue
from database import utcnow as utcnow_naive
from jobs.maintenance import WORKER_LOST
from models import db

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent


def wait_until(predicate: Callable[[], bool], timeout: float, every: float = 0.05) -> bool:
    """Poll another process's progress through the database (no event crosses processes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return predicate()


def process_env(url: str, **settings: object) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("JOBS_", "FLASK_"))}
    env.update({
        "DATABASE_URL": url,
        "SECRET_KEY": "test-only-secret-key-0123456789abcdef",
        "ADMIN_API_TOKEN": API_TOKEN,
        "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO)]),
        "JOBS_POLL_INTERVAL": "0.2",
    })
    env.update({key: str(value) for key, value in settings.items()})
    return env


class Workers:
    """``flask worker`` processes started by a test; at the end each must still run (or have exited on purpose)."""

    def __init__(self, tmp_path: Path) -> None:
        self.group = ProcessGroup(tmp_path)

    def start(self, url: str, *args: str, **settings: object) -> subprocess.Popen:
        return self.group.start([sys.executable, "-m", "flask", "--app", "app", "worker", *args], cwd=REPO,
                                env=process_env(url, **settings), expected_to_exit="--until-empty" in args)

    def kill(self, process: subprocess.Popen) -> None:
        """kill -9, as a crash would."""
        self.group.expect_exit(process)
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def output(self) -> str:
        return self.group.output()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    started = Workers(tmp_path)
    try:
        yield started
        started.group.assert_alive()  # a worker that died mid-test fails it loudly, with its output
    finally:
        started.group.stop()


def enqueuing_app(make_app, url: str, **overrides) -> Flask:
    """An app that only enqueues, like a web process with JOBS_RUN_IN_WEB=0."""
    return make_app(DATABASE_URL=url, JOBS_RUN_IN_WEB=False, **overrides)


def test_every_job_runs_exactly_once_across_worker_processes(make_app, database_url, workers) -> None:
    count = 4 if database_url.startswith("postgresql") else 2
    app = enqueuing_app(make_app, database_url)
    with app.app_context():
        create_run_log(db.engine)
        ids = [job_queue.enqueue(record_run) for _ in range(1000)]
    started = [workers.start(database_url, "--until-empty") for _ in range(count)]
    for process in started:
        assert process.wait(180) == 0, workers.output()

    with app.app_context():
        logged = runs(db.engine)
        statuses = Counter(job.status for job in job_queue.get_all_jobs())
    counts = Counter(job_id for job_id, _ in logged)
    duplicates = [job_id for job_id, seen in counts.items() if seen > 1]
    misses = set(ids) - set(counts)
    assert (len(duplicates), len(misses)) == (0, 0)
    assert statuses == {JobStatus.COMPLETED: 1000}
    assert len({pid for _, pid in logged}) == count  # every process took part
    assert "database is locked" not in workers.output()


def test_a_killed_worker_s_job_is_requeued_and_completed(make_app, database_url, workers) -> None:
    lease = 2.0
    app = enqueuing_app(make_app, database_url, JOBS_LEASE_SECONDS=lease)
    with app.app_context():
        job_id = job_queue.enqueue(slow_job, args=(3.0,))
    first = workers.start(database_url, JOBS_LEASE_SECONDS=lease)
    with app.app_context():
        assert wait_until(lambda: job_queue.get_job(job_id).progress >= 2, 30), workers.output()
        workers.kill(first)
        killed_at = time.monotonic()
        second = workers.start(database_url, "--until-empty", JOBS_LEASE_SECONDS=lease)
        assert wait_until(lambda: job_queue.get_job(job_id).attempts == 2, 30), workers.output()
        requeue_delay = time.monotonic() - killed_at
        assert second.wait(60) == 0, workers.output()
        job = job_queue.get_job(job_id)
        assert job.status is JobStatus.COMPLETED and job.result == second.pid
        assert any("neu eingereiht (Versuch 2 von 3)" in m["message"] for m in job.messages)
    print(f"requeued {requeue_delay:.2f} s after kill -9 (lease {lease} s)")
    # a lease of 2 s, a sweep every lease/4 and a fresh process starting: well under 3 leases
    assert requeue_delay < 3 * lease + 3, requeue_delay


def test_a_job_out_of_attempts_fails_as_worker_lost(make_app, database_url, workers) -> None:
    app = enqueuing_app(make_app, database_url, JOBS_LEASE_SECONDS=1.0, JOBS_MAX_ATTEMPTS=1)
    with app.app_context():
        job_id = job_queue.enqueue(slow_job, args=(30.0,))
        first = workers.start(database_url, JOBS_LEASE_SECONDS=1.0)
        assert wait_until(lambda: job_queue.get_job(job_id).status is JobStatus.RUNNING, 30), workers.output()
        workers.kill(first)
        workers.start(database_url, JOBS_LEASE_SECONDS=1.0)
        assert wait_until(lambda: job_queue.get_job(job_id).status is JobStatus.FAILED, 30), workers.output()
        job = job_queue.get_job(job_id)
        assert WORKER_LOST in job.error and job.completed_at is not None


def test_a_late_write_from_a_worker_whose_lease_was_taken_changes_nothing(make_app, database_url) -> None:
    app = enqueuing_app(make_app, database_url)
    with app.app_context():
        job_id = job_queue.enqueue(record_run)
        store = app.extensions["job_queue"].store
        first = store.claim("worker-a", "token-a", lease_seconds=60)
        store.update_fields(job_id, {"lease_until": utcnow_naive()})  # worker a goes silent
        assert store.sweep() == (1, 0)
        second = store.claim("worker-b", "token-b", lease_seconds=60)
        assert first.id == second.id == job_id
        assert store.heartbeat(job_id, "worker-b", 60, 5, 10, [(utcnow_naive(), "b arbeitet")])

        before = store.get(job_id)
        assert not store.heartbeat(job_id, "worker-a", 60, 9, 10, [(utcnow_naive(), "a lebt noch")])
        assert not store.finish(job_id, "worker-a", status="completed", progress=10, total_steps=10,
                                result="von a", error=None, traceback=None, completed_at=utcnow_naive(),
                                messages=[(utcnow_naive(), "a ist fertig")])
        after = store.get(job_id)
        assert after == before
        assert (after.owner, after.status, after.progress) == ("worker-b", "running", 5)
        assert not any(text.startswith("a ") for _, text in after.messages)


def test_queued_jobs_survive_a_restart(make_app, database_url) -> None:
    first = make_app(DATABASE_URL=database_url)  # JOBS_AUTOSTART off: nothing runs yet
    with first.app_context():
        create_run_log(db.engine)
        ids = [job_queue.enqueue(record_run) for _ in range(20)]
    from conftest import _dispose

    _dispose(first)  # the app stops with 20 jobs queued

    second = make_app(serving=True, DATABASE_URL=database_url, TESTING=False, JOBS_AUTOSTART=True)  # a web process
    with second.app_context():
        assert job_queue.is_running()
        assert wait_until(
            lambda: all(job_queue.get_job(job_id).status is JobStatus.COMPLETED for job_id in ids), 30)
        assert sorted(job_id for job_id, _ in runs(db.engine)) == sorted(ids)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_job_status_from_several_web_processes(make_app, workers, tmp_path: Path) -> None:
    url = pg_test_url()
    reset_database(url)
    app = enqueuing_app(make_app, url)
    port = free_port()
    access_log = tmp_path / "access.log"
    web = ProcessGroup(tmp_path / "web")
    web.start(
        [sys.executable, "-m", "gunicorn", "-w", "3", "-b", f"127.0.0.1:{port}",
         "--access-logfile", str(access_log), "--access-logformat", "%(p)s %(s)s",
         "app:create_web_app()"],
        cwd=REPO, env=process_env(url, JOBS_RUN_IN_WEB=0),
    )
    try:
        base = f"http://127.0.0.1:{port}"
        assert wait_until(lambda: _up(base), 30)
        with app.app_context():
            job_id = job_queue.enqueue(slow_job, args=(4.0, 40))
        workers.start(url)
        headers = {"Authorization": f"Bearer {API_TOKEN}"}
        answers = []
        for _ in range(200):
            response = requests.get(f"{base}/admin/job_status/{job_id}", headers=headers, timeout=5)
            answers.append((response.status_code, response.json()["progress"]))
            time.sleep(0.015)
        web.assert_alive()
    finally:
        web.stop()
    codes = [code for code, _ in answers]
    progress = [value for _, value in answers]
    assert codes == [200] * 200
    assert progress == sorted(progress) and progress[-1] > progress[0]  # moving, never backwards
    served_by = Counter(line.split()[0] for line in access_log.read_text().splitlines() if line.strip())
    assert len(served_by) >= 2, served_by  # the polls really were spread over several processes


def _up(base: str) -> bool:
    try:
        return requests.get(f"{base}/", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def test_a_separate_worker_on_sqlite_wakes_for_a_new_job_without_waiting_for_its_poll(
        make_app, workers, tmp_path: Path) -> None:
    """No NOTIFY on SQLite: the worker watches the database's change counter, so a click on "Run" does not
    sit in "queued" until the next poll (here 60 s, far longer than the wait below)."""
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    app = enqueuing_app(make_app, url)
    with app.app_context():
        create_run_log(db.engine)
    workers.start(url, JOBS_POLL_INTERVAL=60)
    time.sleep(3.0)  # the worker is up, has looked once and now waits
    with app.app_context():
        for _ in range(3):
            job_id = job_queue.enqueue(record_run)
            assert wait_until(lambda: job_queue.get_job(job_id).status is JobStatus.COMPLETED, 15), \
                workers.output()[-2000:]
