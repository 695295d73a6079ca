"""The PAYBACK scraper: the public digital-shops catalogue, page by page.

``GET <PAYBACK_CATALOGUE_URL>?pageSize=..&pageOffset=..`` answers
``{"totalResultSize": n, "digitalShopListItem": [...]}``; ``parse_payback_page``
turns one answer into offers without any I/O.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional

from flask import current_app

from models import BASE, PROMOTION
from scrapers.errors import ScrapeError
from scrapers.fetcher import Fetcher, FetchSettings
from scrapers.progress import ScrapeJob
from scrapers.rates import parse_rate
from scrapers.run_log import scrape_run, store_and_report
from scrapers.sanitize import is_safe_path_segment
from scrapers.sources import open_source
from scrapers.store import Offer, OfferRate
from scrapers.german_text import count_of

PROGRAMME = "payback"
SHOP_PAGE_URL = "https://www.payback.de/shop/{vanity}"
_END_DATE = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})")


@dataclass
class PaybackPage:
    total: int
    offers: list[Offer]


def _shape_error(where: str) -> ScrapeError:
    return ScrapeError(f"PAYBACK-Katalog hat ein unerwartetes Format: {where}")


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [item.strip() for item in value if isinstance(item, str) and item.strip()]


def parse_end_date(text: Optional[str]) -> Optional[datetime]:
    """Find a German end date (``bis 31.12.2026``) in a promotion's subline."""
    match = _END_DATE.search(text or "")
    if not match:
        return None
    day, month, year = (int(part) for part in match.groups())
    try:
        return datetime(year, month, day, 23, 59, 59)
    except ValueError:
        return None


def _headline(container: Any) -> Optional[str]:
    if not isinstance(container, dict):
        return None
    headline = container.get("incentivationHeadline")
    return " ".join(headline.split()) if isinstance(headline, str) and headline.strip() else None


def _parse_item(item: Any, index: int) -> Offer:
    if not isinstance(item, dict) or not isinstance(item.get("partner"), dict):
        raise _shape_error(f"Eintrag {index} hat kein Objekt 'partner'")
    partner = item["partner"]
    external_id = partner.get("partnerShortName")
    name = partner.get("partnerDisplayName")
    if not isinstance(external_id, str) or not external_id.strip():
        raise _shape_error(f"Eintrag {index} hat keine 'partnerShortName'")
    if not isinstance(name, str) or not name.strip():
        raise _shape_error(f"Eintrag {index} ({external_id!r}) hat keinen 'partnerDisplayName'")
    vanity = item.get("partnerVanityName")
    # The vanity name becomes a link path: anything but [A-Za-z0-9_-]+ gets no link at all.
    vanity = vanity if isinstance(vanity, str) and is_safe_path_segment(vanity) else None

    rates = []
    base = _headline(item.get("incentivation"))
    if base:
        rates.append(OfferRate(BASE, parse_rate(base)))
    for promotion in item.get("promotionListItem") or []:
        headline = _headline(promotion)
        if headline:
            subline = promotion.get("incentivationSubline")
            subline = " ".join(subline.split()) if isinstance(subline, str) and subline.strip() else None
            rates.append(OfferRate(PROMOTION, parse_rate(headline), subline, parse_end_date(subline)))

    domains: list[str] = []
    for extension in item.get("browserExtensionInfoListItem") or []:
        if isinstance(extension, dict):
            for domain in _strings(extension.get("domainNameListItem")):
                domain = domain.lower().removeprefix("www.")
                if domain not in domains:
                    domains.append(domain)

    return Offer(
        external_id=external_id.strip(),
        name=" ".join(name.split()),
        slug=vanity,
        detail_url=SHOP_PAGE_URL.format(vanity=vanity) if vanity else None,
        domains=domains,
        categories=_strings(item.get("categoryShortNameListItem")),
        rates=rates,
    )


def parse_payback_page(payload: Any) -> PaybackPage:
    """Turn one decoded catalogue answer into offers; raise on an unknown shape."""
    if not isinstance(payload, dict):
        raise _shape_error("die Antwort ist kein JSON-Objekt")
    total = payload.get("totalResultSize")
    items = payload.get("digitalShopListItem")
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise _shape_error("'totalResultSize' fehlt oder ist keine Zahl")
    if not isinstance(items, list):
        raise _shape_error("'digitalShopListItem' fehlt oder ist keine Liste")
    return PaybackPage(total, [_parse_item(item, index) for index, item in enumerate(items)])


def _decode(body: bytes, url: str) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise ScrapeError(f"PAYBACK-Katalog {url} ist kein gültiges JSON (abgeschnitten?): {exc}") from exc


def scrape_payback(job: ScrapeJob) -> dict[str, int]:
    """Scrape all PAYBACK online shops; return added/updated/deactivated/unparsed counts."""
    config = current_app.config
    page_size = int(config["PAYBACK_PAGE_SIZE"])
    job.add_message("Starte Payback-Scraper...")
    with open_source(PROGRAMME, "PAYBACK_CATALOGUE_URL", "/onsflows/api/digital-shops") as source, \
            scrape_run(PROGRAMME, job) as run, \
            Fetcher(FetchSettings.from_config(config).allowing(*source.allowed_hosts)) as fetcher:
        if source.is_sample:
            job.add_message("Offline-Modus: lese die mitgelieferten PAYBACK-Beispieldaten")
        offers: dict[str, Offer] = {}
        offset, total, pages = 0, None, 1
        while total is None or offset < total:
            page_no = offset // page_size + 1
            params = {"pageSize": page_size, "pageOffset": offset}
            page = parse_payback_page(_decode(fetcher.get(source.url, params=params), source.url))
            if total is None:
                total = page.total
                pages = max(1, math.ceil(total / page_size))
                job.add_message(f"Katalog meldet {count_of(total, 'Shop', 'Shops')} auf {count_of(pages, 'Seite', 'Seiten')}")
            for offer in page.offers:
                offers[offer.external_id] = offer
            job.add_message(f"Seite {page_no} von {pages} geladen: {len(offers)} von {total} Shops")
            job.set_progress(page_no, pages + 1)
            if not page.offers:
                break  # the catalogue shrank while we paged: stop, and call it partial
            offset += page_size
        complete = len(offers) >= (total or 0)
        if not complete:
            job.add_message(
                f"Nur {len(offers)} von {total} Shops erhalten: es wird nichts deaktiviert"
            )
        return store_and_report(job, run, list(offers.values()), complete, source.is_sample)
