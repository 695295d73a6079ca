"""Accepting held runs: once, only while current, from the admin page, the API and the CLI."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from typing import Any, Callable

import pytest
import sqlalchemy as sa
from flask import Flask

from conftest import bearer_client, logged_in_client
from drift_portals import PaybackPortal
from job_queue import job_queue
from models import BASE, HINT, PROMOTION, ScrapeRun, Shop, db
from scrapers.held_runs import AcceptRefused, accept_run
from scrapers.offer_json import offers_from_json, offers_to_json
from scrapers.rates import parse_rate
from scrapers.store import Offer, OfferRate
from scripted_server import ScriptedServer

JSON = {"Accept": "application/json"}
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request) -> dict[str, Any]:
    return {} if request.param == "sqlite" else {"DATABASE_URL": request.getfixturevalue("pg_url")}


@pytest.fixture
def portal(server: ScriptedServer) -> PaybackPortal:
    return PaybackPortal(server)


@pytest.fixture
def portal_app(make_app: Callable[..., Flask], portal: PaybackPortal, database: dict[str, Any]) -> Flask:
    return make_app(**portal.config(), **database)


def run(app: Flask, portal: PaybackPortal, shops: int) -> dict:
    portal.publish(shops)
    with app.app_context():
        job_id = job_queue.enqueue(portal.scraper)
        job_queue.run_pending()
        return job_queue.get_job(job_id).to_dict()


def runs(app: Flask) -> list[tuple[int, str]]:
    with app.app_context():
        return [tuple(row) for row in db.session.execute(sa.select(ScrapeRun.id, ScrapeRun.outcome)
                                                         .order_by(ScrapeRun.id))]


def active(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count(Shop.id)).where(Shop.active))


def test_a_run_is_accepted_once_and_only_when_held(portal_app: Flask, portal: PaybackPortal) -> None:
    run(portal_app, portal, 20)
    assert run(portal_app, portal, 2)["status"] == "failed"
    client = bearer_client(portal_app)

    not_held = client.post("/admin/runs/1/accept", headers=JSON)
    assert not_held.status_code == 409
    assert not_held.json == {"error": "Lauf 1 ist nicht angehalten (Ergebnis: success): nichts zu übernehmen."}
    assert client.post("/admin/runs/2/accept", headers=JSON).status_code == 200
    assert active(portal_app) == 2
    twice = client.post("/admin/runs/2/accept", headers=JSON)
    assert twice.status_code == 409 and twice.json["error"].startswith("Lauf 2 wurde schon übernommen (")
    assert "API-Token ADMIN_API_TOKEN" in twice.json["error"]
    missing = client.post("/admin/runs/99/accept", headers=JSON)
    assert (missing.status_code, missing.json) == (404, {"error": "Lauf 99 nicht gefunden."})
    assert runs(portal_app) == [(1, "success"), (2, "accepted")]
    # The accepted run is the new baseline: 2 shops, so 2 again passes.
    assert run(portal_app, portal, 2)["status"] == "completed"


def test_a_newer_applied_run_makes_a_held_run_stale(portal_app: Flask, portal: PaybackPortal) -> None:
    run(portal_app, portal, 20)
    assert run(portal_app, portal, 0)["status"] == "failed"  # held: the source answered an empty list
    assert run(portal_app, portal, 20)["status"] == "completed"  # the next day all is back
    assert runs(portal_app) == [(1, "success"), (2, "superseded"), (3, "success")]

    refused = bearer_client(portal_app).post("/admin/runs/2/accept", headers=JSON)
    assert refused.status_code == 409
    assert refused.json["error"] == ("Lauf 2 ist überholt: ein neuerer Lauf von payback wurde übernommen "
                                     "und ist aktueller. Nichts geändert.")
    cli = portal_app.test_cli_runner().invoke(args=["runs", "accept", "2"])
    assert cli.exit_code == 1 and "Lauf 2 ist überholt" in cli.output
    assert active(portal_app) == 20
    with portal_app.app_context():
        stale = db.session.get(ScrapeRun, 2)
        assert stale.message.endswith("– überholt: Lauf 3 wurde später übernommen")
        held_offers = db.session.scalar(sa.select(ScrapeRun.held_offers).where(ScrapeRun.id == 2))
        assert held_offers is None  # its offers are dropped


def test_accepting_the_newer_of_two_held_runs_retires_the_older(portal_app: Flask, portal: PaybackPortal) -> None:
    run(portal_app, portal, 20)
    run(portal_app, portal, 5)
    run(portal_app, portal, 4)  # still compared with run 1, the last applied one
    assert runs(portal_app) == [(1, "success"), (2, "held"), (3, "held")]
    listed = portal_app.test_cli_runner().invoke(args=["runs", "held"])
    assert [line.split("\t")[:2] for line in listed.output.splitlines()] == [["2", "payback"], ["3", "payback"]]

    accepted = portal_app.test_cli_runner().invoke(args=["runs", "accept", "3"])
    assert accepted.exit_code == 0, accepted.output
    assert accepted.output == "Lauf 3 (payback) übernommen: 0 neu, 0 aktualisiert, 16 deaktiviert.\n"
    assert runs(portal_app) == [(1, "success"), (2, "superseded"), (3, "accepted")]
    assert active(portal_app) == 4


def test_the_admin_page_marks_a_held_run_and_accepts_it_from_its_row(make_app, portal: PaybackPortal) -> None:
    app = make_app(**portal.config())
    run(app, portal, 20)
    run(app, portal, 3)
    client = logged_in_client(app)
    page = client.get("/admin").get_data(as_text=True)
    assert 'id="held-banner"' in page and "1 Lauf angehalten (PAYBACK #2)" in page
    row = page[page.index('<tr class="outcome-held" data-run-id="2">'):]
    row = row[:row.index("</tr>")]
    assert "ANGEHALTEN – Formatänderung?" in row
    assert "nur 3 Partner angeboten, letzter Lauf 20 (Grenze 70 %)" in row
    assert "3 angeboten" in row and "17 würden deaktiviert" in row
    assert 'action="/admin/runs/2/accept"' in row and "Lauf 2 übernehmen: 17 deaktivieren" in row

    no_csrf = client.post("/admin/runs/2/accept", headers=BROWSER)
    assert no_csrf.status_code == 400 and active(app) == 20
    assert app.test_client().post("/admin/runs/2/accept", headers=JSON).status_code == 401

    accepted = client.post("/admin/runs/2/accept", headers=BROWSER, data={"csrf_token": client.csrf_token})
    assert accepted.status_code == 302 and accepted.headers["Location"].endswith("/admin")
    page = client.get("/admin").get_data(as_text=True)
    assert "Lauf 2 (payback) übernommen: 0 neu, 0 aktualisiert, 17 deaktiviert" in page
    assert "ÜBERNOMMEN" in page and "Übernommen von admin am " in page
    assert 'id="held-banner"' not in page and "/admin/runs/2/accept" not in page
    assert active(app) == 3

    again = client.post("/admin/runs/2/accept", headers=BROWSER, data={"csrf_token": client.csrf_token})
    assert again.status_code == 302
    assert "Lauf 2 wurde schon übernommen" in client.get("/admin").get_data(as_text=True)


def test_a_held_run_stays_on_the_admin_page_and_in_the_api_behind_newer_runs(make_app, portal: PaybackPortal) -> None:
    app = make_app(**portal.config())
    run(app, portal, 20)
    run(app, portal, 3)  # held
    for _ in range(21):  # newer runs of another source
        with app.app_context():
            db.session.add(ScrapeRun(scraper="example", outcome="success", is_sample=True))
            db.session.commit()
    listed = bearer_client(app).get("/admin/runs").json
    assert len(listed) == 21 and listed[-1]["id"] == 2 and listed[-1]["outcome"] == "held"
    assert (listed[-1]["shops_offered"], listed[-1]["deactivated"]) == (3, 17)
    assert 'data-run-id="2"' in logged_in_client(app).get("/admin").get_data(as_text=True)


def test_offers_survive_the_json_round_trip() -> None:
    offers = [Offer(
        external_id="lp1", name="OTTO", slug="otto", detail_url="https://www.payback.de/shop/otto",
        domains=["otto.de"], categories=["fashion"], source_status="online",
        rates=[OfferRate(BASE, parse_rate("2 °P pro 1 €")),
               OfferRate(PROMOTION, parse_rate("10-fach °P"), "bis 31.12.2026", datetime(2026, 12, 31, 23, 59, 59)),
               OfferRate(HINT, parse_rate("Gutschein"), None, None)],
    )]
    assert offers_from_json(json.loads(json.dumps(offers_to_json(offers)))) == offers


def test_two_admins_accepting_at_once_apply_the_run_once(portal_app: Flask, portal: PaybackPortal) -> None:
    run(portal_app, portal, 20)
    run(portal_app, portal, 2)
    barrier, answers = threading.Barrier(2), []

    def accept(name: str) -> None:
        with portal_app.app_context():
            barrier.wait(timeout=10)
            try:
                accept_run(2, name)
                answers.append("accepted")
            except AcceptRefused as exc:
                answers.append(str(exc))

    threads = [threading.Thread(target=accept, args=(name,)) for name in ("erster", "zweiter")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert answers.count("accepted") == 1 and len(answers) == 2
    assert [answer for answer in answers if answer != "accepted"][0].startswith("Lauf 2 wurde schon übernommen")
    assert active(portal_app) == 2 and runs(portal_app) == [(1, "success"), (2, "accepted")]
