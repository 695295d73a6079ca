"""What a person reads is German and in the site's time zone; the JSON API stays UTC with umlauts as UTF-8."""

from __future__ import annotations

from datetime import datetime
from typing import Callable

import sqlalchemy as sa
from flask import Flask

from conftest import API_TOKEN, logged_in_client
from job_queue import job_queue
from jobs.schema import message_table
from models import ScrapeRun, db
from scrapers.german_text import count_of, number_de


def test_an_unknown_page_is_a_german_page_in_the_sites_layout(client) -> None:
    for url in ("/gibt-es-nicht", "/shop/999999"):
        response = client.get(url)
        page = response.get_data(as_text=True)
        assert response.status_code == 404 and response.mimetype == "text/html"
        assert "Seite nicht gefunden" in page and 'class="site-header"' in page
        assert "Not Found" not in page


def test_a_wrong_method_is_a_german_405_page(client) -> None:
    response = client.post("/")
    page = response.get_data(as_text=True)
    assert response.status_code == 405 and "Allow" in response.headers
    assert "Methode nicht erlaubt" in page and 'class="site-header"' in page
    assert "Method Not Allowed" not in page


def test_a_crash_is_a_german_500_page_and_json_under_admin(make_app: Callable[..., Flask]) -> None:
    app = make_app(PROPAGATE_EXCEPTIONS=False)

    def crash() -> str:
        raise RuntimeError("kaputt")

    app.add_url_rule("/kaputt", "crash", crash)
    app.add_url_rule("/admin/kaputt", "admin_crash", crash)
    response = app.test_client().get("/kaputt")
    page = response.get_data(as_text=True)
    assert response.status_code == 500 and "Interner Fehler" in page and 'class="site-header"' in page
    assert "Internal Server Error" not in page and "kaputt" not in page  # no internals shown
    api = app.test_client().get("/admin/kaputt", headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert api.status_code == 500 and api.is_json and "error" in api.get_json()


def test_admin_api_errors_stay_json(client) -> None:
    response = client.get("/admin/gibt-es-nicht")
    assert response.status_code == 404 and response.is_json and "error" in response.get_json()


def test_json_keeps_umlauts_as_utf8(app: Flask) -> None:
    with app.app_context():
        job_id = job_queue.enqueue(lambda job: job.add_message("Prämien für Größen"))
        job_queue.run_pending()
    response = app.test_client().get(f"/admin/job_status/{job_id}",
                                     headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert "Prämien für Größen" in response.get_data(as_text=True)
    assert "\\u00e4" not in response.get_data(as_text=True)


def test_run_log_shows_german_outcomes_scraper_labels_and_berlin_times(app: Flask) -> None:
    with app.app_context():
        db.session.add(ScrapeRun(scraper="payback", outcome="success", started_at=datetime(2026, 7, 1, 10, 36),
                                 finished_at=datetime(2026, 7, 1, 10, 37)))
        db.session.add(ScrapeRun(scraper="example", outcome="failed", started_at=datetime(2026, 1, 5, 12, 36)))
        db.session.commit()
    page = logged_in_client(app).get("/admin").get_data(as_text=True)
    log = page[page.index('id="scrape-log"'):]
    assert "erfolgreich" in log and "fehlgeschlagen" in log
    assert ">success<" not in log and ">failed<" not in log
    assert "Beispiel-Bonusprogramm" in log and "<td>example</td>" not in log
    assert "01.07.2026 12:36:00" in log  # summer: UTC+2
    assert "05.01.2026 13:36:00" in log  # winter: UTC+1
    assert "Zeiten in Europe/Berlin" in page


def test_status_badges_keep_the_seeds_names_with_a_german_tooltip(app: Flask) -> None:
    with app.app_context():
        job_queue.enqueue(lambda job: None)
        job_queue.run_pending()
    page = logged_in_client(app).get("/admin").get_data(as_text=True)
    assert 'title="abgeschlossen">COMPLETED<' in page


def test_job_messages_are_rendered_in_the_display_zone(make_app: Callable[..., Flask]) -> None:
    app = make_app(DISPLAY_TIMEZONE="America/New_York")
    release_at = datetime(2026, 1, 5, 12, 36, 5)
    with app.app_context():
        job_id = job_queue.enqueue(lambda job: job.add_message("Hallo"))
        job_queue.run_pending()
        with db.engine.begin() as connection:  # a known moment, in winter
            connection.execute(sa.update(message_table).where(message_table.c.job_id == job_id)
                               .values(timestamp=release_at))
    page = logged_in_client(app).get(f"/admin/jobs/{job_id}", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert ">07:36:05</time>" in page  # 12:36:05 UTC in New York
    assert "Zeiten in America/New_York" in page


def test_cli_says_which_zone_it_prints(app: Flask) -> None:
    from views.accounts import create_api_token

    with app.app_context():
        create_api_token("cron")
    output = app.test_cli_runner().invoke(args=["list-tokens"]).output
    assert "Europe/Berlin" in output


def test_counts_read_in_german_singular_and_plural() -> None:
    assert count_of(1, "Prämiensatz", "Prämiensätze") == "1 Prämiensatz"
    assert count_of(2, "Prämiensatz", "Prämiensätze") == "2 Prämiensätze"
    assert count_of(0, "Seite", "Seiten") == "0 Seiten"
    assert count_of(1500, "Shop", "Shops") == "1.500 Shops"
    assert number_de(0.5) == "0,5" and number_de(1234.25) == "1.234,25"
