"""A webhook is part of a job's outcome: the job-event outbox, stalled receivers, stale connections.

jobs/ writes a ``job_event`` row in the same transaction as a job's final
state; webhooks/ turns each into deliveries once, in whichever process gets
to it first. A receiver that stalls mid-answer is a failed attempt, and
holds one delivery thread, never the healthy endpoints' deliveries.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from typing import Callable

import pytest
import sqlalchemy as sa
from flask import Flask

import jobs.outcome
from conftest import logged_in_client
from database import utcnow
from job_queue import JobStatus, job_queue
from jobs.schema import job_event_table
from scripted_server import Reply, ScriptedServer
from test_job_processes import wait_until
from webhook_helpers import (StallingReceiver, attempts_of, create_endpoint_via_page, deliveries_of,
                             fast_webhooks)
from webhooks import DEFAULT_CONFIG, dispatcher

pytestmark = pytest.mark.timeout(120)


def _events(app: Flask) -> list[tuple]:
    """The job events not consumed yet: (id, job_id, status)."""
    engine = app.extensions["job_queue"].store.engine
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(
            sa.select(job_event_table.c.id, job_event_table.c.job_id, job_event_table.c.status)
            .order_by(job_event_table.c.id))]


def test_a_receiver_that_sends_only_its_status_line_then_stalls_is_not_delivered_and_is_retried(
    make_app: Callable[..., Flask], database_url: str,
) -> None:
    with StallingReceiver(stalls=1) as receiver:
        app = make_app(DATABASE_URL=database_url, WEBHOOK_ALLOWED_HOSTS=receiver.allowed_host,
                       WEBHOOK_CONNECT_TIMEOUT=2.0, WEBHOOK_READ_TIMEOUT=5.0, WEBHOOK_TOTAL_TIMEOUT=1.0,
                       WEBHOOK_RETRY_FIRST_DELAY=0.2, WEBHOOK_RETRY_JITTER=0.0, WEBHOOK_DELIVERY_AUTOSTART=False)
        client = logged_in_client(app)
        endpoint_id, _ = create_endpoint_via_page(client, receiver.url, events=("completed",))
        with app.app_context():
            job_queue.enqueue(lambda job: "fertig")
            job_queue.run_pending()
        assert dispatcher.run_due(app) == 1  # "HTTP/1.1 200 OK\r\n", then nothing: the budget ends it
        [stalled] = attempts_of(app, endpoint_id)
        assert stalled.status_code is None and "Zeitüberschreitung" in stalled.error, stalled.error
        assert 900 <= stalled.duration_ms < 4000
        [delivery] = deliveries_of(app, endpoint_id)
        assert delivery.status == "pending" and delivery.finished_at is None
        assert wait_until(lambda: dispatcher.run_due(app) == 1, 10)  # the retry, once due, gets a whole answer
    assert [(a.number, a.status_code) for a in attempts_of(app, endpoint_id)] == [(1, None), (2, 200)]
    assert [d.status for d in deliveries_of(app, endpoint_id)] == ["delivered"]
    assert len(receiver.arrivals) == 2


STALL_SECONDS = 12.0  # each stalled attempt holds its thread this long


def test_three_stalled_endpoints_do_not_delay_deliveries_to_a_healthy_one(
    make_app: Callable[..., Flask], database_url: str, server: ScriptedServer,
) -> None:
    server.route("/healthy", Reply(200))
    jobs = 5
    with StallingReceiver() as first, StallingReceiver() as second, StallingReceiver() as third:
        stalled = (first, second, third)
        hosts = ",".join([f"127.0.0.1:{server.httpd.server_port}", *(r.allowed_host for r in stalled)])
        # The delivery threads and the per-endpoint limit are the defaults: they must cope.
        app = make_app(DATABASE_URL=database_url, **fast_webhooks(
            server, WEBHOOK_ALLOWED_HOSTS=hosts, WEBHOOK_TOTAL_TIMEOUT=STALL_SECONDS,
            WEBHOOK_READ_TIMEOUT=STALL_SECONDS))
        client = logged_in_client(app)
        for receiver in stalled:  # created first: their deliveries come first in every claim order
            create_endpoint_via_page(client, receiver.url, events=("completed",))
        create_endpoint_via_page(client, f"{server.url}/healthy", events=("completed",))
        with app.app_context():
            for number in range(jobs):
                job_queue.enqueue(lambda job, number=number: number)
            job_queue.run_pending()  # each finished job wakes the delivery threads
        finished = time.monotonic()
        posts = server.wait_for_posts(jobs, timeout=2 * STALL_SECONDS, path="/healthy")
        held = [len(receiver.arrivals) for receiver in stalled]
    assert len(posts) == jobs, f"{len(posts)} of {jobs} healthy deliveries within {2 * STALL_SECONDS:g} s"
    late = [post.at - finished for post in posts]
    print(f"healthy deliveries arrived {max(late):.3f} s after the last job finished at the latest "
          f"(a stalled attempt lasts {STALL_SECONDS:g} s); attempts held by the stalled endpoints: {held}")
    # Not one stalled attempt's worth late: well under a quarter of it (about 0.05 s here when idle).
    assert max(late) < STALL_SECONDS / 4, late
    # At most WEBHOOK_ENDPOINT_CONCURRENCY threads of this process waited on each stalled endpoint.
    assert all(1 <= count <= DEFAULT_CONFIG["WEBHOOK_ENDPOINT_CONCURRENCY"] for count in held), held


def _terminate_the_apps_connections(url: str) -> int:
    """End every other session of the test database, as a database restart does (pooled ones go stale)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        ended = conn.execute(sa.text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar()
    engine.dispose()
    return int(ended or 0)


def test_a_job_finishing_while_the_pooled_connections_are_stale_still_gets_its_delivery(
    make_app: Callable[..., Flask], pg_url: str, server: ScriptedServer,
) -> None:
    server.route("/hook", Reply(200))
    # Delivery threads look by themselves only after a minute: only the job's own news wakes them.
    # No ping at checkout: it narrows the window (a connection can still die between ping and
    # query, or the database blink right after the job's final write) and must not be what
    # saves the webhook; without it the delivery side's first query fails, as in the issue.
    app = make_app(DATABASE_URL=pg_url, JOBS_POLL_INTERVAL=0.2, SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": False},
                   **fast_webhooks(server, WEBHOOK_POLL_INTERVAL=60.0))
    client = logged_in_client(app)
    create_endpoint_via_page(client, f"{server.url}/hook", events=("completed",))
    release = threading.Event()
    with app.app_context():
        job_queue.start()
        warm_up = job_queue.enqueue(lambda job: "erster")
        assert len(server.wait_for_posts(1, timeout=15)) == 1  # every pool holds connections now
        assert wait_until(lambda: [d.status for d in deliveries_of(app)] == ["delivered"], 10)
        held = job_queue.enqueue(lambda job: release.wait(20) and "zweiter")
        assert wait_until(lambda: job_queue.get_job(held).status is JobStatus.RUNNING, 10)
        assert _terminate_the_apps_connections(pg_url) >= 2
        release.set()  # it finishes now, on connections the database has dropped
        assert wait_until(lambda: job_queue.get_job(held).status is JobStatus.COMPLETED, 30)
        posts = server.wait_for_posts(2, timeout=30)
    assert [json.loads(post.body)["data"]["id"] for post in posts] == [warm_up, held]
    assert wait_until(lambda: [d.status for d in deliveries_of(app)] == ["delivered", "delivered"], 10)


def test_events_left_by_a_process_that_ended_before_delivering_are_delivered_by_the_next(
    make_app: Callable[..., Flask], database_url: str, server: ScriptedServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    server.route("/hook", Reply(200))
    first = make_app(DATABASE_URL=database_url, **fast_webhooks(server, WEBHOOK_DELIVERY_AUTOSTART=False))
    endpoint_id, _ = create_endpoint_via_page(logged_in_client(first), f"{server.url}/hook")
    # The process ends right after each final write: no job_finished, nothing else of it runs.
    monkeypatch.setattr(jobs.outcome, "announce_finished", lambda *args, **kwargs: None)
    with first.app_context():
        ids = [job_queue.enqueue(lambda job: "ok") for _ in range(3)]
        job_queue.run_pending()
    assert [job_id for _, job_id, _ in _events(first)] == ids  # written with the outcomes
    later = make_app(DATABASE_URL=database_url, **fast_webhooks(server, WEBHOOK_POLL_INTERVAL=0.5))
    dispatcher.start_automatically(later)  # as a restarted server does
    posts = server.wait_for_posts(3, timeout=20)
    assert sorted(json.loads(post.body)["data"]["id"] for post in posts) == sorted(ids)
    assert wait_until(lambda: [d.status for d in deliveries_of(later, endpoint_id)] == ["delivered"] * 3, 10)
    assert _events(later) == []  # consumed events are removed


def test_an_event_consumed_twice_makes_one_delivery(make_app: Callable[..., Flask], database_url: str,
                                                     server: ScriptedServer) -> None:
    server.route("/hook", Reply(200))
    app = make_app(DATABASE_URL=database_url, **fast_webhooks(server, WEBHOOK_DELIVERY_AUTOSTART=False))
    endpoint_id, _ = create_endpoint_via_page(logged_in_client(app), f"{server.url}/hook")
    with app.app_context():
        job_id = job_queue.enqueue(lambda job: "einmal")
        job_queue.run_pending()
    [event] = _events(app)
    assert event[1:] == (job_id, "completed")
    assert dispatcher.run_due(app) == 1
    # A consumer that recorded the deliveries and died before removing the event: it is seen again.
    engine = app.extensions["job_queue"].store.engine
    with engine.begin() as conn:
        conn.execute(job_event_table.insert().values(id=event[0], job_id=job_id, status="completed",
                                                     occurred_at=utcnow()))
    assert dispatcher.run_due(app) == 0
    assert len(deliveries_of(app, endpoint_id)) == 1 and server.hits["/hook"] == 1
    assert _events(app) == []


def test_every_final_write_records_its_event_in_the_same_transaction(make_app: Callable[..., Flask],
                                                                     database_url: str) -> None:
    app = make_app(DATABASE_URL=database_url, WEBHOOK_DELIVERY_AUTOSTART=False)
    store, token = app.extensions["job_queue"].store, app.extensions["job_queue"].token
    final = dict(progress=1, total_steps=1, result=None, error=None, traceback=None, messages=[])
    with app.app_context():
        finished, chained, following, cancelled, lost, stolen = (
            job_queue.enqueue(lambda job: None, max_attempts=1) for _ in range(6))
    assert store.cancel(cancelled, (utcnow(), "weg")) is JobStatus.QUEUED  # a queued job, cancelled
    assert store.claim_job(finished, "w:1", 30) and store.claim_job(chained, "w:2", 30)
    assert store.claim_job(lost, "w:3", 30) and store.claim_job(stolen, "w:4", 30)
    assert store.finish(finished, "w:1", status=JobStatus.COMPLETED, completed_at=utcnow(), **final)
    done, claimed = store.finish_and_claim(chained, "w:2", token, 30, status=JobStatus.FAILED,
                                           completed_at=utcnow(), **{**final, "error": "kaputt"})
    assert done and claimed.id == following
    assert not store.finish(stolen, "someone-else", status=JobStatus.COMPLETED, completed_at=utcnow(), **final)
    store.update_fields(lost, {"lease_until": utcnow() - timedelta(seconds=5), "owner": "elsewhere:1:x:w"})
    assert store.sweep() == (0, 1)  # out of attempts: FAILED as "Worker verloren"
    assert [(job_id, status) for _, job_id, status in _events(app)] == [
        (cancelled, "cancelled"), (finished, "completed"), (chained, "failed"), (lost, "failed")]
    # Housekeeping: clearing old jobs takes their unconsumed events with them.
    for job_id in (cancelled, finished, chained, lost):
        store.update_fields(job_id, {"completed_at": utcnow() - timedelta(days=3)})
    assert store.delete_finished_before(utcnow() - timedelta(days=1)) == 4
    assert _events(app) == []


def test_a_queued_job_cancelled_gets_its_webhook_at_once_not_at_the_next_poll(
    make_app: Callable[..., Flask], database_url: str, server: ScriptedServer,
) -> None:
    server.route("/hook", Reply(200))
    app = make_app(DATABASE_URL=database_url, **fast_webhooks(server, WEBHOOK_POLL_INTERVAL=60.0))
    create_endpoint_via_page(logged_in_client(app), f"{server.url}/hook", events=("cancelled",))
    dispatcher.start_automatically(app)
    time.sleep(0.5)  # the delivery threads have had their first look and now wait
    with app.app_context():
        job_id = job_queue.enqueue(lambda job: "nie")
        assert job_queue.cancel(job_id) is JobStatus.QUEUED
    [post] = server.wait_for_posts(1, timeout=10)  # far less than the 60 s poll
    assert json.loads(post.body)["type"] == "job.cancelled" and json.loads(post.body)["data"]["id"] == job_id


def test_an_endpoint_gets_no_event_of_a_job_that_ended_before_it_existed(
    make_app: Callable[..., Flask], database_url: str, server: ScriptedServer,
) -> None:
    """Events wait in the outbox until a delivery thread looks (an outage, no thread running yet): an
    endpoint added meanwhile must not be sent the news of jobs that ended before it was there."""
    server.route("/old", Reply(200))
    server.route("/new", Reply(200))
    app = make_app(DATABASE_URL=database_url, **fast_webhooks(server, WEBHOOK_DELIVERY_AUTOSTART=False))
    client = logged_in_client(app)
    create_endpoint_via_page(client, f"{server.url}/old")
    with app.app_context():
        before = job_queue.enqueue(lambda job: "vorher")
        job_queue.run_pending()
    time.sleep(0.01)  # the new endpoint is created strictly after that job's end
    create_endpoint_via_page(client, f"{server.url}/new")
    with app.app_context():
        after = job_queue.enqueue(lambda job: "nachher")
        job_queue.run_pending()
    assert dispatcher.run_due(app) == 3  # before -> /old; after -> /old and /new
    received = sorted((post.path, json.loads(post.body)["data"]["id"]) for post in server.posts)
    assert received == sorted([("/old", before), ("/old", after), ("/new", after)])
