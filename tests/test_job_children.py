"""Jobs in supervised child processes: stops that always work, crashes the web does not feel.

Each test waits at most 10 s for what it checks; ``pytest -s`` prints the
measured stop latency.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Callable

import pytest
import sqlalchemy as sa
from flask import Flask

from conftest import API_TOKEN
from job_queue import PROCESS, JobKind, JobStatus, job_queue
from models import RUN_CANCELLED, RUN_SUCCESS, Rate, ScrapeRun, Shop, db
from scripted_server import Reply, ScriptedServer

JSON = {"Accept": "application/json", "Authorization": f"Bearer {API_TOKEN}"}
WAIT = 10.0


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def child_app(make_app, server: ScriptedServer, database_url: str) -> Flask:
    """An app on SQLite and on PostgreSQL whose jobs may reach the scripted server."""
    app = make_app(DATABASE_URL=database_url, JOBS_FLUSH_INTERVAL=0.05, JOBS_POLL_INTERVAL=0.05, JOBS_KILL_GRACE=2.0,
                   SCRAPER_ALLOWED_HOSTS=server.url.removeprefix("http://"), SCRAPER_TOTAL_TIMEOUT=60.0,
                   SCRAPER_TIMEOUT=30.0)
    with app.app_context():
        job_queue.warm_up().result(timeout=60)  # the fork server's first start is not what is measured
    return app


def _run_kind(app: Flask, func: str, *args: object, time_limit: float | None = None) -> str:
    with app.app_context():
        job_queue.register_kind(JobKind("probe", "Probe", func, time_limit=time_limit, isolation=PROCESS))
        job_queue.start()
        return job_queue.submit("probe", args=args).job_id


def _job(app: Flask, job_id: str):
    with app.app_context():
        return job_queue.get_job(job_id)


def _started_in_child(app: Flask, job_id: str) -> int:
    """Wait for the job's first message, which names its process; return that process id."""
    assert wait_until(lambda: len(_job(app, job_id).messages) > 0), _job(app, job_id).to_dict()
    pid = int(_job(app, job_id).messages[0]["message"].rsplit(" ", 1)[1])
    assert pid != os.getpid()
    return pid


def _ends(app: Flask, job_id: str, timeout: float = WAIT) -> tuple[object, float]:
    started = time.monotonic()
    assert wait_until(lambda: _job(app, job_id).status.is_final, timeout), _job(app, job_id).to_dict()
    return _job(app, job_id), time.monotonic() - started


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _cancel(app: Flask, job_id: str) -> None:
    assert app.test_client().post(f"/admin/jobs/{job_id}/cancel", headers=JSON).status_code == 202


def test_a_child_spinning_for_ever_ends_cancelled_at_once_after_a_cancel(child_app: Flask) -> None:
    job_id = _run_kind(child_app, "job_helpers:spin")
    pid = _started_in_child(child_app, job_id)
    _cancel(child_app, job_id)
    job, took = _ends(child_app, job_id)
    print(f"cancel of a spinning child: CANCELLED after {took:.2f} s")
    assert job.status is JobStatus.CANCELLED and job.error is None, job.to_dict()
    assert wait_until(lambda: _gone(pid), 2)


def test_a_child_spinning_past_its_time_limit_fails_with_the_reason(child_app: Flask) -> None:
    job_id = _run_kind(child_app, "job_helpers:spin", time_limit=1.0)
    _started_in_child(child_app, job_id)
    job, took = _ends(child_app, job_id)
    print(f"time limit 1 s of a spinning child: FAILED {took:.2f} s after its first message")
    assert job.status is JobStatus.FAILED and job.error == "Zeitlimit überschritten (1 s)", job.to_dict()
    assert job.completed_at - job.started_at < __import__("datetime").timedelta(seconds=4)


@pytest.mark.parametrize("stop", ["cancel", "time limit"])
def test_a_child_blocked_in_a_socket_read_of_a_dripping_source_stops_at_once(
        child_app: Flask, server: ScriptedServer, stop: str) -> None:
    server.route("/drip", Reply(body=b"x" * 1000, trickle=1.0))  # 1000 s for the body, within read timeouts
    job_id = _run_kind(child_app, "job_helpers:read_dripping", f"{server.url}/drip",
                       time_limit=1.5 if stop == "time limit" else None)
    _started_in_child(child_app, job_id)
    assert wait_until(lambda: server.hits["/drip"] == 1)
    if stop == "cancel":
        time.sleep(0.5)  # well inside the read
        _cancel(child_app, job_id)
    job, took = _ends(child_app, job_id)
    print(f"{stop} of a child blocked in a dripping read: final after {took:.2f} s")
    expected = JobStatus.CANCELLED if stop == "cancel" else JobStatus.FAILED
    assert job.status is expected, job.to_dict()
    if stop == "time limit":
        assert job.error == "Zeitlimit überschritten (1.5 s)"


