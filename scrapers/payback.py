"""The PAYBACK scraper: the public digital-shops catalogue, page by page.

``GET <PAYBACK_CATALOGUE_URL>?pageSize=..&pageOffset=..`` answers
``{"totalResultSize": n, "digitalShopListItem": [...]}``; ``parse_payback_page``
turns one answer into offers without any I/O.

An entry needs an id and a name, or the answer is not the catalogue we know
(``ScrapeError``). Any other field of an entry that has an odd value (a
number where a list belongs, a list of objects where texts belong) is passed
over for that field only: the shop is kept, the value counted and reported.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Optional
from zoneinfo import ZoneInfo

from flask import current_app

from models import BASE, PROMOTION
from scrapers.errors import ScrapeError
from scrapers.fetcher import Fetcher, FetchSettings
from scrapers.progress import ScrapeJob
from scrapers.rates import parse_rate
from scrapers.run_log import scrape_run, store_and_report
from scrapers.sanitize import OddValues, clean_text, is_safe_path_segment, shown
from scrapers.sources import open_source
from scrapers.store import Offer, OfferRate
from scrapers.german_text import count_of

PROGRAMME = "payback"
SHOP_PAGE_URL = "https://www.payback.de/shop/{vanity}"
_END_DATE = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})")
CATALOGUE_ZONE = ZoneInfo("Europe/Berlin")  # "bis 31.12." means the end of that day in Germany
# An answer claiming more shops than this is broken, not a catalogue to page through
# (and its page count would not fit the job's progress column).
MAX_CATALOGUE_SIZE = 1_000_000


@dataclass
class PaybackPage:
    total: int
    offers: list[Offer]
    # The odd values passed over, per (stripped) external id: a shop listed twice counts once, as it is stored.
    odd_values: dict[str, OddValues] = field(default_factory=dict)


def _shape_error(where: str) -> ScrapeError:
    return ScrapeError(f"PAYBACK-Katalog hat ein unerwartetes Format: {where}")


class _Entry:
    """Read one catalogue entry's optional fields, noting every value that is passed over."""

    def __init__(self, index: int, external_id: str) -> None:
        self.where = f"Eintrag {index} ({shown(external_id)})"
        self.odd = OddValues()

    def note(self, path: str, problem: str, value: Any) -> None:
        self.odd.add(f"{self.where}: {path!r} {problem} ({shown(value)})")

    def _items(self, value: Any, path: str) -> list[tuple[str, Any]]:
        """The entries of a list with their paths; anything but a list (or absence) is noted."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.note(path, "ist keine Liste", value)
            return []
        return [(f"{path}[{position}]", entry) for position, entry in enumerate(value)]

    def objects(self, value: Any, path: str) -> list[tuple[str, dict]]:
        """The objects of a list (with their paths); anything else in their place is noted."""
        found = []
        for item_path, entry in self._items(value, path):
            if isinstance(entry, dict):
                found.append((item_path, entry))
            else:
                self.note(item_path, "ist kein Objekt", entry)
        return found

    def text(self, value: Any, path: str) -> Optional[str]:
        """``value`` with its whitespace folded, ``None`` when blank or absent; any other type is noted."""
        if value is None:
            return None
        if not isinstance(value, str):
            self.note(path, "ist kein Text", value)
            return None
        return " ".join(value.split()) or None

    def texts(self, value: Any, path: str) -> list[str]:
        """The non-blank texts of a list; anything else in their place is noted."""
        found = []
        for item_path, entry in self._items(value, path):
            if entry is None:  # a hole in a list is odd, where an absent field is not
                self.note(item_path, "ist kein Text", entry)
            elif text := self.text(entry, item_path):
                found.append(text)
        return found

    def headline(self, container: dict, path: str) -> Optional[str]:
        return self.text(container.get("incentivationHeadline"), f"{path}.incentivationHeadline")


def parse_end_date(text: Optional[str]) -> Optional[datetime]:
    """Find a German end date (``bis 31.12.2026``) in a promotion's subline: the end of that day in
    Germany, as naive UTC like every stored time (22:59:59 in winter, 21:59:59 in summer)."""
    match = _END_DATE.search(text or "")
    if not match:
        return None
    day, month, year = (int(part) for part in match.groups())
    try:
        local_end = datetime(year, month, day, 23, 59, 59, tzinfo=CATALOGUE_ZONE)
        return local_end.astimezone(timezone.utc).replace(tzinfo=None)
    except (ValueError, OverflowError):  # 31.02., or a year at the calendar's edge
        return None


def _vanity(entry: _Entry, value: Any) -> Optional[str]:
    """The vanity name if it may become a link path ([A-Za-z0-9_-]+); anything else gets no link at all."""
    vanity = entry.text(value, "partnerVanityName")
    if vanity is not None and not is_safe_path_segment(vanity):
        entry.note("partnerVanityName", "taugt nicht als Link", vanity)
        return None
    return vanity


def _parse_item(item: Any, index: int) -> tuple[Offer, OddValues]:
    if not isinstance(item, dict) or not isinstance(item.get("partner"), dict):
        raise _shape_error(f"Eintrag {index} hat kein Objekt 'partner'")
    partner = item["partner"]
    external_id = partner.get("partnerShortName")
    name = partner.get("partnerDisplayName")
    # An id that cleaning would leave empty ("\x00") names no shop: it could not be stored apart.
    if not isinstance(external_id, str) or not clean_text(external_id):
        raise _shape_error(f"Eintrag {index} hat keine 'partnerShortName' ({shown(external_id)})")
    if not isinstance(name, str) or not name.strip():
        raise _shape_error(f"Eintrag {index} ({shown(external_id)}) hat keinen 'partnerDisplayName'")
    entry = _Entry(index, external_id)
    vanity = _vanity(entry, item.get("partnerVanityName"))

    rates = []
    incentivation = item.get("incentivation")
    if isinstance(incentivation, dict):
        base = entry.headline(incentivation, "incentivation")
        if base:
            rates.append(OfferRate(BASE, parse_rate(base)))
    elif incentivation is not None:
        entry.note("incentivation", "ist kein Objekt", incentivation)
    for path, promotion in entry.objects(item.get("promotionListItem"), "promotionListItem"):
        headline = entry.headline(promotion, path)
        subline = entry.text(promotion.get("incentivationSubline"), f"{path}.incentivationSubline")
        if headline:
            rates.append(OfferRate(PROMOTION, parse_rate(headline), subline, parse_end_date(subline)))

    domains: list[str] = []
    for path, extension in entry.objects(item.get("browserExtensionInfoListItem"), "browserExtensionInfoListItem"):
        for domain in entry.texts(extension.get("domainNameListItem"), f"{path}.domainNameListItem"):
            domain = domain.lower().removeprefix("www.")
            if domain not in domains:
                domains.append(domain)

    offer = Offer(
        external_id=external_id.strip(),
        name=" ".join(name.split()),
        slug=vanity,
        detail_url=SHOP_PAGE_URL.format(vanity=vanity) if vanity else None,
        domains=domains,
        categories=entry.texts(item.get("categoryShortNameListItem"), "categoryShortNameListItem"),
        rates=rates,
    )
    return offer, entry.odd


def parse_payback_page(payload: Any, offset: int = 0) -> PaybackPage:
    """Turn one decoded catalogue answer into offers; raise on an unknown shape.

    ``offset`` is the catalogue position of the answer's first entry, so
    messages number entries as the catalogue does, page after page.
    """
    if not isinstance(payload, dict):
        raise _shape_error("die Antwort ist kein JSON-Objekt")
    total = payload.get("totalResultSize")
    items = payload.get("digitalShopListItem")
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise _shape_error(f"'totalResultSize' fehlt oder ist keine Zahl ({shown(total)})")
    if total > MAX_CATALOGUE_SIZE:
        raise _shape_error(f"'totalResultSize' ist unglaubwürdig groß ({shown(total)})")
    if not isinstance(items, list):
        raise _shape_error("'digitalShopListItem' fehlt oder ist keine Liste")
    page = PaybackPage(total, [])
    for index, item in enumerate(items, start=offset):
        offer, odd = _parse_item(item, index)
        page.offers.append(offer)
        page.odd_values.pop(offer.external_id, None)  # listed twice: the last entry counts, as it is stored
        if odd.count:
            page.odd_values[offer.external_id] = odd
    return page


def _decode(body: bytes, url: str) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise ScrapeError(f"PAYBACK-Katalog {url} ist kein gültiges JSON (abgeschnitten?): {exc}") from exc
    except RecursionError as exc:  # nested deeper than the interpreter follows: no catalogue is
        raise ScrapeError(f"PAYBACK-Katalog {url} ist kein gültiges JSON: zu tief verschachtelt") from exc


def _report_odd_values(job: ScrapeJob, per_shop: Iterable[OddValues]) -> None:
    """Say in one message how many odd values were passed over, with the first few as examples."""
    odd = OddValues()
    for values in per_shop:
        odd.merge(values)
    if odd.count:
        job.add_message(
            f"{count_of(odd.count, 'ungewöhnlicher Wert', 'ungewöhnliche Werte')} übergangen: {odd.examples_text()}"
        )


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
        odd_values: dict[str, OddValues] = {}  # per shop, like the offers: the last listing counts
        offset, total, pages = 0, None, 1
        while total is None or offset < total:
            page_no = offset // page_size + 1
            params = {"pageSize": page_size, "pageOffset": offset}
            page = parse_payback_page(_decode(fetcher.get(source.url, params=params), source.url), offset)
            if total is None:
                total = page.total
                pages = max(1, -(-total // page_size))  # ceiling division in integers: no float overflow
                job.add_message(f"Katalog meldet {count_of(total, 'Shop', 'Shops')} auf {count_of(pages, 'Seite', 'Seiten')}")
            for offer in page.offers:
                offers[offer.external_id] = offer
                odd_values.pop(offer.external_id, None)
                if offer.external_id in page.odd_values:
                    odd_values[offer.external_id] = page.odd_values[offer.external_id]
            job.add_message(f"Seite {page_no} von {pages} geladen: {len(offers)} von {total} Shops")
            job.set_progress(page_no, pages + 1)
            if not page.offers:
                break  # the catalogue shrank while we paged: stop, and call it partial
            offset += page_size
        _report_odd_values(job, odd_values.values())
        complete = len(offers) >= (total or 0)
        if not complete:
            job.add_message(
                f"Nur {len(offers)} von {total} Shops erhalten: es wird nichts deaktiviert"
            )
        return store_and_report(job, run, list(offers.values()), complete, source.is_sample)
