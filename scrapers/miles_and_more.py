"""The Miles & More scraper: sitemap, then one server-rendered page per partner.

The portal's robots.txt disallows its JSON API, so this reads the sitemap the
robots.txt names and each ``/partner/<unique_name>`` page, whose data sits as
JSON in ``<script id="__STATIC_ROUTER_DATA__">`` at
``loaderData["0"].view.page.bonded_data``. Parsers are pure functions.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, Optional
from urllib.parse import urlsplit

import defusedxml.ElementTree as safe_xml
from bs4 import BeautifulSoup
from defusedxml import DefusedXmlException
from flask import current_app

from models import BASE, HINT, PER_EURO, PER_ORDER, PROMOTION
from scrapers.errors import ScrapeError
from scrapers.fetcher import Fetcher, FetchError, FetchSettings
from scrapers.progress import ScrapeJob
from scrapers.rates import ParsedRate, parse_rate
from scrapers.run_log import scrape_run, store_and_report
from scrapers.sources import open_source
from scrapers.store import Offer, OfferRate

PROGRAMME = "miles_and_more"
PAGE_QUERY = "?noredirect=1&site=de"
MAX_CHILD_SITEMAPS = 50
# Above this share of failed partner pages the run is not worth storing.
MAX_FAILED_SHARE = 0.2
_PARTNER_PATH = re.compile(r"^/partner/([A-Za-z0-9_.~-]+)/?$")
# The campaign types we understand; anything else keeps its raw text.
_CAMPAIGN_TYPES = {"miles_per_euro": PER_EURO, "fixed_miles": PER_ORDER}


def _shape_error(where: str) -> ScrapeError:
    return ScrapeError(f"Miles & More: unerwartetes Format: {where}")


def parse_sitemap(xml: bytes | str) -> tuple[list[str], list[str]]:
    """Return (partner page URLs, child sitemap URLs) of a sitemap or sitemap index."""
    try:
        root = safe_xml.fromstring(xml)
    except (safe_xml.ParseError, DefusedXmlException) as exc:
        raise _shape_error(f"die Sitemap ist kein gültiges XML ({exc})") from exc
    tag = root.tag.rsplit("}", 1)[-1]
    if tag not in ("urlset", "sitemapindex"):
        raise _shape_error(f"die Sitemap hat <{tag}> statt <urlset> oder <sitemapindex>")
    locs = [(loc.text or "").strip() for loc in root.iterfind("{*}*/{*}loc")]
    if tag == "sitemapindex":
        return [], [loc for loc in locs if loc]
    partners: list[str] = []
    for url in locs:
        if _PARTNER_PATH.match(urlsplit(url).path) and url not in partners:
            partners.append(url)
    return partners, []


def _format_number(value: float) -> str:
    return f"{value:g}".replace(".", ",")


def _miles_text(value: float, per: str) -> str:
    unit = "Meile" if value == 1 else "Meilen"
    return f"{_format_number(value)} {unit} {per}"


def _date(value: Any) -> Optional[datetime]:
    if not isinstance(value, str):
        return None
    try:
        day = datetime.fromisoformat(value[:10])
    except ValueError:
        return None
    return day.replace(hour=23, minute=59, second=59)


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _base_rate(bonded: dict) -> Optional[OfferRate]:
    points = _number(bonded.get("loyalty_points"))
    if points is not None:
        return OfferRate(BASE, ParsedRate(_miles_text(points, "pro 1 €"), PER_EURO, points))
    raw = bonded.get("loyalty_points")
    if raw in (None, ""):
        return None
    return OfferRate(BASE, ParsedRate(f"Meilen: {raw}"))  # kept, never guessed


def _campaign(bonded: dict) -> Optional[OfferRate]:
    campaign = bonded.get("min_refund")
    if not isinstance(campaign, dict):
        return None
    point_type = campaign.get("point_type")
    value = _number(campaign.get("point_value"))
    rate_type = _CAMPAIGN_TYPES.get(point_type)
    if rate_type is None or value is None:
        parsed = ParsedRate(f"Aktion: {campaign.get('point_value')} ({point_type})")
    elif rate_type == PER_EURO:
        parsed = ParsedRate(_miles_text(value, "pro 1 €"), PER_EURO, value)
    else:
        parsed = ParsedRate(_miles_text(value, "pro Einkauf"), PER_ORDER, value)
    start, end = campaign.get("start_date"), campaign.get("end_date")
    detail = f"Aktion {start or '?'} bis {end or '?'}"
    return OfferRate(PROMOTION, parsed, detail, _date(end))


def _hints(bonded: dict) -> list[OfferRate]:
    hints = []
    for hint in bonded.get("currently_active_hints") or []:
        if not isinstance(hint, dict):
            continue
        title = hint.get("title")
        if isinstance(title, dict):
            title = title.get("de") or title.get("en")
        if not isinstance(title, str) or not title.strip():
            continue
        minimum = _number(hint.get("total_min"))
        detail = f"ab {_format_number(minimum)} € Einkaufswert" if minimum else None
        hints.append(OfferRate(HINT, parse_rate(" ".join(title.split())), detail, _date(hint.get("end_date"))))
    return hints


def parse_partner_page(html: bytes | str, page_url: str) -> Optional[Offer]:
    """Turn one partner page into an offer; ``None`` when it is not offered to shoppers."""
    soup = BeautifulSoup(html, "html.parser")
    script = soup.find("script", id="__STATIC_ROUTER_DATA__")
    if script is None:
        raise _shape_error(f"{page_url} hat kein __STATIC_ROUTER_DATA__")
    try:
        data = json.loads(script.string or "")
        bonded = data["loaderData"]["0"]["view"]["page"]["bonded_data"]
    except (ValueError, KeyError, TypeError) as exc:
        raise _shape_error(f"{page_url}: bonded_data nicht lesbar ({type(exc).__name__}: {exc})") from exc
    if not isinstance(bonded, dict):
        raise _shape_error(f"{page_url}: bonded_data ist kein Objekt")
    unique_name, name = bonded.get("unique_name"), bonded.get("name")
    if not isinstance(unique_name, str) or not unique_name.strip():
        raise _shape_error(f"{page_url}: 'unique_name' fehlt")
    if not isinstance(name, str) or not name.strip():
        raise _shape_error(f"{page_url}: 'name' fehlt")
    status = bonded.get("status")
    if bonded.get("visible") is False or bonded.get("hidden_shop") is True:
        return None
    if isinstance(status, str) and status.lower() != "active":
        return None

    logo = bonded.get("partner_logo")
    logo_url = logo.get("resolved_url") if isinstance(logo, dict) else None
    page = urlsplit(page_url)
    rates = [rate for rate in (_base_rate(bonded), _campaign(bonded)) if rate is not None]
    return Offer(
        external_id=unique_name.strip(),
        name=" ".join(name.split()),
        slug=unique_name.strip(),
        detail_url=f"{page.scheme}://{page.netloc}{page.path}",
        logo_url=logo_url if isinstance(logo_url, str) else None,
        rates=rates + _hints(bonded),
    )


def _partner_urls(fetcher: Fetcher, sitemap_url: str) -> list[str]:
    partners, children = parse_sitemap(fetcher.get(sitemap_url))
    for child in children[:MAX_CHILD_SITEMAPS]:
        more, _ = parse_sitemap(fetcher.get(child))
        partners.extend(url for url in more if url not in partners)
    return partners


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
        urls = _partner_urls(fetcher, source.url)
        if not urls:
            raise _shape_error("die Sitemap enthält keine /partner/-Seiten")
        total = len(urls)
        job.add_message(
            f"{total} Partnerseiten gefunden; lade bis zu {settings.host_concurrency} gleichzeitig, "
            f"mindestens {settings.min_interval:g} s Abstand"
        )
        job.set_progress(0, total + 1)
        offers: list[Offer] = []
        failures: list[FetchError] = []
        hidden = 0
        report_every = max(1, total // 20)
        for done, (url, body) in enumerate(fetcher.get_many([url + PAGE_QUERY for url in urls]), 1):
            if isinstance(body, FetchError):
                failures.append(body)
                job.add_message(f"Seite übersprungen: {body}")
            else:
                offer = parse_partner_page(body, url)
                if offer is None:
                    hidden += 1
                else:
                    offers.append(offer)
            job.set_progress(done, total + 1)
            if done % report_every == 0 or done == total:
                job.add_message(f"{done} von {total} Partnerseiten geladen")
        if len(failures) > MAX_FAILED_SHARE * total:
            raise ScrapeError(
                f"{len(failures)} von {total} Partnerseiten nicht ladbar; erster Fehler: {failures[0]}"
            )
        if hidden:
            job.add_message(f"{hidden} Partner nicht für Kunden sichtbar: ausgelassen")
        complete = not failures
        if not complete:
            job.add_message(f"{len(failures)} Seiten fehlen: Lauf unvollständig, es wird nichts deaktiviert")
        return store_and_report(job, run, offers, complete, source.is_sample)