def test_a_child_killed_by_sigsegv_fails_its_job_with_the_signal_named_and_the_web_answers(
        child_app: Flask) -> None:
    job_id = _run_kind(child_app, "job_helpers:crash")
    job, _ = _ends(child_app, job_id)
    assert job.status is JobStatus.FAILED, job.to_dict()
    assert "SIGSEGV" in job.error and "Speicherzugriffsfehler" in job.error
    client = child_app.test_client()
    answer = client.get(f"/admin/job_status/{job_id}", headers=JSON)
    assert answer.status_code == 200 and "SIGSEGV" in answer.json["error"]
    assert client.get("/").status_code == 200
    # The worker thread lives on: the next job runs.
    again = _run_kind(child_app, "job_helpers:slow_job", 0.1, 2)
    assert _ends(child_app, again)[0].status is JobStatus.COMPLETED


def test_thread_jobs_run_in_the_worker_thread_and_process_jobs_in_a_child(child_app: Flask) -> None:
    with child_app.app_context():
        job_queue.start()
        in_thread = job_queue.enqueue("job_helpers:slow_job", args=(0.05, 1))
        in_child = job_queue.enqueue("job_helpers:slow_job", args=(0.05, 1), isolation=PROCESS)
    assert _ends(child_app, in_thread)[0].result == os.getpid()
    assert _ends(child_app, in_child)[0].result != os.getpid()


def test_run_pending_runs_a_process_job_in_the_calling_thread(child_app: Flask) -> None:
    with child_app.app_context():
        job_id = job_queue.enqueue("job_helpers:slow_job", args=(0.05, 1), isolation=PROCESS)
        assert job_queue.run_pending() == 1
        assert job_queue.get_job(job_id).result == os.getpid()


def test_a_child_runs_with_the_configuration_of_the_app_that_enqueued_it_and_yields_the_cores(
        make_app) -> None:
    app = make_app(SCRAPER_USER_AGENT="Prüf-Agent/1.0", JOBS_NICENESS=7)
    with app.app_context():
        job_queue.start()
        job_id = job_queue.enqueue("job_helpers:config_and_niceness", args=("SCRAPER_USER_AGENT",),
                                   isolation=PROCESS)
    job, _ = _ends(app, job_id, 60)  # the fork server's first start included
    agent, niceness, pid = job.result
    assert (agent, pid != os.getpid()) == ("Prüf-Agent/1.0", True)
    # At least the setting (a fork server started by another app of this process may be nicer still);
    # the process that enqueued it keeps its own.
    assert niceness >= max(7, os.getpriority(os.PRIO_PROCESS, 0) + 1)


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="thread priorities are a Linux feature")
def test_worker_threads_yield_the_cores_to_the_web_threads(make_app) -> None:
    app = make_app(JOBS_NICENESS=10)
    own = os.getpriority(os.PRIO_PROCESS, 0)
    with app.app_context():
        job_queue.start()
        job_id = job_queue.enqueue("job_helpers:thread_niceness")
    job, _ = _ends(app, job_id)
    assert job.result == max(10, own)  # the worker thread runs nicer than the web ...
    assert os.getpriority(os.PRIO_PROCESS, 0) == own  # ... and the rest of the process keeps its priority


def test_a_database_only_this_process_sees_keeps_process_jobs_in_the_worker_thread(child_app: Flask) -> None:
    state = child_app.extensions["job_queue"]
    with child_app.app_context():
        job_id = job_queue.enqueue("job_helpers:slow_job", args=(0.01, 1), isolation=PROCESS)
        record = state.store.get(job_id)
    assert state.child_context(record) is not None  # a file: children can open it
    for private in ("sqlite://", "sqlite:///:memory:", "sqlite:///file:app?mode=memory&cache=shared&uri=true"):
        child_app.config["SQLALCHEMY_DATABASE_URI"] = private
        assert state.child_context(record) is None, private


def _stored_offers(app: Flask) -> list[tuple]:
    with app.app_context():
        return sorted(db.session.execute(
            db.select(Shop.external_id, Shop.name, Shop.detail_url, Rate.kind, Rate.raw_text, Rate.value,
                      Rate.detail, Rate.ends_at).join(Rate)
        ).all())


def test_the_miles_and_more_samples_store_the_same_offers_in_a_child_and_in_a_thread(
        make_app, tmp_path_factory) -> None:
    results = []
    for in_child in (True, False):
        app = make_app(DATABASE_URL=f"sqlite:///{tmp_path_factory.mktemp('db')}/app.sqlite")
        with app.app_context():
            job_id = job_queue.submit("miles_and_more").job_id
            if in_child:
                job_queue.start()
            else:
                job_queue.run_pending()
        job, _ = _ends(app, job_id, 60)
        assert job.status is JobStatus.COMPLETED, job.error
        results.append(_stored_offers(app))
    assert results[0] and results[0] == results[1]


CRAWL_DELAY = 0.8  # well above what starting a child costs, so an early request would show
SLACK = 0.1  # arrival times at the server jitter on a busy machine; the span only at its two ends


