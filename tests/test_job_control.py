"""Job control: one run per scraper, cancel, time limits, retries with backoff, schedules' validation."""

from __future__ import annotations

import multiprocessing
import re
import time
from pathlib import Path
from typing import Callable

import pytest
import sqlalchemy as sa
from flask import Flask

from conftest import API_TOKEN, base_config
from job_helpers import counted_run, execution_times, executions
from job_queue import JobKind, JobStatus, job_queue
from jobs.kinds import if_retryable
from models import RUN_CANCELLED, ScrapeRun, Shop, db

JSON = {"Accept": "application/json", "Authorization": f"Bearer {API_TOKEN}"}
WAIT = 30


def _wait(predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def control_app(make_app, database_url: str) -> Flask:
    return make_app(DATABASE_URL=database_url, JOBS_POLL_INTERVAL=0.05, JOBS_FLUSH_INTERVAL=0.05)


def _status(app: Flask, job_id: str) -> JobStatus:
    with app.app_context():
        return job_queue.get_job(job_id).status


# -- one run per scraper ---------------------------------------------------------------------

def test_a_double_click_starts_one_run_and_the_second_gets_the_first(control_app: Flask) -> None:
    client = control_app.test_client()
    first = client.post("/admin/run_payback", headers=JSON)
    second = client.post("/admin/run_payback", headers=JSON)
    assert first.status_code == 202 and set(first.json) == {"job_id", "status"}
    assert second.status_code == 200
    assert second.json == {"job_id": first.json["job_id"], "status": "queued", "existing": True}
    other = client.post("/admin/run_scraper", headers=JSON)  # another scraper is a job of its own
    assert other.status_code == 202 and other.json["job_id"] != first.json["job_id"]
    with control_app.app_context():
        assert [job.name for job in job_queue.get_all_jobs()].count("payback") == 1


def _submit_in_another_process(config: dict, barrier, answers) -> None:
    from app import create_app

    app = create_app(config)
    with app.app_context():
        barrier.wait(30)
        submission = job_queue.submit("miles_and_more")
        answers.put((submission.job_id, submission.existing))


def test_two_processes_enqueueing_the_same_scraper_at_once_get_one_job(control_app: Flask, database_url: str,
                                                                      tmp_path: Path) -> None:
    config = base_config(tmp_path, DATABASE_URL=database_url)
    # Fresh interpreters, not forks: this test process runs threads (delivery threads woken by the cancels
    # below), and a fork copies any lock one of them holds at that moment; the child then hangs on it.
    context = multiprocessing.get_context("spawn")
    for _ in range(5):  # several rounds: the race is real every time
        with control_app.app_context():
            for job in job_queue.get_all_jobs():
                job_queue.cancel(job.id)
        barrier, answers = context.Barrier(2), context.Queue()
        racers = [context.Process(target=_submit_in_another_process, args=(config, barrier, answers))
                  for _ in range(2)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(60)
            assert racer.exitcode == 0
        results = [answers.get(timeout=5) for _ in racers]
        assert results[0][0] == results[1][0]  # the same job
        assert sorted(existing for _, existing in results) == [False, True]  # one made it, one found it
        with control_app.app_context():
            active = [job for job in job_queue.get_all_jobs() if not job.status.is_final]
            assert [job.name for job in active] == ["miles_and_more"]


# -- cancel -------------------------------------------------------------------------------------

def test_cancelling_a_queued_job_ends_it_at_once_and_it_never_runs(control_app: Flask, tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    with control_app.app_context():
        job_id = job_queue.enqueue(counted_run, args=(str(log),))
    response = control_app.test_client().post(f"/admin/jobs/{job_id}/cancel", headers=JSON)
    assert response.status_code == 200 and response.json == {"job_id": job_id, "status": "cancelled"}
    with control_app.app_context():
        assert job_queue.run_pending() == 0
        job = job_queue.get_job(job_id)
    assert job.status is JobStatus.CANCELLED and job.completed_at is not None and job.error is None
    assert executions(str(log)) == []


def test_cancelling_a_running_scrape_stops_it_within_a_step_and_changes_no_shop(make_app,
                                                                               database_url: str) -> None:
    app = make_app(DATABASE_URL=database_url, EXAMPLE_PAGE_INTERVAL=0.5, JOBS_FLUSH_INTERVAL=0.05)
    client = app.test_client()
    with app.app_context():
        job_queue.start()
        first = job_queue.submit("example").job_id  # a complete run: 24 active shops
        assert _wait(lambda: job_queue.get_job(first).status is JobStatus.COMPLETED)
        second = job_queue.submit("example").job_id
        assert _wait(lambda: job_queue.get_job(second).progress > 0)
        asked = time.monotonic()
        assert client.post(f"/admin/jobs/{second}/cancel", headers=JSON).status_code == 202
        assert _wait(lambda: job_queue.get_job(second).status.is_final)
        took = time.monotonic() - asked
        job = job_queue.get_job(second)
        assert job.status is JobStatus.CANCELLED and job.error is None, job.to_dict()
        assert job.messages[-1]["message"] == "Abgebrochen"
        assert took < 0.5 + 2  # one catalogue page (0.5 s apart) and a heartbeat, with room for a busy machine
        shops = db.session.scalars(sa.select(Shop).join(Shop.programme)).all()
        assert sum(shop.active for shop in shops) == 24  # nothing deactivated, nothing half-written
        run = db.session.scalar(sa.select(ScrapeRun).where(ScrapeRun.job_id == second))
        assert run.outcome == RUN_CANCELLED and run.finished_at is not None


def test_cancelling_a_finished_job_answers_409(control_app: Flask) -> None:
    with control_app.app_context():
        job_id = job_queue.enqueue(lambda job: "fertig")
        job_queue.run_pending()
    client = control_app.test_client()
    response = client.post(f"/admin/jobs/{job_id}/cancel", headers=JSON)
    assert response.status_code == 409 and "bereits beendet" in response.json["error"]
    assert client.post("/admin/jobs/gibt-es-nicht/cancel", headers=JSON).status_code == 404
    assert _status(control_app, job_id) is JobStatus.COMPLETED


# -- time limit ---------------------------------------------------------------------------------

def test_a_job_past_its_time_limit_is_stopped_and_fails_with_the_reason(control_app: Flask) -> None:
    with control_app.app_context():
        job_queue.register_kind(JobKind("bummler", "Bummler", "job_helpers:slow_job", time_limit=1.0))
        job_queue.start()
        job_id = job_queue.submit("bummler", args=(30.0, 300)).job_id
        assert _wait(lambda: job_queue.get_job(job_id).status.is_final, 15)
        job = job_queue.get_job(job_id)
    assert job.status is JobStatus.FAILED
    assert job.error == "Zeitlimit überschritten (1 s)"
    assert job.completed_at - job.started_at < __import__("datetime").timedelta(seconds=5)


# -- retries ------------------------------------------------------------------------------------

def test_a_retryable_failure_is_retried_with_growing_delays(make_app, database_url: str, tmp_path: Path) -> None:
    app = make_app(DATABASE_URL=database_url, JOBS_POLL_INTERVAL=0.02, JOBS_RETRY_BACKOFF=0.4)
    log = str(tmp_path / "attempts.log")
    with app.app_context():
        job_queue.register_kind(JobKind("wackelig", "Wackelig", "job_helpers:fail_retryably", max_attempts=3,
                                        retry_if=if_retryable))
        job_queue.start()
        job_id = job_queue.submit("wackelig", args=(log,)).job_id
        seen: list[dict] = []

        def waiting_for_retry() -> bool:
            seen.append(job_queue.get_job(job_id).to_dict())
            return seen[-1]["retry_at"] is not None

        assert _wait(waiting_for_retry, 10)
        assert seen[-1]["status"] == "queued" and seen[-1]["attempt"] == 1 and seen[-1]["max_attempts"] == 3
        assert _wait(lambda: job_queue.get_job(job_id).status.is_final)
        job = job_queue.get_job(job_id)
    starts = execution_times(log)
    assert len(starts) == 3 and job.status is JobStatus.FAILED and job.attempts == 3
    assert job.to_dict()["retry_at"] is None  # nothing more to wait for
    failures = [m["message"] for m in job.messages if "fehlgeschlagen" in m["message"]]
    assert [text.split(":")[0] for text in failures] == ["Versuch 1 von 3 fehlgeschlagen",
                                                        "Versuch 2 von 3 fehlgeschlagen"]
    # The waits it chose grow (0.4 s, then 0.8 s, each ±25 %), and no attempt came before its time.
    planned = [float(re.search(r"nächster Versuch in ([0-9.]+) s", text).group(1)) for text in failures]
    assert 0.3 <= planned[0] <= 0.5 and 0.6 <= planned[1] <= 1.0 and planned[0] < planned[1], planned
    waited = [later - earlier for earlier, later in zip(starts, starts[1:])]
    assert all(actual >= chosen - 0.05 for actual, chosen in zip(waited, planned)), (waited, planned)
    assert job.error == "Flaky: Verbindung abgelehnt (Versuch 3)"


def test_a_failure_that_is_not_retryable_fails_at_once(control_app: Flask, tmp_path: Path) -> None:
    log = str(tmp_path / "attempts.log")
    with control_app.app_context():
        job_queue.register_kind(JobKind("kaputt", "Kaputt", "job_helpers:fail_for_good", max_attempts=3,
                                        retry_if=if_retryable))
        job_id = job_queue.submit("kaputt", args=(log,)).job_id
        assert job_queue.run_pending() == 1
        job = job_queue.get_job(job_id)
    assert job.status is JobStatus.FAILED and job.attempts == 1 and len(executions(log)) == 1
    assert job.error == "ValueError: unbekanntes Format"


# -- schedules ------------------------------------------------------------------------------------

def test_a_bad_cron_expression_is_refused_in_german_and_nothing_is_saved(control_app: Flask) -> None:
    client = control_app.test_client()
    before = client.get("/admin/schedules", headers=JSON).json
    response = client.post("/admin/schedules/payback", headers=JSON,
                           json={"expression": "61 25 * * *", "enabled": True})
    assert response.status_code == 400
    assert "kein gültiger Cron-Ausdruck" in response.json["error"]
    assert client.get("/admin/schedules", headers=JSON).json == before
    good = client.post("/admin/schedules/payback", headers=JSON, json={"expression": "30 3 * * *", "enabled": True})
    assert good.status_code == 200 and good.json["enabled"] and good.json["next_run"]
