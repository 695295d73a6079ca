"""Record each scraper run in the ``ScrapeRun`` log the admin page shows."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from database import utcnow
from models import ScrapeRun, begin_write, db
from scrapers.field_limits import fit_offer
from scrapers.progress import ScrapeJob
from scrapers.store import Offer, store_offers


@contextmanager
def scrape_run(scraper: str, job: ScrapeJob) -> Iterator[ScrapeRun]:
    """Log a run as started, then as succeeded, failed or cancelled.

    The caller fills in ``added``, ``updated`` and ``message``; an exception
    rolls back the half-done work, is logged on the run, and propagates so the
    job is marked FAILED. A job asked to stop raises a ``BaseException`` whose
    ``outcome`` says why ("cancelled", "timeout"; see ``scrapers/progress.py``):
    the run records that, having written nothing.
    """
    run = ScrapeRun(scraper=scraper, job_id=job.id)
    db.session.add(run)
    db.session.commit()
    run_id = run.id
    try:
        yield run
    except BaseException as exc:
        stopped = getattr(exc, "outcome", None) if not isinstance(exc, Exception) else None
        if stopped is None and not isinstance(exc, Exception):
            raise  # KeyboardInterrupt and the like: the job is given back, not ended
        db.session.rollback()
        begin_write()
        ended = db.session.get(ScrapeRun, run_id)
        ended.outcome = "cancelled" if stopped == "cancelled" else "failed"
        ended.finished_at = utcnow()
        ended.message = str(exc) if stopped else f"{type(exc).__name__}: {exc}"
        db.session.commit()
        raise
    run.outcome = "success"
    run.finished_at = utcnow()
    db.session.commit()


def store_and_report(
    job: ScrapeJob, run: ScrapeRun, offers: list[Offer], complete: bool, is_sample: bool
) -> dict[str, int]:
    """Write a run's offers, report the counts on the job and the log; return them.

    Every offer is first fitted to its columns (``field_limits``): cleaned and
    cut, with the number of cut values reported.

    ``run.scraper`` names the programme. An incomplete run deactivates nothing;
    ``is_sample`` marks the shops as bundled sample data.
    """
    fitted = [fit_offer(offer) for offer in offers]
    offers = [offer for offer, _ in fitted]
    cuts = sum(count for _, count in fitted)
    if cuts:
        job.add_message(f"{cuts} Werte waren zu lang für ihre Spalte: gekürzt (Links: weggelassen)")
    unparsed = sum(offer.unparsed_rates for offer in offers)
    if unparsed:
        job.add_message(f"{unparsed} Prämiensätze nicht erkannt: Originaltext gespeichert")
    job.add_message(f"Registriere {len(offers)} Shops in der Datenbank...")
    stored = store_offers(run.scraper, offers, complete=complete, is_sample=is_sample)
    run.added, run.updated = stored.added, stored.updated
    run.message = (
        f"{len(offers)} Shops gelesen, {stored.deactivated} deaktiviert, "
        f"{unparsed} Prämiensätze nicht erkannt" + ("" if complete else ", unvollständiger Lauf")
    )
    job.add_message(
        f"Fertig: {stored.added} neu, {stored.updated} aktualisiert, {stored.deactivated} deaktiviert"
    )
    return {
        "added": stored.added,
        "updated": stored.updated,
        "deactivated": stored.deactivated,
        "unparsed_rates": unparsed,
    }
