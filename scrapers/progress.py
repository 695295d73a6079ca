"""What a scraper needs from the job that runs it: a place to report progress.

Scrapers are plain functions ``scrape_<source>(job)``. They never import the
job classes (``job_queue``/``jobs``): anything with these methods will do, a
queued job, a test double or a script's console printer.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol


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


def close_on_stop(job: Any, close: Callable[[], None]) -> None:
    """When the job is asked to stop, call ``close`` (a fetcher's): waits and downloads end at once.

    A reporter without ``on_stop`` (a test double, a script) simply never stops.
    """
    on_stop = getattr(job, "on_stop", None)
    if on_stop is not None:
        on_stop(close)
