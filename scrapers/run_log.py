"""Record each scraper run in the ``ScrapeRun`` log the admin page shows."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from job_queue import Job
from models import ScrapeRun, db, utcnow_naive


@contextmanager
def scrape_run(scraper: str, job: Job) -> Iterator[ScrapeRun]:
    """Log a run as started, then as succeeded or failed with the error.

    The caller fills in ``added``, ``updated`` and ``message``; an exception
    rolls back the half-done work, is logged on the run, and propagates so the
    job is marked FAILED.
    """
    run = ScrapeRun(scraper=scraper, job_id=job.id)
    db.session.add(run)
    db.session.commit()
    run_id = run.id
    try:
        yield run
    except Exception as exc:
        db.session.rollback()
        failed = db.session.get(ScrapeRun, run_id)
        failed.outcome = "failed"
        failed.finished_at = utcnow_naive()
        failed.message = f"{type(exc).__name__}: {exc}"
        db.session.commit()
        raise
    run.outcome = "success"
    run.finished_at = utcnow_naive()
    db.session.commit()