def test_a_scrape_in_a_child_reads_robots_txt_once_and_keeps_the_crawl_delay(make_app, server: ScriptedServer) -> None:
    from test_bounded_input import partner_page, portal_app, sitemap

    names = [f"p{i}" for i in range(7)]
    server.route("/robots.txt", Reply(body=f"User-agent: *\nCrawl-delay: {CRAWL_DELAY}\n".encode()))
    server.route("/sitemap.xml", Reply(body=sitemap(server.url, names)))
    for name in names:
        server.route(f"/partner/{name}", Reply(body=partner_page(name)))
    app = portal_app(make_app, server, SCRAPER_MIN_INTERVAL=0.2, SCRAPER_HOST_CONCURRENCY=2)
    with app.app_context():
        job_queue.start()
        job_id = job_queue.submit("miles_and_more").job_id
    job, _ = _ends(app, job_id, 60)
    assert job.status is JobStatus.COMPLETED and job.result["added"] == 7, job.error
    assert server.hits["/robots.txt"] == 1
    # Each request starts a crawl delay after the one before: the span from the sitemap to the last
    # partner page is at least that many delays. (Single gaps are no measure: one arrival delayed by
    # a busy machine makes the next gap look short.)
    starts = [moment for path, moment in server.starts if path != "/robots.txt"]
    assert len(starts) == 8
    assert starts[-1] - starts[0] >= 7 * CRAWL_DELAY - SLACK, starts[-1] - starts[0]


# -- the outcome is the truth: a stop during the store ----------------------------------------

def _paused(app: Flask, where: str, folder: Path, seconds: float = 5.0) -> tuple[str, int]:
    """Start the Example scraper in a child that pauses ``where`` (see ``job_helpers.example_pausing``).

    Returns the job's id and the child's process id once the child is there.
    """
    marker = folder / where
    with app.app_context():
        job_queue.start()
        # Named as the Example kind, whose settle rule it gets; one attempt: a kill is not retried here.
        job_id = job_queue.enqueue("job_helpers:example_pausing", args=(where, str(marker), seconds),
                                   isolation=PROCESS, name="example", max_attempts=1)
    assert wait_until(lambda: _written(marker))
    return job_id, int(marker.read_text())


def _written(marker: Path) -> bool:
    """The job wrote its process id to ``marker``: it has reached the moment it pauses at."""
    return marker.exists() and marker.read_text().strip() != ""


def _stored(app: Flask, job_id: str) -> tuple[int, list[str]]:
    with app.app_context():
        shops = db.session.scalar(sa.select(sa.func.count()).select_from(Shop))
        runs = db.session.scalars(sa.select(ScrapeRun.outcome).where(ScrapeRun.job_id == job_id)).all()
        db.session.remove()
    return shops, list(runs)


def test_a_cancel_while_the_store_commits_ends_completed_with_the_data(child_app: Flask, tmp_path: Path) -> None:
    job_id, _ = _paused(child_app, "commit", tmp_path, seconds=1.0)  # a commit within the kill grace
    _cancel(child_app, job_id)
    job, _ = _ends(child_app, job_id)
    assert job.status is JobStatus.COMPLETED and job.result["added"] == 24, job.to_dict()
    assert any("kam zu spät" in m["message"] for m in job.messages), job.messages[-3:]
    assert _stored(child_app, job_id) == (24, [RUN_SUCCESS])


def test_a_cancel_before_the_store_ends_cancelled_with_nothing_written(child_app: Flask, tmp_path: Path) -> None:
    job_id, _ = _paused(child_app, "before", tmp_path)
    _cancel(child_app, job_id)
    job, _ = _ends(child_app, job_id)
    assert job.status is JobStatus.CANCELLED, job.to_dict()
    assert _stored(child_app, job_id) == (0, [RUN_CANCELLED])


def test_a_child_killed_right_after_its_commit_ends_completed(child_app: Flask, tmp_path: Path) -> None:
    job_id, child = _paused(child_app, "committed", tmp_path)
    os.kill(child, signal.SIGKILL)
    job, _ = _ends(child_app, job_id)
    assert job.status is JobStatus.COMPLETED, job.to_dict()
    assert job.result == {"added": 24, "updated": 0, "deactivated": 0, "unparsed_rates": 1}
    assert any("SIGKILL" in m["message"] and "gespeichert" in m["message"] for m in job.messages)
    assert _stored(child_app, job_id) == (24, [RUN_SUCCESS])


def test_a_commit_longer_than_the_kill_grace_is_killed_and_ends_cancelled_with_nothing_written(
        child_app: Flask, tmp_path: Path) -> None:
    job_id, _ = _paused(child_app, "commit", tmp_path, seconds=30.0)  # JOBS_KILL_GRACE is 2 s
    _cancel(child_app, job_id)
    job, took = _ends(child_app, job_id)
    assert job.status is JobStatus.CANCELLED and took < 4, (took, job.to_dict())
    assert _stored(child_app, job_id) == (0, [RUN_CANCELLED])


def test_a_child_killed_before_its_commit_fails_and_its_run_is_closed(child_app: Flask, tmp_path: Path) -> None:
    job_id, child = _paused(child_app, "before", tmp_path)
    os.kill(child, signal.SIGKILL)
    job, _ = _ends(child_app, job_id)
    assert job.status is JobStatus.FAILED and "SIGKILL" in job.error, job.to_dict()
    assert _stored(child_app, job_id) == (0, ["failed"])
