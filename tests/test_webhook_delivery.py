"""Webhook delivery on SQLite and PostgreSQL: signed posts, events, retries, and jobs never waiting for it."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from typing import Callable

import pytest
from flask import Flask

from conftest import logged_in_client
from job_helpers import create_run_log, record_run
from job_queue import JobStatus, job_queue
from models import db
from scripted_server import Reply, ScriptedServer
from test_job_processes import wait_until, workers  # noqa: F401 (fixture)
from test_webhook_signing import independent_verify
from webhook_helpers import attempts_of, create_endpoint_via_page, deliveries_of, fast_webhooks
from webhooks import dispatcher

pytestmark = pytest.mark.timeout(120)


def test_a_finished_job_is_posted_signed_with_its_json(make_app: Callable[..., Flask], database_url: str,
                                                       server: ScriptedServer) -> None:
    server.route("/hook", Reply(200, b"danke"))
    app = make_app(DATABASE_URL=database_url, **fast_webhooks(server))
    client = logged_in_client(app)
    endpoint_id, secret = create_endpoint_via_page(client, f"{server.url}/hook", events=("completed",))
    with app.app_context():
        job_id = job_queue.enqueue(lambda job: {"added": 3, "updated": 1}, name="webhook_demo")
        job_queue.run_pending()  # the receiver runs here; a delivery thread sends
        job_json = job_queue.get_job(job_id).to_dict()

    [post] = server.wait_for_posts(1, timeout=15)
    assert independent_verify(secret, post.headers, post.body)
    assert post.headers["content-type"] == "application/json" and post.headers["webhook-id"].startswith("msg_")
    message = json.loads(post.body)
    assert message["type"] == "job.completed" and message["timestamp"] == job_json["completed_at"]
    assert message["data"] == job_json  # the job's JSON, key for key
    assert wait_until(lambda: len(attempts_of(app, endpoint_id)) == 1, 10)
    [attempt] = attempts_of(app, endpoint_id)
    assert (attempt.status_code, attempt.error, attempt.number) == (200, None, 1)
    [delivery] = deliveries_of(app, endpoint_id)
    assert (delivery.status, delivery.job_id, delivery.message_id) == ("delivered", job_id, post.headers["webhook-id"])


def test_each_endpoint_gets_exactly_the_events_it_chose(make_app: Callable[..., Flask], database_url: str,
                                                        server: ScriptedServer) -> None:
    app = make_app(DATABASE_URL=database_url, **fast_webhooks(server, WEBHOOK_DELIVERY_AUTOSTART=False))
    client = logged_in_client(app)
    for path, events in (("/completed", ("completed",)), ("/failed", ("failed",)),
                         ("/cancelled", ("cancelled",)), ("/all", ("completed", "failed", "cancelled"))):
        server.route(path, Reply(200))
        create_endpoint_via_page(client, f"{server.url}{path}", events=events)
    server.route("/off", Reply(200))
    create_endpoint_via_page(client, f"{server.url}/off", enabled=False)

    def fails(job) -> None:
        raise RuntimeError("kaputt")

    with app.app_context():
        cancelled = job_queue.enqueue(lambda job: "nie")
        assert job_queue.cancel(cancelled) is JobStatus.QUEUED  # cancelled before it began: its event too
        job_queue.enqueue(lambda job: "fertig")
        job_queue.enqueue(fails)
        job_queue.run_pending()
    assert dispatcher.run_due(app) == 6

    received = Counter((post.path, json.loads(post.body)["type"]) for post in server.posts)
    assert received == Counter({("/completed", "job.completed"): 1, ("/failed", "job.failed"): 1,
                                ("/cancelled", "job.cancelled"): 1, ("/all", "job.completed"): 1,
                                ("/all", "job.failed"): 1, ("/all", "job.cancelled"): 1})
    failed = next(json.loads(p.body)["data"] for p in server.posts if p.path == "/failed")
    assert failed["status"] == "failed" and "kaputt" in failed["error"]


def _gaps(attempts) -> list[float]:
    """Seconds between the end of each attempt and the start of the next: the backoff waits."""
    return [(later.attempted_at - earlier.attempted_at).total_seconds() - earlier.duration_ms / 1000
            for earlier, later in zip(attempts, attempts[1:])]


def test_a_hanging_and_a_failing_endpoint_are_retried_while_jobs_go_on(
    make_app: Callable[..., Flask], database_url: str, server: ScriptedServer,
) -> None:
    server.route("/hangs", Reply(200, delay=4.0))  # answers long after the 1 s limit
    server.route("/fails", Reply(500, b"intern"))
    app = make_app(DATABASE_URL=database_url, **fast_webhooks(
        server, WEBHOOK_TOTAL_TIMEOUT=1.0, WEBHOOK_RETRY_FIRST_DELAY=0.3, WEBHOOK_RETRY_FOR=5.0,
        WEBHOOK_DELIVERY_THREADS=4, WEBHOOK_ENDPOINT_CONCURRENCY=4))  # each delivery's backoff on its own
    client = logged_in_client(app)
    hangs, _ = create_endpoint_via_page(client, f"{server.url}/hangs", events=("completed",))
    fails, _ = create_endpoint_via_page(client, f"{server.url}/fails", events=("completed",))
    with app.app_context():
        first = job_queue.enqueue(lambda job: {"n": 1}, name="first")
        second = job_queue.enqueue(lambda job: {"n": 2}, name="second")
        job_queue.start()  # one worker: the second job starts only after the first one's receiver returned
        assert wait_until(lambda: job_queue.get_job(second).status is JobStatus.COMPLETED, 10)
        first_job, second_job = job_queue.get_job(first), job_queue.get_job(second)

    # The jobs' own outcome is untouched by the failing endpoints.
    assert (first_job.status, first_job.result, first_job.error) == (JobStatus.COMPLETED, {"n": 1}, None)
    # The next job did not wait for the hanging delivery: it was done before that attempt gave up.
    assert wait_until(lambda: len(attempts_of(app, hangs)) >= 1, 10)
    hang = attempts_of(app, hangs)[0]
    assert hang.duration_ms >= 900 and "Zeitüberschreitung" in hang.error
    hang_ended = hang.attempted_at + timedelta(milliseconds=hang.duration_ms)
    assert second_job.completed_at.replace(tzinfo=None) < hang_ended
    print(f"next job started {(second_job.started_at - first_job.completed_at).total_seconds() * 1000:.1f} ms "
          f"after the first finished; the hanging attempt took {hang.duration_ms} ms")

    def given_up() -> bool:
        deliveries = deliveries_of(app)
        return len(deliveries) == 4 and all(d.status == "failed" for d in deliveries)  # 2 jobs x 2 endpoints

    assert wait_until(given_up, 30), [(d.status, d.attempts) for d in deliveries_of(app)]
    for endpoint_id, path, expected in ((hangs, "/hangs", "Zeitüberschreitung"), (fails, "/fails", "HTTP 500")):
        attempts = attempts_of(app, endpoint_id)
        assert server.hits[path] == len(attempts)  # every attempt recorded, and only those made
        for delivery in deliveries_of(app, endpoint_id):
            made = [a for a in attempts if a.delivery_id == delivery.id]
            assert len(made) >= 3 and delivery.attempts == len(made), made
            assert [a.number for a in made] == list(range(1, len(made) + 1))
            assert all(expected in a.error for a in made)
            assert all(a.status_code == (500 if path == "/fails" else None) for a in made)
            gaps = _gaps(made)
            assert all(later > earlier for earlier, later in zip(gaps, gaps[1:])), gaps  # growing delays
            assert "aufgegeben nach" in delivery.last_error


def test_worker_processes_deliver_each_event_once(make_app: Callable[..., Flask], database_url: str,
                                                  server: ScriptedServer, workers) -> None:
    server.route("/a", Reply(200))
    server.route("/flaky", Reply(500), Reply(200))  # the first post fails, the rest succeed
    # This process only enqueues (a web process with JOBS_RUN_IN_WEB=0) and never delivers.
    app = make_app(DATABASE_URL=database_url, JOBS_RUN_IN_WEB=False,
                   **fast_webhooks(server, WEBHOOK_DELIVERY_AUTOSTART=False))
    client = logged_in_client(app)
    a_id, a_secret = create_endpoint_via_page(client, f"{server.url}/a", events=("completed",))
    flaky_id, flaky_secret = create_endpoint_via_page(client, f"{server.url}/flaky", events=("completed",))
    jobs = 20
    with app.app_context():
        create_run_log(db.engine)
        for _ in range(jobs):
            job_queue.enqueue(record_run)
    for _ in range(2):
        workers.start(database_url, **fast_webhooks(server))

    def all_delivered() -> bool:
        deliveries = deliveries_of(app)
        return len(deliveries) == 2 * jobs and all(d.status == "delivered" for d in deliveries)

    assert wait_until(all_delivered, 60), workers.output()
    per_message = Counter((post.path, post.headers["webhook-id"]) for post in server.posts)
    assert len(per_message) == 2 * jobs
    assert Counter(per_message.values()) == Counter({1: 2 * jobs - 1, 2: 1})  # the flaky one, retried once
    assert (len(attempts_of(app, a_id)), len(attempts_of(app, flaky_id))) == (jobs, jobs + 1)
    secret_for = {"/a": a_secret, "/flaky": flaky_secret}
    assert all(independent_verify(secret_for[post.path], post.headers, post.body) for post in server.posts)
