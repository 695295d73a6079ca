"""Record each scraper run in the ``ScrapeRun`` log the admin page shows, and store what it read."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

from flask import current_app

from database import utcnow
from models import RUN_CANCELLED, RUN_FAILED, RUN_SUCCESS, ScrapeRun, begin_write, db
from scrapers.drift_guard import DriftBounds, RunFigures, RunHeld, compare_with_last_run, how_to_accept
from scrapers.field_limits import fit_offers
from scrapers.held_runs import hold_run, supersede_older_held_runs
from scrapers.progress import ScrapeJob
from scrapers.store import Offer, write_offers
from scrapers.german_text import count_of, number_de


@contextmanager
def scrape_run(scraper: str, job: ScrapeJob) -> Iterator[ScrapeRun]:
    """Log a run as started, then as succeeded, failed or cancelled.

    The caller fills in ``added``, ``updated`` and ``message``; an exception
    rolls back the half-done work, is logged on the run, and propagates so the
    job is marked FAILED. A held run (``RunHeld``) is already logged as such.
    A job asked to stop raises a ``BaseException`` whose ``outcome`` says why
    ("cancelled", "timeout"; see ``scrapers/progress.py``): the run records
    that, having written nothing.
    """
    run = ScrapeRun(scraper=scraper, job_id=job.id)
    db.session.add(run)
    db.session.commit()
    run_id = run.id
    try:
        yield run
    except RunHeld:
        raise
    except BaseException as exc:
        # A stop shows itself as its own exception, or (when a closed fetcher failed first) on the job.
        stop = exc if not isinstance(exc, Exception) else getattr(job, "stop_reason", None)
        stopped = getattr(stop, "outcome", None)
        if stopped is None and not isinstance(exc, Exception):
            raise  # KeyboardInterrupt and the like: the job is given back, not ended
        db.session.rollback()
        begin_write()
        ended = db.session.get(ScrapeRun, run_id)
        ended.outcome = RUN_CANCELLED if stopped == "cancelled" else RUN_FAILED
        ended.finished_at = utcnow()
        ended.message = str(stop) if stopped else f"{type(exc).__name__}: {exc}"
        db.session.commit()
        raise
    run.outcome = RUN_SUCCESS
    run.finished_at = utcnow()
    db.session.commit()


def store_and_report(
    job: ScrapeJob, run: ScrapeRun, offers: list[Offer], complete: bool, is_sample: bool,
    seen: Optional[int] = None, cuts: Optional[int] = None,
) -> dict[str, int]:
    """Write a run's offers, report the counts on the job and the log; return them.

    Every offer is first fitted to its columns (``field_limits``): cleaned and
    cut, with the number of cut values reported. ``cuts`` given says the
    parse step fitted them already (in the parse pool: the fitting is most of
    the Python a store costs) and cut that many values. Then the drift guard compares
    the run with the last applied one; outside its bounds the run is held
    (nothing written) and ``RunHeld`` fails the job with the reason.

    ``run.scraper`` names the programme. An incomplete run deactivates nothing;
    ``is_sample`` marks the shops as bundled sample data. ``seen`` is how many
    entries the source listed, when that differs from the offers (hidden ones).
    """
    if cuts is None:
        offers, cuts_by_shop = fit_offers(offers)
        cuts = sum(cuts_by_shop.values())
    if cuts:
        job.add_message(f"{count_of(cuts, 'Wert war', 'Werte waren')} zu lang für die Spalte: gekürzt (Links: weggelassen)")
    unparsed = sum(offer.unparsed_rates for offer in offers)
    if unparsed:
        job.add_message(f"{count_of(unparsed, 'Prämiensatz', 'Prämiensätze')} nicht erkannt: Originaltext gespeichert")
    job.add_message(f"Registriere {count_of(len(offers), 'Shop', 'Shops')} in der Datenbank...")

    bounds = DriftBounds.from_config(current_app.config)
    begin_write()  # compare and write in one transaction: nothing changes in between
    run.is_sample, run.complete = is_sample, complete
    figures = RunFigures.of(offers, seen)
    figures.record_on(run)
    comparison = compare_with_last_run(run, figures, (offer.external_id for offer in offers), complete, bounds)
    job.add_message(comparison.note)
    if comparison.held:
        # The job's error says it all (the worker adds it to the messages): no message of its own.
        raise RunHeld(f"{hold_run(run, offers, comparison)} {how_to_accept(run.id)}")

    stored = write_offers(run.scraper, offers, complete=complete, is_sample=is_sample)
    run.added, run.updated, run.deactivated = stored.added, stored.updated, stored.deactivated
    run.outcome = RUN_SUCCESS  # in the same commit as the data: the next run's baseline
    run.message = (
        f"{count_of(len(offers), 'Shop', 'Shops')} gelesen, {number_de(stored.deactivated)} deaktiviert, "
        f"{count_of(unparsed, 'Prämiensatz', 'Prämiensätze')} nicht erkannt" + ("" if complete else ", unvollständiger Lauf")
    )
    supersede_older_held_runs(run)
    db.session.commit()
    job.add_message(
        f"Fertig: {stored.added} neu, {stored.updated} aktualisiert, {stored.deactivated} deaktiviert"
    )
    return {
        "added": stored.added,
        "updated": stored.updated,
        "deactivated": stored.deactivated,
        "unparsed_rates": unparsed,
    }
