"""A database that goes away: no outcome is lost or run twice, requests get a clean 503, the log two lines."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import pytest
from flask import Flask

import database
import jobs.connections
from conftest import API_TOKEN, pg_test_url, reset_database
from job_helpers import counted_run, executions
from job_queue import PROCESS, THREAD, JobStatus, job_queue
from tcp_proxy import TcpProxy

OUTAGE_SECONDS = 10.0
LEASE_SECONDS = 5.0  # shorter than the outage: a lost outcome would show as a second run soon after


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def _run_jobs_through_an_outage(app: Flask, log_path: Path, cut: Callable[[], None],
                                restore: Callable[[], None], isolation: str) -> list[str]:
    """Jobs of 2 s each on 2 workers; the database goes away for 10 s while they finish."""
    with app.app_context():
        ids = [job_queue.enqueue(counted_run, args=(str(log_path), 2.0), isolation=isolation) for _ in range(8)]
        job_queue.start()
        assert _wait(lambda: len(executions(str(log_path))) >= 2, 20)
        time.sleep(1.0)  # both running jobs are mid-way: they finish during the outage
        cut()
        time.sleep(OUTAGE_SECONDS)
        restore()
        assert _wait(lambda: all(job_queue.get_job(job_id).status is JobStatus.COMPLETED for job_id in ids), 90), \
            [job_queue.get_job(job_id).status for job_id in ids]
        time.sleep(2 * LEASE_SECONDS)  # a lost outcome would have its lease end and run again by now
        assert all(job_queue.get_job(job_id).status is JobStatus.COMPLETED for job_id in ids)
    return ids


def _assert_each_ran_once(ids: list[str], log_path: Path) -> None:
    counts = Counter(executions(str(log_path)))
    assert {job_id: counts[job_id] for job_id in ids} == {job_id: 1 for job_id in ids}


ISOLATIONS = [THREAD, PROCESS]  # jobs in the worker threads, and in children they supervise


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_postgresql_outage_of_10_s_while_jobs_finish_runs_every_job_exactly_once(make_app, tmp_path: Path,
                                                                                 isolation: str) -> None:
    url = pg_test_url()
    reset_database(url)
    port = urlsplit(url.replace("+psycopg", "")).port or 5432
    with TcpProxy(port) as proxy:
        via_proxy = url.replace(f":{port}/", f":{proxy.port}/")
        app = make_app(DATABASE_URL=via_proxy, JOBS_LEASE_SECONDS=LEASE_SECONDS, JOBS_WORKER_THREADS=2,
                       JOBS_POLL_INTERVAL=0.2)
        log_path = tmp_path / "executions.log"
        ids = _run_jobs_through_an_outage(app, log_path, proxy.cut, proxy.restore, isolation)
    _assert_each_ran_once(ids, log_path)


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_sqlite_locked_for_10_s_while_jobs_finish_runs_every_job_exactly_once(
    make_app, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolation: str
) -> None:
    # Writers give up after 0.5 s instead of 30 s, so a 10 s lock is an outage for them.
    for module in (database, jobs.connections):
        monkeypatch.setattr(module, "SQLITE_BUSY_TIMEOUT_SECONDS", 0.5)
    path = tmp_path / "jobs.sqlite"
    app = make_app(DATABASE_URL=f"sqlite:///{path}", JOBS_LEASE_SECONDS=LEASE_SECONDS, JOBS_WORKER_THREADS=2,
                   JOBS_POLL_INTERVAL=0.2)
    holder = sqlite3.connect(path, isolation_level=None, timeout=60)

    def lock() -> None:
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock

    log_path = tmp_path / "executions.log"
    try:
        ids = _run_jobs_through_an_outage(app, log_path, lock, holder.rollback, isolation)
    finally:
        holder.close()
    _assert_each_ran_once(ids, log_path)


@pytest.fixture
def outage_app(make_app):
    """An app on PostgreSQL through a proxy whose link the test can cut."""
    url = pg_test_url()
    reset_database(url)
    port = urlsplit(url.replace("+psycopg", "")).port or 5432
    with TcpProxy(port) as proxy:
        app = make_app(DATABASE_URL=url.replace(f":{port}/", f":{proxy.port}/"), JOBS_ENQUEUE_RETRY_SECONDS=1.0)
        yield app, proxy


def test_requests_during_an_outage_answer_503_and_the_log_has_two_lines(outage_app, caplog) -> None:
    app, proxy = outage_app
    client = app.test_client()
    bearer = {"Authorization": f"Bearer {API_TOKEN}", "Accept": "application/json"}
    assert client.get("/").status_code == 200
    caplog.clear()
    with caplog.at_level(logging.INFO):
        proxy.cut()
        answers = []
        for _ in range(5):
            answers.append(client.get("/", headers={"Accept": "text/html"}))
            answers.append(client.get("/admin/jobs", headers=bearer))
            answers.append(client.post("/admin/run_scraper", headers=bearer))
        proxy.restore()
        after = client.get("/")
    for response in answers:
        assert response.status_code == 503, response.get_data(as_text=True)[:300]
        assert response.headers["Retry-After"].isdigit()
    page, api, enqueue = answers[0], answers[1], answers[2]
    assert "nicht erreichbar" in page.get_data(as_text=True) and page.mimetype == "text/html"
    assert "nicht erreichbar" in api.json["error"] and "nicht erreichbar" in enqueue.json["error"]
    assert after.status_code == 200
    lines = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert [record.getMessage().split(": ", 1)[1][:24] for record in lines] == \
        ["Datenbank nicht erreichb", "Datenbank wieder erreich"], [r.getMessage() for r in lines]
    assert not any(record.exc_info for record in caplog.records)


def test_an_enqueue_rides_out_a_short_outage(outage_app) -> None:
    app, proxy = outage_app
    client = app.test_client()
    bearer = {"Authorization": f"Bearer {API_TOKEN}", "Accept": "application/json"}
    proxy.cut()
    threading.Timer(0.4, proxy.restore).start()
    response = client.post("/admin/run_scraper", headers=bearer)
    assert response.status_code == 202, response.get_data(as_text=True)


def test_a_scrape_through_an_outage_is_retried_with_a_german_error_and_its_run_is_closed(outage_app) -> None:
    """The database goes away while a scrape's child fetches; its store fails: an outage is temporary."""
    from loopback_sources import live_partner_pages, serve_sources
    from models import RUN_FAILED, RUN_SUCCESS, ScrapeRun, db

    app, proxy = outage_app
    with serve_sources(live_partner_pages(40, 2000), [], latency=0.1) as portal:  # about 2 s of fetching
        app.config.update(SCRAPER_SOURCES="online", MILES_AND_MORE_SITEMAP_URL=f"{portal.base}/sitemap.xml",
                          SCRAPER_ALLOWED_HOSTS=portal.base.removeprefix("http://"), SCRAPER_HOST_CONCURRENCY=2,
                          SCRAPER_MIN_INTERVAL=0, JOBS_RETRY_BACKOFF=0.5, JOBS_FLUSH_INTERVAL=0.05,
                          JOBS_POLL_INTERVAL=0.1)
        with app.app_context():
            job_id = job_queue.submit("miles_and_more").job_id
            job_queue.start()
            assert _wait(lambda: job_queue.get_job(job_id).progress >= 5, 30)
            proxy.cut()  # until after the fetching: the child's store finds no database
            time.sleep(4.0)
            proxy.restore()
            assert _wait(lambda: job_queue.get_job(job_id).status.is_final, 60), job_queue.get_job(job_id).to_dict()
            job = job_queue.get_job(job_id)
            db.session.remove()
            db.engine.dispose()  # this test's own pooled connections did not live through the cut
            runs = db.session.scalars(db.select(ScrapeRun.outcome).where(ScrapeRun.job_id == job_id)
                                      .order_by(ScrapeRun.id)).all()
    assert job.status is JobStatus.COMPLETED and job.attempts == 2, job.to_dict()
    failed = [m["message"] for m in job.messages if m["message"].startswith("Versuch 1 von")]
    assert failed and "Datenbank nicht erreichbar" in failed[0], [m["message"] for m in job.messages]
    assert "SELECT" not in failed[0] and "INSERT" not in failed[0] and "UPDATE" not in failed[0]
    assert list(runs) == [RUN_FAILED, RUN_SUCCESS]  # the first attempt's run is not left "running"


def test_an_outage_costs_the_postgresql_listener_two_lines_and_no_traceback(outage_app, caplog,
                                                                            tmp_path: Path) -> None:
    app, proxy = outage_app
    log_path = tmp_path / "runs.log"
    with app.app_context():
        job_queue.start()
    time.sleep(0.5)  # the listener is connected
    with caplog.at_level(logging.INFO):
        proxy.cut()
        time.sleep(4.0)  # several reconnection attempts at JOBS_POLL_INTERVAL (1 s)
        proxy.restore()
        with app.app_context():
            job_id = job_queue.enqueue(counted_run, args=(str(log_path), 0.0))
            assert _wait(lambda: job_queue.get_job(job_id).status is JobStatus.COMPLETED, 30)
        time.sleep(1.5)  # the listener is back
    noisy = [record for record in caplog.records if record.exc_info]
    assert noisy == [], [record.getMessage() for record in noisy]
    warnings = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) <= 2 and "nicht erreichbar" in warnings[0], warnings
