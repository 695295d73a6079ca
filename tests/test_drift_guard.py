"""The drift guard per source: a run far off the last one changes nothing, says why, and waits for an admin.

Each source runs end to end against its live format on a loopback portal
(``drift_portals.py``), on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
import sqlalchemy as sa
from flask import Flask

from conftest import bearer_client
from drift_portals import PORTALS, Portal
from job_queue import job_queue
from models import Programme, Rate, ScrapeRun, Shop, db
from scripted_server import ScriptedServer

JSON = {"Accept": "application/json"}


@pytest.fixture(params=PORTALS, ids=lambda portal: portal.programme)
def portal(request, server: ScriptedServer) -> Portal:
    return request.param(server)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request) -> dict[str, Any]:
    return {} if request.param == "sqlite" else {"DATABASE_URL": request.getfixturevalue("pg_url")}


@pytest.fixture
def portal_app(make_app: Callable[..., Flask], portal: Portal, database: dict[str, Any]) -> Flask:
    return make_app(**portal.config(), **database)


def run(app: Flask, portal: Portal) -> dict:
    with app.app_context():
        job_id = job_queue.enqueue(portal.scraper)
        job_queue.run_pending()
        return job_queue.get_job(job_id).to_dict()


def completed(app: Flask, portal: Portal) -> dict:
    snapshot = run(app, portal)
    assert snapshot["status"] == "completed", snapshot["error"]
    return snapshot


def held(app: Flask, portal: Portal) -> dict:
    snapshot = run(app, portal)
    assert snapshot["status"] == "failed", snapshot["result"]
    assert snapshot["progress_percent"] < 100
    return snapshot


def state(app: Flask, programme: str) -> dict[str, int]:
    """What a shopper would notice: active shops, current rates, closed rates, all rates."""
    with app.app_context():
        shops = sa.select(Shop.id).join(Programme).where(Programme.slug == programme)
        count = lambda query: db.session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))  # noqa: E731
        rates = sa.select(Rate.id).where(Rate.shop_id.in_(shops))
        return {
            "active": count(shops.where(Shop.active)),
            "current_rates": count(rates.where(Rate.valid_to.is_(None))),
            "closed_rates": count(rates.where(Rate.valid_to.is_not(None))),
            "rates": count(rates),
        }


def last_run(app: Flask) -> ScrapeRun:
    with app.app_context():
        return db.session.scalars(sa.select(ScrapeRun).order_by(ScrapeRun.id.desc())).first()


def offered_reason(portal: Portal, offered: int, seen: int, last: int) -> str:
    listed = f"{offered} von {seen} Partnern" if portal.hides_partners and seen != offered else f"{offered} Partner"
    return f"nur {listed} angeboten, letzter Lauf {last}"


def test_a_run_that_offers_none_of_516_changes_nothing_until_an_admin_accepts_it(
    portal_app: Flask, portal: Portal
) -> None:
    portal.publish(516)
    completed(portal_app, portal)
    before = state(portal_app, portal.programme)
    assert before["active"] == 516

    portal.publish(516, offered=0)  # M&M: 516 pages, none offered; the others: an empty catalogue
    snapshot = held(portal_app, portal)
    assert offered_reason(portal, 0, 516, 516) in snapshot["error"]
    assert "516 von 516 aktiven Partnern würden deaktiviert" in snapshot["error"]
    assert "nichts deaktiviert" in snapshot["error"] and "Formatänderung?" in snapshot["error"]
    assert state(portal_app, portal.programme) == before
    run_row = last_run(portal_app)
    assert (run_row.outcome, run_row.shops_offered, run_row.deactivated) == ("held", 0, 516)
    assert offered_reason(portal, 0, 516, 516) in run_row.message

    accepted = bearer_client(portal_app).post(f"/admin/runs/{run_row.id}/accept", headers=JSON)
    assert accepted.status_code == 200, accepted.json
    assert (accepted.json["outcome"], accepted.json["deactivated"]) == ("accepted", 516)
    after = state(portal_app, portal.programme)
    assert after["active"] == 0 and after["rates"] == before["rates"]  # deactivated, history kept


def test_a_run_that_sees_half_the_partners_is_held_and_the_cli_accepts_it(portal_app: Flask, portal: Portal) -> None:
    portal.publish(516)
    completed(portal_app, portal)
    before = state(portal_app, portal.programme)

    portal.publish(258)
    snapshot = held(portal_app, portal)
    assert offered_reason(portal, 258, 258, 516) + " (Grenze 70 %)" in snapshot["error"]
    assert "258 von 516 aktiven Partnern würden deaktiviert (Grenze 30 %)" in snapshot["error"]
    assert state(portal_app, portal.programme) == before

    runner = portal_app.test_cli_runner()
    listed = runner.invoke(args=["runs", "held"])
    run_id = last_run(portal_app).id
    assert listed.exit_code == 0 and listed.output.startswith(f"{run_id}\t{portal.programme}\t")
    accepted = runner.invoke(args=["runs", "accept", str(run_id)])
    assert accepted.exit_code == 0, accepted.output
    assert "258 deaktiviert" in accepted.output
    assert state(portal_app, portal.programme)["active"] == 258
    assert runner.invoke(args=["runs", "held"]).output == "Keine angehaltenen Läufe.\n"


def test_a_run_whose_understood_rates_drop_from_96_to_40_percent_closes_no_rate(
    portal_app: Flask, portal: Portal
) -> None:
    portal.publish(50, understood=48)
    completed(portal_app, portal)
    before = state(portal_app, portal.programme)
    assert before["closed_rates"] == 0

    portal.publish(50, understood=20)  # the same shops, 28 rate texts in a form we do not know
    snapshot = held(portal_app, portal)
    assert "Prämiensätze erkannt: 40 % statt 96 % im letzten Lauf (Grenze 20 Punkte weniger)" in snapshot["error"]
    assert "Partner angeboten" not in snapshot["error"]  # the shop count was fine
    assert state(portal_app, portal.programme) == before

    accepted = bearer_client(portal_app).post(f"/admin/runs/{last_run(portal_app).id}/accept", headers=JSON)
    assert accepted.status_code == 200, accepted.json
    after = state(portal_app, portal.programme)
    assert (after["active"], after["closed_rates"], after["current_rates"]) == (50, 28, 50)


def test_a_normal_run_within_5_percent_passes_untouched(portal_app: Flask, portal: Portal) -> None:
    portal.publish(516, understood=496)
    first = completed(portal_app, portal)
    assert any(m["message"].startswith("Erster Lauf dieser Quelle: kein Vergleich") for m in first["messages"])

    portal.publish(490, understood=470)  # 5 % fewer partners, about as many rates understood
    fewer = completed(portal_app, portal)
    assert fewer["result"]["added"] == 0
    assert state(portal_app, portal.programme)["active"] == 490
    portal.publish(542, understood=520)  # 5 % more than the first run
    more = completed(portal_app, portal)
    assert (more["result"]["added"], state(portal_app, portal.programme)["active"]) == (26, 542)
    assert any("innerhalb der Grenzen" in m["message"] for m in more["messages"])
    with portal_app.app_context():
        outcomes = db.session.scalars(sa.select(ScrapeRun.outcome).order_by(ScrapeRun.id)).all()
    assert outcomes == ["success"] * 3


def test_the_first_live_run_is_not_compared_and_sample_runs_never_are(
    make_app: Callable[..., Flask], portal: Portal
) -> None:
    app = make_app(**{**portal.config(), "SCRAPER_SOURCES": "offline"})
    completed(app, portal)  # the bundled samples
    samples = state(app, portal.programme)["active"]
    assert samples >= 20

    app.config["SCRAPER_SOURCES"] = "online"
    portal.publish(5)  # far fewer than the samples: all of them would go
    first_live = completed(app, portal)
    assert state(app, portal.programme)["active"] == 5  # every sample shop deactivated: no baseline
    assert any(m["message"].startswith("Erster Lauf dieser Quelle") for m in first_live["messages"])

    app.config["SCRAPER_SOURCES"] = "offline"
    offline = completed(app, portal)  # would be held if compared with the live run: 5 deactivated of 5
    assert any(m["message"].startswith("Beispieldaten: kein Vergleich") for m in offline["messages"])
    assert state(app, portal.programme)["active"] == samples
