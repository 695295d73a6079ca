"""Polling costs little: 304 for an unchanged job, bearer tokens checked once per few seconds,
and the admin JSON routes do the same work however many shops and jobs there are."""

from __future__ import annotations

from typing import Callable

import pytest
from flask import Flask

from conftest import bearer_client, logged_in_client
from job_queue import job_queue
from models import ApiToken, db
from scrapers.rates import parse_rate
from scrapers.store import Offer, OfferRate, store_offers
from sql_log import StatementLog
from views.accounts import create_api_token, revoke_api_token

JSON = {"Accept": "application/json"}


def _queued_job(app: Flask) -> str:
    """A job that waits in the queue until the test runs it, changing its JSON."""
    with app.app_context():
        return job_queue.enqueue(lambda job: None)


def test_an_unchanged_job_answers_304_with_an_empty_body_and_a_changed_one_200(app: Flask) -> None:
    job_id = _queued_job(app)
    client = bearer_client(app)
    first = client.get(f"/admin/job_status/{job_id}", headers=JSON)
    assert first.status_code == 200 and first.json["status"] == "queued"
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "no-cache"

    again = client.get(f"/admin/job_status/{job_id}", headers={**JSON, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""
    assert again.headers["ETag"] == etag

    with app.app_context():
        job_queue.run_pending()  # the job runs and completes: its JSON changes
    changed = client.get(f"/admin/job_status/{job_id}", headers={**JSON, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.json["status"] == "completed"
    assert changed.headers["ETag"] != etag


def test_a_stale_or_foreign_etag_gets_the_full_answer(app: Flask) -> None:
    job_id = _queued_job(app)
    client = bearer_client(app)
    answer = client.get(f"/admin/job_status/{job_id}", headers={**JSON, "If-None-Match": '"nope"'})
    assert answer.status_code == 200 and answer.json["id"] == job_id


def test_a_bearer_token_is_looked_up_once_then_remembered(statement_log: StatementLog, make_app: Callable[..., Flask]) -> None:
    app = make_app()
    job_id = _queued_job(app)
    with app.app_context():
        token = create_api_token("cron")
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    poll = lambda: client.get(f"/admin/job_status/{job_id}", headers=JSON).status_code == 200 or pytest.fail()  # noqa: E731

    first = statement_log.count(poll)
    token_reads = [s for s in statement_log.statements if "api_token" in s]
    assert len([s for s in token_reads if s.lstrip().upper().startswith("SELECT")]) == 1
    assert len([s for s in token_reads if s.lstrip().upper().startswith("UPDATE")]) == 1  # last_used_at
    later = [statement_log.count(poll) for _ in range(3)]
    assert all("api_token" not in s for s in statement_log.statements)
    assert later == [first - len(token_reads)] * 3
    with app.app_context():
        assert db.session.scalar(db.select(ApiToken.last_used_at).where(ApiToken.name == "cron")) is not None


def test_a_revoked_token_is_refused_at_once_in_the_revoking_process(app: Flask) -> None:
    job_id = _queued_job(app)
    with app.app_context():
        token = create_api_token("cron")
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    assert client.get(f"/admin/job_status/{job_id}", headers=JSON).status_code == 200
    with app.app_context():
        assert revoke_api_token("cron")
    refused = client.get(f"/admin/job_status/{job_id}", headers=JSON)
    assert refused.status_code == 401 and "widerrufen" in refused.json["error"]


def _shops(app: Flask, count: int) -> None:
    offers = [Offer(external_id=f"lp{i}", name=f"Shop {i}", domains=[f"shop{i}.de"],
                    rates=[OfferRate("base", parse_rate(f"{1 + i % 3} °P pro 1 €"))]) for i in range(count)]
    with app.app_context():
        store_offers("payback", offers, complete=True)


def _admin_counts(make_app: Callable[..., Flask], statement_log: StatementLog, tmp_path_factory,
                  shops: int, jobs: int) -> tuple[int, int]:
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path_factory.mktemp('db')}/app.sqlite")
    _shops(app, shops)
    with app.app_context():
        for _ in range(jobs):
            job_queue.enqueue(lambda job: job.add_message("fertig"))
        job_queue.run_pending()
    client = logged_in_client(app)
    listed = client.get("/admin/jobs", headers=JSON)
    assert listed.status_code == 200 and len(listed.json) == min(jobs, 20)
    return (
        statement_log.count(lambda: client.get("/admin/jobs", headers=JSON)),
        statement_log.count(lambda: client.get("/admin").status_code == 200 or pytest.fail()),
    )


def test_admin_routes_run_the_same_statements_for_10_and_100_shops_and_jobs(
    make_app: Callable[..., Flask], statement_log: StatementLog, tmp_path_factory
) -> None:
    few = _admin_counts(make_app, statement_log, tmp_path_factory, shops=10, jobs=10)
    many = _admin_counts(make_app, statement_log, tmp_path_factory, shops=100, jobs=100)
    assert few == many, (few, many)


def test_the_comparison_is_ranked_once_and_shows_new_offers_at_once(
    make_app: Callable[..., Flask], statement_log: StatementLog
) -> None:
    app = make_app()
    _shops(app, 30)
    client = app.test_client()
    first = statement_log.count(lambda: client.get("/").status_code == 200 or pytest.fail())
    again = statement_log.count(lambda: client.get("/").status_code == 200 or pytest.fail())
    assert again < first  # the ranking's narrow reads are not repeated while nothing changed
    with app.app_context():
        store_offers("payback", [Offer(external_id="neu", name="Brandneuer Shop", domains=["neu.de"],
                                       rates=[OfferRate("base", parse_rate("9 °P pro 1 €"))])], complete=False)
    page = client.get("/").get_data(as_text=True)
    assert "Brandneuer Shop" in page  # stored offers show on the next load, not after a minute
