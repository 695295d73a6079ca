"""Errors a scraper raises with a message an admin can act on (in German)."""

from __future__ import annotations

import logging


class ScrapeError(Exception):
    """The source could not be fetched or did not have the expected shape.

    ``expected`` marks failures that come with talking to the outside world
    (network down, host refusing): their traceback tells nobody anything.
    """

    expected: bool = False


class ExpectedFailureFilter(logging.Filter):
    """Log an expected scrape failure as one line: the message and the error, no traceback.

    The job worker logs every failed job with its traceback (it is kept on the
    job too). For a host that is down that is twenty lines of urllib3 frames
    per run; this filter, added to the worker's logger, folds them into one.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, ScrapeError) and error.expected:
            record.msg, record.args = f"{record.getMessage()}: {error}", None
            record.exc_info, record.exc_text = None, None
        return True


def quiet_expected_failures(logger: logging.Logger) -> None:
    """Add ``ExpectedFailureFilter`` to ``logger`` once."""
    if not any(isinstance(existing, ExpectedFailureFilter) for existing in logger.filters):
        logger.addFilter(ExpectedFailureFilter())
