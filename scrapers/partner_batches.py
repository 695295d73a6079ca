"""Fetch and parse Miles & More partner pages a batch at a time: one step in the parse pool.

Why in the pool, fetching included: with politeness lifted (a fast source),
the requests themselves (requests, urllib3, the guard, robots.txt) cost as much
interpreter time as the parsing, and in the web process every bit of it is
time the web threads wait for. A batch runs in a pool process with its own
``Fetcher`` built from the run's settings, so every safety check applies as
before. Politeness carries over from batch to batch: the batch starts from
the run's ``HostState``s (robots.txt read once per run, ``Crawl-delay``, the
next free slot) and hands back what it learnt. Batches of one run go one
after the other, never side by side, so a host never sees more than
``SCRAPER_HOST_CONCURRENCY`` requests of a run at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from scrapers.fetcher import Fetcher, FetchError, FetchSettings
from scrapers.field_limits import fit_offers
from scrapers.host_gate import HostState
from scrapers.miles_and_more_pages import parse_partner_page
from scrapers.store import Offer

MAX_PAGES_PER_BATCH = 128
# A batch takes about this long at the configured interval: the progress bar moves at least this
# often, a cancel waits no longer in-thread, and a cancelled run's batch ends within it in the pool.
BATCH_SECONDS = 1.0


@dataclass(frozen=True)
class PageBatch:
    """What a pool process needs for one batch: plain data only."""

    settings: FetchSettings
    hosts: tuple[HostState, ...]
    pages: tuple[tuple[str, str], ...]  # (URL to fetch, public URL for the offer's link)


@dataclass
class BatchOutcome:
    offers: list[Offer] = field(default_factory=list)  # fitted to their columns (field_limits)
    cuts: dict[str, int] = field(default_factory=dict)  # values cut to fit, per external id
    hidden: int = 0  # pages of partners not offered to shoppers
    failures: list[FetchError] = field(default_factory=list)
    hosts: list[HostState] = field(default_factory=list)


def pages_per_batch(settings: FetchSettings) -> int:
    """About ``BATCH_SECONDS`` of fetching at the configured pace, at least two rounds of concurrency."""
    pace = math.inf if settings.min_interval <= 0 else BATCH_SECONDS / settings.min_interval
    return int(max(2 * settings.host_concurrency, min(MAX_PAGES_PER_BATCH, pace)))


def fetch_and_parse(batch: PageBatch) -> BatchOutcome:
    """Fetch the batch's pages politely, parse and fit each; a page that fails is a failure, not an error."""
    outcome = BatchOutcome()
    public = dict(batch.pages)
    with Fetcher(batch.settings) as fetcher:
        for state in batch.hosts:
            fetcher.adopt(state)
        for page_url, body in fetcher.get_many(list(public)):
            if isinstance(body, FetchError):
                outcome.failures.append(body)
                continue
            offer = parse_partner_page(body, public[page_url])
            if offer is None:
                outcome.hidden += 1
            else:
                outcome.offers.append(offer)
        outcome.hosts = fetcher.host_states()
    outcome.offers, outcome.cuts = fit_offers(outcome.offers)
    return outcome
