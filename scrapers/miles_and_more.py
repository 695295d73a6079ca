"""The Miles & More scraper: sitemap, then one server-rendered page per partner.

The portal's robots.txt disallows its JSON API, so this reads the sitemap the
robots.txt names and each ``/partner/<unique_name>`` page (always with
``?noredirect=1&site=de``: without it the portal redirects to a host that
refuses bots). The pure parsers live in ``miles_and_more_pages.py``.
"""

from __future__ import annotations

from collections import Counter

from flask import current_app

from scrapers.errors import ScrapeError
from scrapers.fetcher import Fetcher, FetchError, FetchSettings
from scrapers.german_text import count_of
from scrapers.miles_and_more_pages import ONLINE, parse_partner_page, parse_sitemap, partner_page_url
from scrapers.progress import ScrapeJob
from scrapers.run_log import scrape_run, store_and_report
from scrapers.sources import open_source
from scrapers.store import Offer

PROGRAMME = "miles_and_more"
MAX_CHILD_SITEMAPS = 50
# Above this share of failed partner pages the run is not worth storing.
MAX_FAILED_SHARE = 0.2


def _partner_urls(fetcher: Fetcher, sitemap_url: str, limit: int) -> list[str]:
    """All partner page URLs of the sitemap and its children (each a request like any other)."""
    known: set[str] = set()
    partners, children = parse_sitemap(fetcher.get(sitemap_url), limit, known)
    for child in children[:MAX_CHILD_SITEMAPS]:
        more, _ = parse_sitemap(fetcher.get(child), limit, known)
        partners.extend(more)
    return partners


def _report_statuses(job: ScrapeJob, offers: list[Offer]) -> None:
    unknown = Counter(offer.source_status for offer in offers if offer.source_status != ONLINE)
    if unknown:
        listed = ", ".join(f"{status!r} ({count})" for status, count in sorted(unknown.items()))
        job.add_message(
            f"{sum(unknown.values())} Partner mit unbekanntem Status übernommen: {listed}"
        )


def scrape_miles_and_more(job: ScrapeJob) -> dict[str, int]:
    """Scrape every Miles & More partner page; return the counts of the run."""
    config = current_app.config
    job.add_message("Starte Miles & More-Scraper...")
    settings = FetchSettings.from_config(config)
    with open_source(PROGRAMME, "MILES_AND_MORE_SITEMAP_URL", "/sitemap.xml") as source, \
            scrape_run(PROGRAMME, job) as run, Fetcher(settings.allowing(*source.allowed_hosts)) as fetcher:
        if source.is_sample:
            job.add_message("Offline-Modus: lese die mitgelieferten Miles & More-Beispieldaten")
        job.add_message(f"Lade Sitemap {source.url}")
        urls = _partner_urls(fetcher, source.url, int(config["MAX_SITEMAP_URLS"]))
        if not urls:
            raise ScrapeError("Miles & More: unerwartetes Format: die Sitemap enthält keine /partner/-Seiten")
        # One fetch per page, however many sitemap URLs lead to it.
        public = {partner_page_url(url): source.public_url(url) for url in urls}
        total = len(public)
        job.add_message(
            f"{total} Partnerseiten gefunden; lade bis zu {settings.host_concurrency} gleichzeitig, "
            f"mindestens {settings.min_interval:g} s Abstand"
        )
        job.set_progress(0, total + 1)
        offers: list[Offer] = []
        failures: list[FetchError] = []
        hidden = 0
        report_every = max(1, total // 20)
        for done, (page_url, body) in enumerate(fetcher.get_many(list(public)), start=1):
            if isinstance(body, FetchError):
                failures.append(body)
                job.add_message(f"Seite übersprungen: {body}")
            elif (offer := parse_partner_page(body, public[page_url])) is None:
                hidden += 1
            else:
                offers.append(offer)
            job.set_progress(done, total + 1)
            if done % report_every == 0 or done == total:
                job.add_message(f"{done} von {total} Partnerseiten geladen")
        if len(failures) > MAX_FAILED_SHARE * total:
            error = ScrapeError(
                f"{len(failures)} von {total} Partnerseiten nicht ladbar; erster Fehler: {failures[0]}"
            )
            error.retryable = all(failure.retryable for failure in failures)  # a bad moment of the portal
            raise error
        if hidden:
            job.add_message(f"{hidden} Partner nicht für Kunden sichtbar: ausgelassen")
        _report_statuses(job, offers)
        complete = not failures
        if not complete:
            job.add_message(f"{count_of(len(failures), 'Seite fehlt', 'Seiten fehlen')}: Lauf unvollständig, es wird nichts deaktiviert")
        return store_and_report(job, run, offers, complete, source.is_sample, seen=len(offers) + hidden)
