"""The Example scraper: a small, real scraper that shows the job pattern.

It walks the paged HTML catalogue of a (fictional) bonus programme, parses it
with BeautifulSoup, reports progress and messages on the job, and upserts the
shops. By default (and in offline mode) it reads the catalogue bundled in
``samples/example/``, served from loopback; ``EXAMPLE_CATALOGUE_URL`` points
it elsewhere. It fetches through the shared polite fetcher like every scraper.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional
from urllib.parse import urljoin, urlsplit

from bs4 import BeautifulSoup
from flask import current_app

from models import BASE
from scrapers.errors import ScrapeError
from scrapers.fetcher import Fetcher, FetchSettings
from scrapers.german_text import count_of
from scrapers.progress import ScrapeJob
from scrapers.rates import parse_rate
from scrapers.run_log import scrape_run, store_and_report
from scrapers.sanitize import OddValues, clean_text, shown, without_surrogates
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
    # Shop links that lead nowhere a shopper can go (mailto:, javascript:, broken): the shops are kept without.
    unusable_links: OddValues = field(default_factory=OddValues)


@dataclass(frozen=True)
class ShopLink:
    """Where a shop's link leads: a URL to show, and the shop's own domain when the link names one."""

    url: Optional[str] = None
    domain: Optional[str] = None


def _text(node) -> str:
    return " ".join(node.get_text(" ").split()) if node is not None else ""


def _web_link(href: str, page_url: str) -> Optional[tuple[str, bool]]:
    """Resolve ``href`` against the page; return it and whether it names its host, or ``None`` if no web link."""
    try:
        names_host = bool(urlsplit(href).netloc)
        url = urljoin(page_url, href)
        parts = urlsplit(url)
    except ValueError:  # "http://[::1": not a URL at all
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return url, names_host


def shop_link(href: str, page_url: str) -> Optional[ShopLink]:
    """Read a shop's ``href``; ``None`` when there is one but it is no web link (mailto:, javascript:, broken).

    A relative link is resolved against the catalogue page, but points at the
    catalogue's own site: it gives no shop domain. Only a link that names its
    host (``https://shop.example/``, ``//shop.example/``) does.
    """
    href = href.strip()
    if not href:
        return ShopLink()
    resolved = _web_link(href, page_url)
    if resolved is None:
        return None
    url, names_host = resolved
    return ShopLink(url, urlsplit(url).hostname if names_host else None)


def parse_catalogue_page(html: str | bytes, page_url: str) -> CataloguePage:
    """Parse one catalogue page; raise ``ScrapeError`` when its shape is unknown.

    A shop whose link is unusable is kept without one, and its link counted in
    ``unusable_links``; a next-page link that is no web link ends the walk.
    """
    # BeautifulSoup encodes short markup to see whether it is a file name: a lone surrogate breaks that.
    soup = BeautifulSoup(without_surrogates(html) if isinstance(html, str) else html, "html.parser")
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
        raise ScrapeError(f"Seitenzähler auf {page_url} ist unlesbar: {shown(_text(pager))}") from exc
    page = CataloguePage([], number, total_pages, None)
    for item in shop_list.select("li.shop"):
        shop_id = item.get("data-shop-id", "").strip()
        link = item.select_one("a.name")
        name = _text(link)
        # An id that cleaning would leave empty ("\x00") names no shop: it could not be stored apart.
        if not clean_text(shop_id) or not name:
            raise ScrapeError(f"Shop-Eintrag ohne ID oder Namen auf {page_url} (ID {shown(shop_id)})")
        href = link.get("href", "")
        target = shop_link(href, page_url)
        if target is None:
            page.unusable_links.add(f"Shop {shown(shop_id)}: {shown(href)}")
            target = ShopLink()
        rate_text = _text(item.select_one(".rate"))
        page.offers.append(
            Offer(
                external_id=shop_id,
                name=name,
                detail_url=target.url,
                domains=[target.domain] if target.domain else [],
                rates=[OfferRate(BASE, parse_rate(rate_text))] if rate_text else [],
            )
        )
    next_link = soup.select_one('a[rel="next"]')
    next_href = next_link.get("href", "").strip() if next_link else ""
    resolved = _web_link(next_href, page_url) if next_href else None
    page.next_url = resolved[0] if resolved else None
    return page


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
        unusable_links = OddValues()
        visited: set[str] = set()
        page_url: Optional[str] = source.url
        while page_url and len(visited) < MAX_PAGES:
            visited.add(page_url)
            job.add_message(f"Lade Katalogseite {len(visited)}: {page_url}")
            page = parse_catalogue_page(fetcher.get(page_url), page_url)
            offers.extend(page.offers)
            unusable_links.merge(page.unusable_links)
            job.add_message(f"Seite {page.number} von {page.total_pages}: {len(page.offers)} Shops gefunden")
            job.set_progress(min(page.number, page.total_pages) * FETCH_SHARE // max(page.total_pages, 1), 100)
            page_url = page.next_url if page.next_url not in visited else None
        complete = page_url is None and page.number == page.total_pages
        if unusable_links.count:
            job.add_message(
                f"{count_of(unusable_links.count, 'Shop-Link', 'Shop-Links')} unbrauchbar (kein http(s)-Link): "
                f"Shops ohne Link übernommen, z. B. {unusable_links.examples_text()}"
            )
        if not complete:
            job.add_message(
                f"Katalog endet auf Seite {page.number} von {page.total_pages}: "
                "Lauf unvollständig, es wird nichts deaktiviert"
            )
        result = store_and_report(job, run, offers, complete, source.is_sample)
    # Every scraper's result has the same keys: the seed's two counts, then deactivated and unparsed_rates.
    return result
