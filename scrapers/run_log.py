"""Record each scraper run in the ``ScrapeRun`` log the admin page shows, and store what it read."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

from flask import current_app

from database import utcnow
from models import RUN_CANCELLED, RUN_FAILED, RUN_SUCCESS, ScrapeRun, begin_write, db
from scrapers.drift_guard import DriftBounds, RunHeld
from scrapers.field_limits import fit_offers
from scrapers.german_text import count_of
from scrapers.progress import ScrapeJob
from scrapers.steps import run_step
from scrapers.store import Offer
from scrapers.store_step import StoreRequest, StoreTarget, store_run


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
    begin_write()  # the store may have run in another process: start afresh, holding the write lock
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
    the Python a store costs) and cut that many values. Then, in the parse pool
    when there is one (``scrapers/store_step.py``), the drift guard compares
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

    config = current_app.config
    target = StoreTarget(config["SQLALCHEMY_DATABASE_URI"], dict(config.get("SQLALCHEMY_ENGINE_OPTIONS", {})),
                         DriftBounds.from_config(config))
    request = StoreRequest(run.id, offers, complete, is_sample, seen, unparsed)
    db.session.commit()  # no transaction of ours stays open while another connection writes the run
    if target.shareable:
        # It commits: the job waits for its end even when asked to stop meanwhile (as when it ran here).
        report = run_step(job, store_run, target, request, stoppable=False)
    else:
        report = store_run(target, request)
    for message in report.messages:
        job.add_message(message)
    if report.held is not None:
        # The job's error says it all (the worker adds it to the messages): no message of its own.
        raise RunHeld(report.held)
    return report.counts
