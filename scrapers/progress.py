"""What a scraper needs from the job that runs it: a place to report progress.

Scrapers are plain functions ``scrape_<source>(job)``. They never import the
job classes (``job_queue``/``jobs``): anything with these methods will do, a
queued job, a test double or a script's console printer.
"""

from __future__ import annotations

from typing import Protocol


class ProgressReporter(Protocol):
    """Receives a run's status messages and progress."""

    def add_message(self, msg: str) -> None:
        """Append a status message (German) that the admin page shows."""

    def set_progress(self, current: int, total: int = 100) -> None:
        """Record ``current`` of ``total`` steps done."""


class ScrapeJob(ProgressReporter, Protocol):
    """A progress reporter with an id, so the run log can name the job that ran it."""

    @property
    def id(self) -> str:
        """The job's id, stored on its ``ScrapeRun``."""
