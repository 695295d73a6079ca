"""Pages and API calls run a fixed number of SQL statements, however many jobs there are."""

from __future__ import annotations

from typing import Callable

import pytest
from flask import Flask

from conftest import logged_in_client
from job_queue import job_queue
from sql_log import StatementLog

def _jobs_with_messages(app: Flask, count: int) -> list[str]:
    def chatty(job) -> int:
        for step in range(5):
            job.add_message(f"Schritt {step}")
            job.set_progress(step, 5)
        return count

    with app.app_context():
        ids = [job_queue.enqueue(chatty) for _ in range(count)]
        job_queue.run_pending()
        ids.append(job_queue.enqueue(chatty))  # and one still queued
    return ids


@pytest.mark.parametrize("jobs", [3, 40])
def test_statements_per_request_do_not_grow_with_the_number_of_jobs(
    make_app: Callable[..., Flask], statement_log: StatementLog, jobs: int
) -> None:
    app = make_app()
    ids = _jobs_with_messages(app, jobs)
    client = logged_in_client(app)
    json = {"Accept": "application/json"}

    admin_page = statement_log.count(lambda: client.get("/admin").status_code == 200 or pytest.fail())
    job_status = statement_log.count(lambda: client.get(f"/admin/job_status/{ids[0]}", headers=json))
    job_list = statement_log.count(lambda: client.get("/admin/jobs", headers=json))

    # The session's admin is loaded once per request (1 statement); the rest is the page's own.
    assert admin_page <= 5, statement_log.statements
    assert job_status <= 2, statement_log.statements
    assert job_list <= 3, statement_log.statements


def test_the_counts_are_the_same_for_few_and_many_jobs(make_app: Callable[..., Flask],
                                                        statement_log: StatementLog,
                                                        tmp_path_factory) -> None:
    counts = []
    for jobs in (2, 30):
        app = make_app(DATABASE_URL=f"sqlite:///{tmp_path_factory.mktemp('db')}/jobs.sqlite")
        ids = _jobs_with_messages(app, jobs)
        client = logged_in_client(app)
        json = {"Accept": "application/json"}
        counts.append((
            statement_log.count(lambda: client.get("/admin")),
            statement_log.count(lambda: client.get(f"/admin/job_status/{ids[-2]}", headers=json)),
            statement_log.count(lambda: client.get("/admin/jobs", headers=json)),
        ))
    assert counts[0] == counts[1]


def test_reading_a_snapshot_never_queries(app: Flask, statement_log: StatementLog) -> None:
    ids = _jobs_with_messages(app, 5)
    with app.app_context():
        snapshots = job_queue.get_all_jobs(limit=20)
        reads = statement_log.count(lambda: [
            (job.status, job.progress, job.messages, job.result, job.error, job.to_dict(),
             job.get_progress_percent(), job.completed_at) for job in snapshots])
        assert reads == 0
        snapshot = job_queue.get_job(ids[0])
        assert statement_log.count(snapshot.refresh) == 1  # an explicit reload is one statement


def test_the_admin_page_with_held_runs_keeps_its_count(make_app: Callable[..., Flask],
                                                       statement_log: StatementLog) -> None:
    from models import ScrapeRun, db

    app = make_app()
    _jobs_with_messages(app, 3)
    client = logged_in_client(app)
    before = statement_log.count(lambda: client.get("/admin"))
    with app.app_context():
        for number in range(25):  # more than the page lists, a held one among the oldest
            db.session.add(ScrapeRun(scraper="payback", outcome="held" if number in (0, 24) else "success",
                                     shops_seen=516, shops_offered=0, rates_total=0, rates_understood=0,
                                     promotions=0, deactivated=516, message="nur 0 von 516",
                                     held_offers=[{"external_id": "lp1"}] * 500))
        db.session.commit()
    page = []
    assert statement_log.count(lambda: page.append(client.get("/admin").get_data(as_text=True))) == before <= 5
    assert page[0].count('class="outcome-held"') == 2


