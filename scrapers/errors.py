"""Errors a scraper raises with a message an admin can act on (in German)."""


class ScrapeError(Exception):
    """The source could not be fetched or did not have the expected shape."""
