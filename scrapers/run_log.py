"""Record each scraper run in the ``ScrapeRun`` log the admin page shows, and store what it read.

A run's data and its end are one fact: the offers and the run's ``success``
are committed in one transaction, inside the job's ``committing()`` block, so
the job's outcome and the log agree. A stop that comes during that commit
comes too late (the job completes and says so); a job whose process died
after it is completed from the run by ``settle_run``, and one that died
before it has its run closed there.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

import sqlalchemy as sa
from flask import current_app

from database import storable_text, utcnow
from models import RUN_CANCELLED, RUN_FAILED, RUN_INTERRUPTED, RUN_RUNNING, RUN_SUCCESS, ScrapeRun, begin_write, db
from scrapers.drift_guard import DriftBounds, RunFigures, RunHeld, compare_with_last_run, how_to_accept
from scrapers.field_limits import fit_offers
from scrapers.german_text import count_of, number_de
from scrapers.held_runs import hold_run, supersede_older_held_runs
from scrapers.progress import ScrapeJob, committing
from scrapers.store import Offer, write_offers

ENDED_BY = {"cancelled": RUN_CANCELLED, "interrupted": RUN_INTERRUPTED}  # a stop's outcome; else failed
LOST = "Lauf endete ohne Abschluss (Prozess beendet oder Datenbank nicht erreichbar)"


@contextmanager
def scrape_run(scraper: str, job: ScrapeJob) -> Iterator[ScrapeRun]:
    """Log a run as started; an exception logs it as failed, cancelled or interrupted, and propagates.

    The store (``store_and_report``) logs its success, in the commit of the
    data. A held run (``RunHeld``) is already logged as such. A job asked to
    stop raises a ``BaseException`` whose ``outcome`` says why ("cancelled",
    "timeout", "interrupted"; see ``scrapers/progress.py``): the run records
    that, having written nothing. Runs an earlier attempt of the job left
    open (its process was killed) are closed first.
    """
    begin_write()
    _close_open_runs(job.id, LOST)
    run = ScrapeRun(scraper=scraper, job_id=job.id)
    db.session.add(run)
    db.session.commit()
    run_id = run.id
    try:
        yield run
    except RunHeld:
        raise
    except BaseException as exc:
        # A stop shows itself as its own exception, or (when a closed connection failed first) on the job.
        stop = exc if not isinstance(exc, Exception) else getattr(job, "stop_reason", None)
        if getattr(stop, "outcome", None) is None and not isinstance(exc, Exception):
            raise  # KeyboardInterrupt and the like: the job is given back, not ended
        db.session.rollback()
        begin_write()
        _end_run(run_id, stop if stop is not None else exc)
        db.session.commit()
        raise


def _end_run(run_id: int, why: BaseException) -> None:
    """Log how a run that stored nothing ended; a run that ended already keeps its end."""
    outcome = getattr(why, "outcome", None)
    message = storable_text(str(why) if outcome else f"{type(why).__name__}: {why}")
    db.session.execute(sa.update(ScrapeRun).where(ScrapeRun.id == run_id, ScrapeRun.outcome == RUN_RUNNING)
                       .values(outcome=ENDED_BY.get(outcome or "", RUN_FAILED), finished_at=utcnow(),
                               message=message))


def _close_open_runs(job_id: str, message: str) -> None:
    db.session.execute(sa.update(ScrapeRun).where(ScrapeRun.job_id == job_id, ScrapeRun.outcome == RUN_RUNNING)
                       .values(outcome=RUN_FAILED, finished_at=utcnow(), message=message))


def settle_run(job_id: str, why: BaseException) -> Optional[dict[str, int]]:
    """After the job's process ended without a word: its counts if its run was stored, else None.

    A run it left open is logged as ended by ``why`` (a stop, or the
    process's death): the log says what the job will say.
    """
    run = db.session.scalar(sa.select(ScrapeRun).where(ScrapeRun.job_id == job_id)
                            .order_by(ScrapeRun.id.desc()).limit(1))
    if run is not None and run.outcome == RUN_SUCCESS:
        return _counts(run)
    if run is not None:
        begin_write()
        _end_run(run.id, why)
        db.session.commit()
    return None


def _counts(run: ScrapeRun) -> dict[str, int]:
    """What every scraper returns: the seed's two counts, then deactivated and unparsed_rates."""
    return {"added": run.added, "updated": run.updated, "deactivated": run.deactivated or 0,
            "unparsed_rates": (run.rates_total or 0) - (run.rates_understood or 0)}


def store_and_report(
    job: ScrapeJob, run: ScrapeRun, offers: list[Offer], complete: bool, is_sample: bool,
    seen: Optional[int] = None,
) -> dict[str, int]:
    """Write a run's offers, report the counts on the job and the log; return them.

    Every offer is first fitted to its columns (``field_limits``): cleaned and
    cut, with the number of cut values reported. Then, in one transaction, the
    drift guard compares the run with the last applied one (outside its
    bounds the run is held, nothing written, and ``RunHeld`` fails the job
    with the reason), the offers are written and the run is logged.

    ``run.scraper`` names the programme. An incomplete run deactivates nothing;
    ``is_sample`` marks the shops as bundled sample data. ``seen`` is how many
    entries the source listed, when that differs from the offers (hidden ones).
    """
    offers, cuts_by_shop = fit_offers(offers)
    cuts = sum(cuts_by_shop.values())
    if cuts:
        job.add_message(f"{count_of(cuts, 'Wert war', 'Werte waren')} zu lang für die Spalte: gekürzt (Links: weggelassen)")
    unparsed = sum(offer.unparsed_rates for offer in offers)
    if unparsed:
        job.add_message(f"{count_of(unparsed, 'Prämiensatz', 'Prämiensätze')} nicht erkannt: Originaltext gespeichert")
    job.add_message(f"Registriere {count_of(len(offers), 'Shop', 'Shops')} in der Datenbank...")
    bounds = DriftBounds.from_config(current_app.config)
    held: Optional[str] = None
    with committing(job):
        begin_write()  # compare and write in one transaction: nothing changes in between
        run.is_sample, run.complete = is_sample, complete
        figures = RunFigures.of(offers, seen)
        figures.record_on(run)
        comparison = compare_with_last_run(run, figures, (offer.external_id for offer in offers), complete, bounds)
        if comparison.held:
            held = f"{hold_run(run, offers, comparison)} {how_to_accept(run.id)}"
        else:
            stored = write_offers(run.scraper, offers, complete=complete, is_sample=is_sample)
            run.added, run.updated, run.deactivated = stored.added, stored.updated, stored.deactivated
            run.outcome, run.finished_at = RUN_SUCCESS, utcnow()  # with the data: the next run's baseline
            run.message = (
                f"{count_of(len(offers), 'Shop', 'Shops')} gelesen, {number_de(stored.deactivated)} deaktiviert, "
                f"{count_of(unparsed, 'Prämiensatz', 'Prämiensätze')} nicht erkannt"
                + ("" if complete else ", unvollständiger Lauf")
            )
            supersede_older_held_runs(run)
            db.session.commit()
    job.add_message(comparison.note)
    if held is not None:
        # The job's error says it all (the worker adds it to the messages): no message of its own.
        raise RunHeld(held)
    job.add_message(f"Fertig: {run.added} neu, {run.updated} aktualisiert, {run.deactivated} deaktiviert")
    return _counts(run)
