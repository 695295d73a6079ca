"""The drift guard's bounds, as pure arithmetic, and their configuration."""

from __future__ import annotations

from typing import Callable

import pytest
from flask import Flask

from drift_portals import PaybackPortal
from job_queue import job_queue
from scrapers.drift_guard import DriftBounds, RunFigures, drift_reasons
from scripted_server import ScriptedServer

LAST = RunFigures(seen=516, offered=516, rates_total=500, rates_understood=480, promotions=40)  # 96 %
DEFAULT = DriftBounds()


def figures(offered: int = 516, understood: int = 480, total: int = 500, promotions: int = 40) -> RunFigures:
    return RunFigures(offered, offered, total, understood, promotions)


def test_the_defaults_are_the_issues() -> None:
    assert DEFAULT == DriftBounds(70, 30, 20, 0) == DriftBounds.from_config({})


@pytest.mark.parametrize("offered, held", [(362, False), (361, True), (0, True), (600, False)])
def test_fewer_than_70_percent_of_the_last_runs_partners_is_held(offered: int, held: bool) -> None:
    # 70 % of 516 is 361.2: 362 passes, 361 does not
    reasons = drift_reasons(figures(offered), LAST, active=0, deactivating=0, bounds=DEFAULT)
    assert bool(reasons) is held
    if held:
        assert reasons == [f"nur {offered} Partner angeboten, letzter Lauf 516 (Grenze 70 %)"]


@pytest.mark.parametrize("deactivating, held", [(150, False), (151, True), (500, True)])
def test_deactivating_more_than_30_percent_of_the_active_shops_is_held(deactivating: int, held: bool) -> None:
    reasons = drift_reasons(figures(), LAST, active=500, deactivating=deactivating, bounds=DEFAULT)
    assert reasons == ([f"{deactivating} von 500 aktiven Partnern würden deaktiviert (Grenze 30 %)"] if held else [])


@pytest.mark.parametrize("understood, held", [(380, False), (379, True), (0, True)])
def test_an_understood_share_more_than_20_points_lower_is_held(understood: int, held: bool) -> None:
    # 96 % before; 380 of 500 is 76 % (20 points: passes), 379 is 75.8 %
    reasons = drift_reasons(figures(understood=understood), LAST, active=0, deactivating=0, bounds=DEFAULT)
    assert bool(reasons) is held


def test_offers_without_any_rate_count_as_nothing_understood() -> None:
    # A renamed rate field leaves every shop without a rate: that must not pass as "100 %".
    reasons = drift_reasons(figures(understood=0, total=0), LAST, active=0, deactivating=0, bounds=DEFAULT)
    assert reasons == ["Prämiensätze erkannt: 0 % statt 96 % im letzten Lauf (Grenze 20 Punkte weniger)"]


def test_promotions_are_compared_only_when_configured() -> None:
    no_promotions = figures(promotions=0)
    assert drift_reasons(no_promotions, LAST, 0, 0, DEFAULT) == []
    strict = DriftBounds(min_promotions_percent=50)
    assert drift_reasons(no_promotions, LAST, 0, 0, strict) == ["nur 0 Aktionen, letzter Lauf 40 (Grenze 50 %)"]


def test_seen_and_offered_are_both_named_when_they_differ() -> None:
    hidden = RunFigures(seen=516, offered=0, rates_total=0, rates_understood=0, promotions=0)
    assert drift_reasons(hidden, LAST, 0, 0, DEFAULT)[0] == "nur 0 von 516 Partnern angeboten, letzter Lauf 516 (Grenze 70 %)"


def test_configured_bounds_change_the_verdict(make_app: Callable[..., Flask], server: ScriptedServer) -> None:
    portal = PaybackPortal(server)
    app = make_app(**portal.config(), DRIFT_GUARD_MIN_OFFERED_PERCENT=40, DRIFT_GUARD_MAX_DEACTIVATED_PERCENT=60)
    for shops, status in ((20, "completed"), (10, "completed"), (3, "failed")):
        portal.publish(shops)
        with app.app_context():
            job_id = job_queue.enqueue(portal.scraper)
            job_queue.run_pending()
            snapshot = job_queue.get_job(job_id).to_dict()
        assert snapshot["status"] == status, snapshot["error"]
    assert "nur 3 Partner angeboten, letzter Lauf 10 (Grenze 40 %)" in snapshot["error"]


@pytest.mark.parametrize("key, value", [("DRIFT_GUARD_MIN_OFFERED_PERCENT", 170),
                                        ("DRIFT_GUARD_MAX_UNDERSTOOD_DROP", -1)])
def test_a_bound_outside_0_to_100_stops_the_start(make_app: Callable[..., Flask], key: str, value: float) -> None:
    with pytest.raises(ValueError, match=key):
        make_app(**{key: value})
