"""What a scraper needs from the job that runs it: a place to report progress.

Scrapers are plain functions ``scrape_<source>(job)``. They never import the
job classes (``job_queue``/``jobs``): anything with these methods will do, a
queued job, a test double or a script's console printer.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol


class ProgressReporter(Protocol):
    """Receives a run's status messages and progress."""

    def add_message(self, msg: str) -> None:
        """Append a status message (German) that the admin page shows.

        May raise a ``BaseException`` with an ``outcome`` attribute ("cancelled",
        "timeout") when the job must stop: let it propagate (clean up in
        ``finally`` or re-raise); the run log records it.
        """

    def set_progress(self, current: int, total: int = 100) -> None:
        """Record ``current`` of ``total`` steps done; may raise like ``add_message``."""


class ScrapeJob(ProgressReporter, Protocol):
    """A progress reporter with an id, so the run log can name the job that ran it."""

    @property
    def id(self) -> str:
        """The job's id, stored on its ``ScrapeRun``."""


def committing(job: Any) -> AbstractContextManager[Any]:
    """The job's ``committing()`` block (a stop waits for the commit inside it), or none for a plain reporter."""
    block = getattr(job, "committing", None)
    return block() if block is not None else nullcontext()
