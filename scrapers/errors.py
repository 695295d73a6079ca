"""Errors a scraper raises with a message an admin can act on (in German)."""

from __future__ import annotations


class ScrapeError(Exception):
    """The source could not be fetched or did not have the expected shape.

    ``expected`` marks failures that come with talking to the outside world
    (network down, host refusing): their traceback tells nobody anything, so
    the job worker logs them as one line (``jobs/execution.py``).
    """

    expected: bool = False
    # Worth another attempt later (the job system retries it with backoff): a network
    # hiccup is, a page in an unknown format is not.
    retryable: bool = False