def test_the_statistics_page_runs_as_many_statements_for_1000_jobs_as_for_10(
    make_app: Callable[..., Flask], statement_log: StatementLog, tmp_path_factory
) -> None:
    counts = []
    for jobs in (10, 1000):
        app = make_app(DATABASE_URL=f"sqlite:///{tmp_path_factory.mktemp('stats')}/jobs.sqlite")
        with app.app_context():
            for index in range(jobs):
                job_queue.enqueue(lambda job, i=index: {"added": i, "updated": 0}, name="example")
            job_queue.run_pending()
        client = logged_in_client(app)
        page = statement_log.count(lambda: client.get("/admin/stats", headers={"Accept": "text/html"}))
        api = statement_log.count(lambda: client.get("/admin/stats", headers={"Accept": "application/json"}))
        counts.append((page, api))
    assert counts[0] == counts[1], counts
    assert counts[1][0] <= 4, statement_log.statements  # the admin, the runs, the folded days, the shop counts


def _app_with_shops(make_app: Callable[..., Flask], tmp_path_factory, shops: int) -> Flask:
    """An app whose PAYBACK and Miles & More each list ``shops`` shops, pairwise one merchant (a shared domain)."""
    from models import BASE, PROMOTION
    from scrapers.rates import parse_rate
    from scrapers.store import Offer, OfferRate, store_offers

    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path_factory.mktemp('shops')}/shops.sqlite")
    with app.app_context():
        for programme, unit in (("payback", "°P"), ("miles_and_more", "Meilen")):
            store_offers(programme, [
                Offer(external_id=f"{programme}-{n}", name=f"Shop {n}", domains=[f"shop{n}.example"],
                      rates=[OfferRate(BASE, parse_rate(f"{n % 5 + 1} {unit} pro 1 €")),
                             OfferRate(PROMOTION, parse_rate(f"{n % 7 + 2} {unit} pro 1 €"))])
                for n in range(shops)], complete=True)
    return app


def test_the_comparison_page_runs_as_many_statements_for_100_shops_as_for_10(
    make_app: Callable[..., Flask], statement_log: StatementLog, tmp_path_factory
) -> None:
    counts = []
    for shops in (10, 100):
        client = _app_with_shops(make_app, tmp_path_factory, shops).test_client()
        pages = []
        counts.append(statement_log.count(lambda: pages.append(client.get("/").get_data(as_text=True))))
        counts.append(statement_log.count(lambda: client.get("/", query_string={"sort": "name", "page": 2})
                                          if shops > 50 else client.get("/", query_string={"sort": "name"})))
    assert counts[0] == counts[2] and counts[1] == counts[3], counts
    assert counts[0] <= 6, statement_log.statements


def test_a_shop_page_and_a_search_cost_the_same_statements_for_10_and_1000_shops(
    make_app: Callable[..., Flask], statement_log: StatementLog, tmp_path_factory
) -> None:
    """A shop page reads its merchant's shops only, not the catalogue (8.6 s at 100,000 shops before)."""
    import sqlalchemy as sa

    from models import Shop, db

    counts = []
    for shops in (10, 1000):
        app = _app_with_shops(make_app, tmp_path_factory, shops)
        with app.app_context():
            shop_id = db.session.scalar(sa.select(Shop.id).where(Shop.external_id == "payback-3"))
        client = app.test_client()
        client.get("/")  # the ranking is kept per process: built once, as after any change of the data
        page = []
        counts.append((statement_log.count(lambda: page.append(client.get(f"/shop/{shop_id}"))),
                       statement_log.count(lambda: client.get("/", query_string={"q": "shop 3"}))))
        assert page[0].status_code == 200 and page[0].get_data(as_text=True).count('class="offer') >= 2
    assert counts[0] == counts[1], (counts, statement_log.statements)
