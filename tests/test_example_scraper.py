"""The Example scraper end to end against loopback, and its pure parts."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask import Flask

from job_queue import JobStatus, job_queue
from models import Programme, Rate, ScrapeRun, Shop, db
from scrapers.errors import ScrapeError
from scrapers.example import parse_catalogue_page, scrape_example
from scrapers.sample_server import SAMPLE_DIR, serve_sample_data
from scripted_server import Reply, ScriptedServer

CATALOGUE = SAMPLE_DIR / "example" / "catalogue-1.html"


def run_example(app: Flask) -> dict:
    with app.app_context():
        job_id = job_queue.enqueue(scrape_example)
        job_queue.run_pending()
        return job_queue.get_job(job_id).to_dict()


def test_parse_catalogue_page_reads_shops_rates_and_pager() -> None:
    page = parse_catalogue_page(CATALOGUE.read_bytes(), "http://127.0.0.1:1/example/catalogue-1.html")
    assert (page.number, page.total_pages) == (1, 4)
    assert page.next_url == "http://127.0.0.1:1/example/catalogue-2.html"
    assert len(page.offers) == 6
    first = page.offers[0]
    assert (first.external_id, first.name) == ("ex-001", "Schuhhaus Beispiel")
    assert first.domains == ["schuhhaus-beispiel.example"]
    rate = first.rates[0].parsed
    assert (rate.raw_text, rate.rate_type, rate.value) == ("2 Punkte pro 1 €", "per_euro", 2.0)


@pytest.mark.parametrize(
    "html",
    [
        "<html><body><h1>Wartungsarbeiten</h1></body></html>",
        '<p class="pager">Seite <span class="page">x</span> von <span class="pages">4</span></p><ul class="shops"></ul>',
        '<p class="pager">Seite <span class="page">1</span> von <span class="pages">1</span></p>'
        '<ul class="shops"><li class="shop"><a class="name" href="/">Ohne ID</a></li></ul>',
    ],
)
def test_parse_catalogue_page_fails_clearly_on_an_unknown_shape(html: str) -> None:
    with pytest.raises(ScrapeError):
        parse_catalogue_page(html, "http://127.0.0.1:1/x.html")


def test_first_run_adds_and_second_run_changes_nothing(app: Flask) -> None:
    first = run_example(app)
    assert first["status"] == "completed"
    assert first["result"] == {"added": 24, "updated": 0, "deactivated": 0, "unparsed_rates": 1}
    second = run_example(app)
    assert second["result"] == {"added": 0, "updated": 0, "deactivated": 0, "unparsed_rates": 1}
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Shop.id))) == 24
        assert db.session.scalar(sa.select(sa.func.count(Rate.id))) == 24
        runs = db.session.scalars(sa.select(ScrapeRun).order_by(ScrapeRun.id)).all()
        assert [(run.outcome, run.added) for run in runs] == [("success", 24), ("success", 0)]
        unparsed = db.session.scalar(sa.select(Rate).where(Rate.raw_text == "Punkte auf Anfrage"))
        assert unparsed.rate_type is None and unparsed.value is None  # kept, not guessed


def test_messages_and_progress_report_each_page(app: Flask) -> None:
    snapshot = run_example(app)
    messages = [entry["message"] for entry in snapshot["messages"]]
    assert messages[0] == "Starte Example-Scraper..."
    assert [m for m in messages if m.startswith("Seite ")] == [
        f"Seite {n} von 4: 6 Shops gefunden" for n in range(1, 5)
    ]
    assert "1 Prämiensatz nicht erkannt: Originaltext gespeichert" in messages
    assert messages[-1] == "Fertig: 24 neu, 0 aktualisiert, 0 deaktiviert"


def test_unreachable_source_fails_the_job_and_keeps_existing_shops(make_app) -> None:
    app = make_app(SCRAPER_SOURCES="online")
    run_example(app)
    with serve_sample_data("example") as site:
        app.config["SCRAPER_ALLOWED_HOSTS"] = site.host
        app.config["EXAMPLE_CATALOGUE_URL"] = f"{site.url}/missing.html"
        snapshot = run_example(app)
    assert snapshot["status"] == JobStatus.FAILED.value
    assert "404" in snapshot["error"] and "missing.html" in snapshot["error"]
    assert snapshot["progress_percent"] < 100
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Shop.id)).where(Shop.active)) == 24
        last = db.session.scalars(sa.select(ScrapeRun).order_by(ScrapeRun.id.desc())).first()
        assert last.outcome == "failed" and "404" in last.message


def test_a_page_in_an_unknown_format_fails_the_job(make_app) -> None:
    app = make_app(SCRAPER_SOURCES="online")
    with serve_sample_data("example") as site:
        app.config["SCRAPER_ALLOWED_HOSTS"] = site.host
        # the server's directory listing is an HTML page, but certainly not a catalogue
        app.config["EXAMPLE_CATALOGUE_URL"] = f"{site.url}/catalogue-1.html#"
        ok = run_example(app)
        app.config["EXAMPLE_CATALOGUE_URL"] = f"{site.url}/"
        broken = run_example(app)
    assert ok["status"] == "completed"
    assert broken["status"] == "failed" and "unbekanntes Format" in broken["error"]


def test_example_scraper_writes_to_postgresql(pg_app: Flask) -> None:
    assert run_example(pg_app)["result"] == {"added": 24, "updated": 0, "deactivated": 0, "unparsed_rates": 1}
    assert run_example(pg_app)["result"] == {"added": 0, "updated": 0, "deactivated": 0, "unparsed_rates": 1}
    with pg_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Shop.id))) == 24


# -- shop links of every kind -------------------------------------------------------

ODD_LINKS = {
    "ex-abs": "https://shop.example/angebot",
    "ex-rel": "/relative",
    "ex-path": "unterseite.html",
    "ex-net": "//cdn.example/shop",
    "ex-mail": "mailto:x@y",
    "ex-js": "javascript:void(0)",
    "ex-long": "data:text/html," + "A" * 5000,
    "ex-v6": "http://[::1",  # urlsplit refuses it (ValueError)
    "ex-none": "",
}


def catalogue_with_links(links: dict[str, str], pager: str = "1</span> von <span class=\"pages\">1",
                         after: str = "") -> bytes:
    """One catalogue page whose shops carry ``links`` (shop id -> href) as they are."""
    items = "".join(
        f'<li class="shop" data-shop-id="{shop_id}"><a class="name" href="{href}">Shop {shop_id}</a>'
        '<span class="rate">1 Punkt pro 1 €</span></li>'
        for shop_id, href in links.items()
    )
    return (f'<html><body><p class="pager">Seite <span class="page">{pager}</span></p>'
            f'<ul class="shops">{items}</ul>{after}</body></html>').encode()


def catalogue_app(make_app, server: ScriptedServer, body: bytes, **config) -> Flask:
    server.route("/katalog.html", Reply(body=body, headers={"Content-Type": "text/html"}))
    return make_app(SCRAPER_SOURCES="online", EXAMPLE_CATALOGUE_URL=f"{server.url}/katalog.html",
                    SCRAPER_ALLOWED_HOSTS=server.url.removeprefix("http://"), **config)


def test_odd_shop_links_keep_the_shop_and_are_reported(make_app, server: ScriptedServer, database_url: str) -> None:
    app = catalogue_app(make_app, server, catalogue_with_links(ODD_LINKS), DATABASE_URL=database_url)
    snapshot = run_example(app)
    assert snapshot["status"] == "completed", snapshot["error"]
    assert snapshot["result"]["added"] == len(ODD_LINKS)
    with app.app_context():
        shops = {shop.external_id: shop for shop in db.session.scalars(
            sa.select(Shop).join(Programme).where(Programme.slug == "example"))}
    assert set(shops) == set(ODD_LINKS)
    links = {shop_id: (shop.detail_url, shop.domains) for shop_id, shop in shops.items()}
    assert links["ex-abs"] == ("https://shop.example/angebot", ["shop.example"])
    # A relative link leads to the catalogue's own site: a link, but no shop domain.
    assert links["ex-rel"] == (f"{server.url}/relative", [])
    assert links["ex-path"] == (f"{server.url}/unterseite.html", [])
    assert links["ex-net"] == ("http://cdn.example/shop", ["cdn.example"])  # names its host
    for shop_id in ("ex-mail", "ex-js", "ex-v6", "ex-long", "ex-none"):
        assert links[shop_id] == (None, []), shop_id
    messages = [entry["message"] for entry in snapshot["messages"]]
    (report,) = [m for m in messages if "Shop-Links unbrauchbar" in m]
    assert report.startswith("4 Shop-Links unbrauchbar"), report
    assert "'mailto:x@y'" in report and "'javascript:void(0)'" in report
    assert "AAAA…" in report and len(report) < 400  # an example is cut, not the whole 5,000 characters


def test_a_next_page_link_that_is_no_web_link_ends_the_run_as_partial(make_app, server: ScriptedServer) -> None:
    body = catalogue_with_links({"ex-abs": "https://shop.example/"}, pager='1</span> von <span class="pages">2',
                                after='<a rel="next" href="javascript:void(0)">Weiter</a>')
    app = catalogue_app(make_app, server, body)
    snapshot = run_example(app)
    assert snapshot["status"] == "completed", snapshot["error"]
    assert snapshot["result"]["added"] == 1
    messages = [entry["message"] for entry in snapshot["messages"]]
    assert "Katalog endet auf Seite 1 von 2: Lauf unvollständig, es wird nichts deaktiviert" in messages
    with app.app_context():
        assert db.session.scalars(sa.select(ScrapeRun)).one().complete is False


def test_a_nul_in_a_catalogue_link_or_name_is_stored_without_it(make_app, server: ScriptedServer,
                                                               database_url: str) -> None:
    """PostgreSQL refuses NUL in text: once a NUL in a link jammed the Example scraper until restart."""
    body = catalogue_with_links({"ex-nul": "https://shop.example/a\x00b", "ex-\x00id": "https://nul.example/"})
    body = body.replace(b"Shop ex-nul", b"Shop mit\x00NUL")
    app = catalogue_app(make_app, server, body, DATABASE_URL=database_url)
    snapshot = run_example(app)
    assert snapshot["status"] == "completed", snapshot["error"]
    with app.app_context():
        shops = {shop.external_id: shop for shop in db.session.scalars(
            sa.select(Shop).join(Programme).where(Programme.slug == "example"))}
    assert set(shops) == {"ex-nul", "ex-id"}
    stored = [shops["ex-nul"].name, shops["ex-nul"].detail_url or "", *shops["ex-nul"].domains]
    assert stored[0] == "Shop mitNUL" and not any("\x00" in text for text in stored)
