"""Held runs: keep what the drift guard stopped, let an admin accept it, retire it when stale.

A held run's offers wait on its ``ScrapeRun`` as JSON. Accepting applies
them through the normal store path, as the run was (complete or not), in one
transaction with the check that it may still be applied. A run can be
accepted once, and only while no newer run of its source has been applied:
that newer run read the source later, so applying the older one on top would
turn the data back. Applying a run (normally or by accepting) therefore
marks the older held runs of its source as superseded and drops their offers.
"""

from __future__ import annotations

from typing import Optional

import sqlalchemy as sa
from sqlalchemy.orm import undefer

from database import utcnow
from models import RUN_ACCEPTED, RUN_HELD, RUN_SUPERSEDED, ScrapeRun, begin_write, db
from scrapers.drift_guard import Comparison, held_message, last_applied_run
from scrapers.offer_json import offers_from_json, offers_to_json
from scrapers.store import Offer, StoreResult, write_offers


class RunNotFound(LookupError):
    """No scrape run has this id."""


class AcceptRefused(Exception):
    """The run cannot be accepted; the message (German) says why. Nothing was changed."""


def hold_run(run: ScrapeRun, offers: list[Offer], comparison: Comparison) -> str:
    """Log ``run`` as held with its offers and the reasons, commit; return the message."""
    message = held_message(list(comparison.reasons))
    run.outcome = RUN_HELD
    run.held_offers = offers_to_json(offers)
    run.deactivated = comparison.deactivating
    run.message = message
    run.finished_at = utcnow()
    db.session.commit()
    return message


def supersede_older_held_runs(run: ScrapeRun) -> None:
    """Retire the held runs of ``run``'s source older than ``run``, which is being applied."""
    if run.is_sample:
        return
    db.session.execute(
        sa.update(ScrapeRun)
        .where(ScrapeRun.scraper == run.scraper, ScrapeRun.outcome == RUN_HELD,
               ScrapeRun.id < run.id, sa.not_(ScrapeRun.is_sample))
        .values(outcome=RUN_SUPERSEDED, held_offers=None,
                message=ScrapeRun.message + f" – überholt: Lauf {run.id} wurde später übernommen")
        .execution_options(synchronize_session=False)
    )


def held_runs() -> list[ScrapeRun]:
    """Every run waiting for an admin, oldest first."""
    return list(db.session.scalars(sa.select(ScrapeRun).where(ScrapeRun.outcome == RUN_HELD)
                                   .order_by(ScrapeRun.id)))


def _refusal(run: ScrapeRun) -> Optional[str]:
    if run.outcome == RUN_ACCEPTED:
        return (f"Lauf {run.id} wurde schon übernommen ({run.accepted_at:%d.%m.%Y %H:%M} UTC, "
                f"{run.accepted_by}).")
    if run.outcome == RUN_SUPERSEDED:
        return (f"Lauf {run.id} ist überholt: ein neuerer Lauf von {run.scraper} wurde übernommen "
                "und ist aktueller. Nichts geändert.")
    if run.outcome != RUN_HELD:
        return f"Lauf {run.id} ist nicht angehalten (Ergebnis: {run.outcome}): nichts zu übernehmen."
    newer = last_applied_run(run.scraper)
    if newer is not None and newer.id > run.id:
        return (f"Lauf {run.id} ist überholt: Lauf {newer.id} von {run.scraper} wurde später übernommen "
                "und ist aktueller. Nichts geändert.")
    return None


def accept_run(run_id: int, accepted_by: str) -> tuple[ScrapeRun, StoreResult]:
    """Apply a held run's offers as the run would have; raise ``RunNotFound`` or ``AcceptRefused``."""
    begin_write()
    run = db.session.scalars(
        sa.select(ScrapeRun).where(ScrapeRun.id == run_id)
        .options(undefer(ScrapeRun.held_offers)).with_for_update()  # two admins at once: one wins
        .execution_options(populate_existing=True)  # the row as locked, not as this session last saw it
    ).first()
    if run is None:
        db.session.rollback()
        raise RunNotFound(f"Lauf {run_id} nicht gefunden.")
    refusal = _refusal(run)
    if refusal is not None:
        db.session.rollback()
        raise AcceptRefused(refusal)
    offers = offers_from_json(run.held_offers or [])
    stored = write_offers(run.scraper, offers, complete=bool(run.complete), is_sample=run.is_sample)
    now = utcnow()
    run.outcome, run.accepted_at, run.accepted_by, run.held_offers = RUN_ACCEPTED, now, accepted_by, None
    run.added, run.updated, run.deactivated = stored.added, stored.updated, stored.deactivated
    run.message = (f"Übernommen von {accepted_by} am {now:%d.%m.%Y %H:%M} UTC: {stored.added} neu, "
                   f"{stored.updated} aktualisiert, {stored.deactivated} deaktiviert "
                   f"(angehalten war: {run.message})")
    supersede_older_held_runs(run)
    db.session.commit()
    return run, stored
