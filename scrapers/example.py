"""The Example scraper: a small, real scraper that shows the job pattern.

It walks the paged HTML catalogue of a (fictional) bonus programme, parses it
with BeautifulSoup, reports progress and messages on the job, and upserts the
shops. By default (and in offline mode) it reads the catalogue bundled in
``samples/example/``, served from loopback; ``EXAMPLE_CATALOGUE_URL`` points
it elsewhere. It fetches through the shared polite fetcher like every scraper.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional
from urllib.parse import urljoin, urlparse

from bs4 import BeautifulSoup
from flask import current_app

from models import BASE
from scrapers.errors import ScrapeError
from scrapers.fetcher import Fetcher, FetchSettings
from scrapers.progress import ScrapeJob
from scrapers.rates import parse_rate
from scrapers.run_log import scrape_run, store_and_report
from scrapers.sources import open_source
from scrapers.store import Offer, OfferRate

PROGRAMME = "example"
MAX_PAGES = 200  # a pager that never ends must not keep a job running forever
FETCH_SHARE = 90  # percent of the bar spent fetching; the rest is writing


@dataclass
class CataloguePage:
    offers: list[Offer]
    number: int
    total_pages: int
    next_url: Optional[str]


def _text(node) -> str:
    return " ".join(node.get_text(" ").split()) if node is not None else ""


def parse_catalogue_page(html: str | bytes, page_url: str) -> CataloguePage:
    """Parse one catalogue page; raise ``ScrapeError`` when its shape is unknown."""
    soup = BeautifulSoup(html, "html.parser")
    shop_list = soup.select_one("ul.shops")
    pager = soup.select_one("p.pager")
    if shop_list is None or pager is None:
        raise ScrapeError(
            f"Katalogseite {page_url} hat ein unbekanntes Format (Shop-Liste oder Seitenzähler fehlt)"
        )
    try:
        number = int(_text(pager.select_one(".page")))
        total_pages = int(_text(pager.select_one(".pages")))
    except ValueError as exc:
        raise ScrapeError(f"Seitenzähler auf {page_url} ist unlesbar: {_text(pager)!r}") from exc
    offers = []
    for item in shop_list.select("li.shop"):
        shop_id = item.get("data-shop-id", "").strip()
        link = item.select_one("a.name")
        name = _text(link)
        if not shop_id or not name:
            raise ScrapeError(f"Shop-Eintrag ohne ID oder Namen auf {page_url}")
        href = link.get("href", "")
        rate_text = _text(item.select_one(".rate"))
        offers.append(
            Offer(
                external_id=shop_id,
                name=name,
                detail_url=href or None,
                domains=[urlparse(href).hostname] if href else [],
                rates=[OfferRate(BASE, parse_rate(rate_text))] if rate_text else [],
            )
        )
    next_link = soup.select_one('a[rel="next"]')
    next_url = urljoin(page_url, next_link["href"]) if next_link and next_link.get("href") else None
    return CataloguePage(offers, number, total_pages, next_url)


def scrape_example(job: ScrapeJob) -> dict[str, int]:
    """Scrape the example catalogue; return the counts every scraper returns (added, updated, ...)."""
    config = current_app.config
    job.add_message("Starte Example-Scraper...")
    job.set_progress(0, 100)
    # One catalogue host: the example's own pause between pages is its politeness limit.
    settings = replace(FetchSettings.from_config(config), min_interval=config["EXAMPLE_PAGE_INTERVAL"])
    with open_source(PROGRAMME, "EXAMPLE_CATALOGUE_URL", "/catalogue-1.html") as source, \
            scrape_run(PROGRAMME, job) as run, Fetcher(settings.allowing(*source.allowed_hosts)) as fetcher:
        if source.is_sample:
            job.add_message("Lese die mitgelieferten Beispieldaten")
        offers: list[Offer] = []
        visited: set[str] = set()
        page_url: Optional[str] = source.url
        while page_url and len(visited) < MAX_PAGES:
            visited.add(page_url)
            job.add_message(f"Lade Katalogseite {len(visited)}: {page_url}")
            page = parse_catalogue_page(fetcher.get(page_url), page_url)
            offers.extend(page.offers)
            job.add_message(f"Seite {page.number} von {page.total_pages}: {len(page.offers)} Shops gefunden")
            job.set_progress(min(page.number, page.total_pages) * FETCH_SHARE // max(page.total_pages, 1), 100)
            page_url = page.next_url if page.next_url not in visited else None
        complete = page_url is None and page.number == page.total_pages
        result = store_and_report(job, run, offers, complete, source.is_sample)
    # Every scraper's result has the same keys: the seed's two counts, then deactivated and unparsed_rates.
    return result
