"""PAYBACK and Miles & More jobs end to end in offline mode (bundled samples on loopback)."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from flask import Flask

from job_queue import job_queue
from models import Programme, Shop, db
from scrapers import sources
from scrapers.example import scrape_example
from scrapers.fetcher import AddressNotAllowed, Fetcher, FetchError, FetchSettings
from scrapers.miles_and_more import scrape_miles_and_more
from scrapers.payback import scrape_payback
from scrapers.sample_server import serve_sample_data

RESULT_KEYS = {"added", "updated", "deactivated", "unparsed_rates"}


def run(app: Flask, func) -> dict:
    with app.app_context():
        job_id = job_queue.enqueue(func)
        job_queue.run_pending()
        return job_queue.get_job(job_id).to_dict()


def active_shops(app: Flask, programme: str) -> list[Shop]:
    with app.app_context():
        return db.session.scalars(
            sa.select(Shop).join(Programme).where(Programme.slug == programme, Shop.active)
        ).all()


def test_payback_offline_run_is_complete_and_idempotent(make_app) -> None:
    app = make_app(PAYBACK_PAGE_SIZE=15)  # 40 shops: three pages
    first = run(app, scrape_payback)
    assert first["status"] == "completed", first["error"]
    assert set(first["result"]) == RESULT_KEYS
    assert first["result"]["added"] == 40 and first["result"]["unparsed_rates"] >= 2
    messages = [entry["message"] for entry in first["messages"]]
    assert "Seite 3 von 3 geladen: 40 von 40 Shops" in messages
    assert any("Offline-Modus" in message for message in messages)
    assert all(shop.is_sample for shop in active_shops(app, "payback"))

    second = run(app, scrape_payback)
    assert second["result"] == {"added": 0, "updated": 0, "deactivated": 0,
                                "unparsed_rates": first["result"]["unparsed_rates"]}


def test_miles_and_more_offline_run_skips_hidden_partners(make_app) -> None:
    app = make_app(SCRAPER_HOST_CONCURRENCY=4)
    first = run(app, scrape_miles_and_more)
    assert first["status"] == "completed", first["error"]
    # 30 partner pages, of which 2 are invisible and 1 is a hidden shop
    assert first["result"] == {"added": 27, "updated": 0, "deactivated": 0, "unparsed_rates": 0}
    messages = [entry["message"] for entry in first["messages"]]
    assert "30 von 30 Partnerseiten geladen" in messages
    assert "3 Partner nicht für Kunden sichtbar: ausgelassen" in messages
    assert "1 Partner mit unbekanntem Status übernommen: 'maintenance' (1)" in messages
    assert first["progress"] == first["total_steps"]
    names = {shop.external_id for shop in active_shops(app, "miles_and_more")}
    assert "otto_de" in names and "sample_outlet_de" not in names and "muster_uhren_de" in names


@pytest.mark.parametrize("scraper, programme", [
    (scrape_payback, "payback"), (scrape_miles_and_more, "miles_and_more"), (scrape_example, "example"),
])
def test_second_offline_run_changes_nothing_and_links_are_stable(make_app, scraper, programme) -> None:
    app = make_app()
    first = run(app, scraper)
    assert first["status"] == "completed", first["error"]
    assert first["result"]["added"] > 0
    links = {shop.external_id: shop.detail_url for shop in active_shops(app, programme)}
    # Each run serves the samples on a new loopback port: no stored link may name it.
    assert not [url for url in links.values() if url and "127.0.0.1" in url]
    second = run(app, scraper)  # a new sample server, on another port
    assert (second["result"]["added"], second["result"]["updated"]) == (0, 0)
    assert {shop.external_id: shop.detail_url for shop in active_shops(app, programme)} == links


def test_miles_and_more_links_follow_the_portal_pattern(make_app) -> None:
    app = make_app()
    run(app, scrape_miles_and_more)
    otto = next(shop for shop in active_shops(app, "miles_and_more") if shop.external_id == "otto_de")
    assert otto.detail_url == "https://api2.prd.mmi.q-two-hosting.com/partner/otto_de"


def test_partner_pages_never_reach_the_bot_wall(make_app, monkeypatch) -> None:
    sites = []

    @contextmanager
    def recording(source):
        with serve_sample_data(source) as site:
            sites.append(site)
            yield site

    monkeypatch.setattr(sources, "serve_sample_data", recording)
    app = make_app()
    assert run(app, scrape_miles_and_more)["status"] == "completed"
    (site,) = sites
    assert sum(site.bot_wall_hits.values()) == 0


def test_partner_page_without_noredirect_redirects_to_a_host_that_refuses_bots() -> None:
    with serve_sample_data("miles_and_more") as site:
        wall_host = site.bot_wall_url.removeprefix("http://")
        settings = FetchSettings(min_interval=0, retries=0, allowed_hosts=(site.host, wall_host))
        with Fetcher(settings) as fetcher:
            assert b"bonded_data" in fetcher.get(f"{site.url}/partner/otto_de?noredirect=1&site=de")
            with pytest.raises(FetchError, match="HTTP 403"):
                fetcher.get(f"{site.url}/partner/otto_de")
        # Without the wall on the allow-list the redirect is not even followed.
        with Fetcher(FetchSettings(min_interval=0, retries=0, allowed_hosts=(site.host,))) as fetcher:
            with pytest.raises(AddressNotAllowed):
                fetcher.get(f"{site.url}/partner/otto_de")
        assert site.bot_wall_hits["/partner/otto_de"] == 1
