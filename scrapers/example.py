"""The Example scraper: a small, real scraper that shows the job pattern.

It walks the paged HTML catalogue of a (fictional) bonus programme, parses it
with BeautifulSoup, reports progress and messages on the job, and upserts the
shops. By default it reads the catalogue bundled in ``samples/example/``,
served from loopback; ``EXAMPLE_CATALOGUE_URL`` points it elsewhere.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Optional
from urllib.parse import urljoin, urlparse

import requests
from bs4 import BeautifulSoup
from flask import current_app

from job_queue import Job
from scrapers.errors import ScrapeError
from scrapers.rates import parse_rate
from scrapers.run_log import scrape_run
from scrapers.sample_server import serve_sample_data
from scrapers.store import BASE, Offer, OfferRate, store_offers

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


def _fetch(session: requests.Session, url: str) -> bytes:
    timeout = current_app.config["SCRAPER_TIMEOUT"]
    try:
        response = session.get(url, timeout=timeout)
        response.raise_for_status()
    except requests.RequestException as exc:
        raise ScrapeError(f"Abruf von {url} fehlgeschlagen: {exc}") from exc
    # Bytes, so BeautifulSoup honours the page's own <meta charset>.
    return response.content


def scrape_example(job: Job) -> dict[str, int]:
    """Scrape the example catalogue; return ``{"added": n, "updated": m}``."""
    config = current_app.config
    job.add_message("Starte Example-Scraper...")
    job.set_progress(0, 100)
    with ExitStack() as stack:
        url = config.get("EXAMPLE_CATALOGUE_URL")
        if not url:
            base_url = stack.enter_context(serve_sample_data())
            url = f"{base_url}/example/catalogue-1.html"
            job.add_message("Keine Quelle konfiguriert: lese die mitgelieferten Beispieldaten")
        run = stack.enter_context(scrape_run(PROGRAMME, job))
        session = stack.enter_context(requests.Session())
        session.headers["User-Agent"] = config["SCRAPER_USER_AGENT"]

        offers: list[Offer] = []
        visited: set[str] = set()
        page_url: Optional[str] = url
        while page_url and len(visited) < MAX_PAGES:
            if visited:
                time.sleep(config["EXAMPLE_PAGE_INTERVAL"])  # politeness between requests
            visited.add(page_url)
            job.add_message(f"Lade Katalogseite {len(visited)}: {page_url}")
            page = parse_catalogue_page(_fetch(session, page_url), page_url)
            offers.extend(page.offers)
            job.add_message(f"Seite {page.number} von {page.total_pages}: {len(page.offers)} Shops gefunden")
            job.set_progress(min(page.number, page.total_pages) * FETCH_SHARE // max(page.total_pages, 1), 100)
            page_url = page.next_url if page.next_url not in visited else None
        complete = page_url is None and page.number == page.total_pages

        unparsed = sum(offer.unparsed_rates for offer in offers)
        if unparsed:
            job.add_message(f"{unparsed} Prämiensätze nicht erkannt: Originaltext gespeichert")
        job.add_message(f"Registriere {len(offers)} Shops in der Datenbank...")
        result = store_offers(PROGRAMME, offers, complete=complete)
        run.added, run.updated = result.added, result.updated
        run.message = f"{len(offers)} Shops gelesen, {unparsed} Prämiensätze nicht erkannt"
        job.add_message(
            f"Fertig: {result.added} neu, {result.updated} aktualisiert, {result.deactivated} deaktiviert"
        )
    return {"added": result.added, "updated": result.updated}
