"""The scrapers the admin can start, as plain data: names, labels, routes, functions, limits.

The app turns each into a job kind run in a child process (``app.py``); the admin blueprint makes
the seed's routes and buttons from them. Nothing here imports the job system.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScraperSpec:
    name: str  # the job kind: one run of it at a time, its schedule's key
    label: str  # German, for people
    button: str  # the seed's button label
    endpoint: str  # the seed's route: POST /admin/<endpoint>
    func: str  # "module:function"
    time_limit: float  # seconds; SCRAPER_TIME_LIMITS overrides
    schedule: str  # cron expression offered for its schedule (off until enabled)


SCRAPERS = (
    ScraperSpec("payback", "PAYBACK", "Run Payback Scraper", "run_payback",
                "scrapers.payback:scrape_payback", 15 * 60, "15 4 * * *"),
    ScraperSpec("miles_and_more", "Miles & More", "Run Miles & More Scraper", "run_miles_and_more",
                "scrapers.miles_and_more:scrape_miles_and_more", 30 * 60, "45 4 * * *"),
    ScraperSpec("example", "Beispiel-Bonusprogramm", "Run Example Scraper", "run_scraper",
                "scrapers.example:scrape_example", 5 * 60, "0 5 * * *"),
)
SCRAPERS_BY_NAME = {spec.name: spec for spec in SCRAPERS}
# What a scraper job stored when its process ended without a word (jobs/kinds.py, JobKind.settle).
SETTLE_RUN = "scrapers.run_log:settle_run"


def is_retryable(error: BaseException) -> bool:
    """A failure worth another attempt later: a network hiccup, a 429 or 5xx answer, never a changed format."""
    return bool(getattr(error, "retryable", False))
