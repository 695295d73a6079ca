"""Pure parsers of the Miles & More portal: its sitemap and its partner pages.

Shapes as seen on the live portal, logged out (capture of 2026-09); the
partner record is ``loaderData["0"].view.page.bonded_data`` in
``<script id="__STATIC_ROUTER_DATA__">``:

* ``status`` is normally ``"online"``. Only ``visible`` false or
  ``hidden_shop`` true mean "not offered to shoppers"; any other status is
  kept, and reported by the scraper.
* ``loyalty_points`` is miles per euro. ``min_refund`` is there only while a
  campaign runs; ``point_type: "factor"`` means miles per euro, and
  ``loyalty_points`` then already equals the campaign's value, so the offer
  gets one rate, the campaign with its end date, not a base rate beside it.
* ``currently_active_hints[]`` have a ``title`` that is a list of
  ``{"locale", "content"}`` entries with HTML content.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from typing import Any, Optional
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import defusedxml.ElementTree as safe_xml
import lxml.etree
import lxml.html
from defusedxml import DefusedXmlException

from models import BASE, HINT, PER_EURO, PROMOTION
from scrapers.errors import ScrapeError
from scrapers.rates import ParsedRate
from scrapers.sanitize import clean_text, html_to_text, shown, without_surrogates
from scrapers.store import Offer, OfferRate

# Partner pages must carry these, or the portal redirects to a host that refuses bots.
PAGE_QUERY = (("noredirect", "1"), ("site", "de"))
ONLINE = "online"
# What "Wert pro 100 €" assumes one spends: a campaign needing more is not counted.
REFERENCE_SPEND = 100
_PARTNER_PATH = re.compile(r"^/partner/([A-Za-z0-9_.~-]+)/?$")


def _shape_error(where: str) -> ScrapeError:
    return ScrapeError(f"Miles & More: unerwartetes Format: {where}")


class TooManyPartners(ScrapeError):
    """The sitemap lists more partner pages than ``MAX_SITEMAP_URLS``."""


def parse_sitemap(xml: bytes | str, limit: int = 5000, known: Optional[set[str]] = None) -> tuple[list[str], list[str]]:
    """Return (new partner page URLs, child sitemap URLs) of a sitemap or sitemap index.

    Partner URLs are de-duplicated against ``known`` (updated in place, shared
    across child sitemaps); more than ``limit`` in all raises ``TooManyPartners``
    at once. A ``<loc>`` that is no URL at all is no partner page; a child
    sitemap that is none fails the run, as a child that cannot be loaded does.
    """
    if isinstance(xml, str):  # text cannot hold a lone surrogate once encoded for the parser
        xml = without_surrogates(xml)
    try:
        root = safe_xml.fromstring(xml)
    except (safe_xml.ParseError, DefusedXmlException) as exc:
        raise _shape_error(f"die Sitemap ist kein gültiges XML ({exc})") from exc
    tag = root.tag.rsplit("}", 1)[-1]
    if tag not in ("urlset", "sitemapindex"):
        raise _shape_error(f"die Sitemap hat <{tag}> statt <urlset> oder <sitemapindex>")
    locs = ((loc.text or "").strip() for loc in root.iterfind("{*}*/{*}loc"))
    if tag == "sitemapindex":
        children = [loc for loc in locs if loc]
        for child in children:
            if _path(child) is None:
                raise _shape_error(f"die Sitemap verweist auf {shown(child, 200)}, das ist keine URL")
        return [], children
    seen = known if known is not None else set()
    partners: list[str] = []
    for url in locs:
        path = _path(url)
        if url in seen or path is None or not _PARTNER_PATH.match(path):
            continue
        seen.add(url)
        partners.append(url)
        if len(seen) > limit:
            raise TooManyPartners(
                f"Die Sitemap listet mehr als {limit} Partnerseiten (Grenze MAX_SITEMAP_URLS): "
                "Lauf abgebrochen, nichts gespeichert"
            )
    return partners, []


def _path(url: str) -> Optional[str]:
    """The path of ``url``, or ``None`` if it cannot be taken apart ("http://[::1")."""
    try:
        return urlsplit(url).path
    except ValueError:
        return None


def partner_page_url(url: str) -> str:
    """``url`` with ``noredirect=1&site=de`` set once, whatever query it already has."""
    parts = urlsplit(url)
    names = {name for name, _ in PAGE_QUERY}
    query = [(name, value) for name, value in parse_qsl(parts.query, keep_blank_values=True) if name not in names]
    return urlunsplit(parts._replace(query=urlencode(query + list(PAGE_QUERY)), fragment=""))


def public_partner_url(url: str) -> str:
    """The partner page as shoppers open it: no query (their browser may follow the redirect)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _format_number(value: float) -> str:
    return f"{value:g}".replace(".", ",")


def _miles_text(value: float) -> str:
    return f"{_format_number(value)} {'Meile' if value == 1 else 'Meilen'} pro 1 €"


def _date(value: Any) -> Optional[datetime]:
    """Read an ISO date or timestamp as naive UTC; a bare date means the end of that day."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is not None:
            return moment.astimezone(timezone.utc).replace(tzinfo=None)
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 moved past the calendar's end
        return None
    return moment.replace(hour=23, minute=59, second=59) if len(value) == 10 else moment


def _number(value: Any) -> Optional[float]:
    """``value`` as a finite float, or ``None`` (an integer too big for a float is no rate either)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _campaign(bonded: dict) -> Optional[OfferRate]:
    campaign = bonded.get("min_refund")
    if not isinstance(campaign, dict):
        return None
    value = _number(campaign.get("point_value"))
    if campaign.get("point_type") == "factor" and value is not None:
        parsed = ParsedRate(_miles_text(value), PER_EURO, value)
    else:  # a type we have not seen: kept as text, never guessed
        parsed = ParsedRate(f"Aktion: {campaign.get('point_value')} ({campaign.get('point_type')})")
    start, end = _date(campaign.get("start_date")), _date(campaign.get("end_date"))
    detail = f"Aktion vom {start:%d.%m.%Y}" if start else None
    return OfferRate(PROMOTION, parsed, detail, end)


def _base(bonded: dict, campaign: Optional[OfferRate]) -> Optional[OfferRate]:
    raw = bonded.get("loyalty_points")
    points = _number(raw)
    if points is None:
        return None if raw in (None, "") else OfferRate(BASE, ParsedRate(f"Meilen: {raw}"))
    if campaign is not None and campaign.parsed.value == points:
        return None  # the campaign's value, already shown as the campaign: never twice
    return OfferRate(BASE, ParsedRate(_miles_text(points), PER_EURO, points))


def hint_title(title: Any) -> str:
    """Plain text of a hint title: German, else English, else the first entry; HTML stripped."""
    if isinstance(title, str):
        return html_to_text(title)
    entries = [entry for entry in title if isinstance(entry, dict)] if isinstance(title, list) else []
    by_locale = {entry.get("locale"): entry.get("content") for entry in entries
                 if isinstance(entry.get("locale"), str)}
    for content in (by_locale.get("de"), by_locale.get("en"), *(e.get("content") for e in entries)):
        if isinstance(content, str) and html_to_text(content):
            return html_to_text(content)
    return ""


def _hint(hint: dict, campaign: Optional[OfferRate]) -> Optional[OfferRate]:
    value = _number(hint.get("point_value"))
    minimum = _number(hint.get("total_min")) or 0.0
    title = hint_title(hint.get("title")) or (_miles_text(value) if value is not None else "")
    if not title:
        return None
    details = []
    if isinstance(hint.get("voucher_code"), str) and hint["voucher_code"].strip():
        details.append(f"Code {hint['voucher_code'].strip()}")
    if minimum:
        details.append(f"ab {_format_number(minimum)} € Einkaufswert")
    detail = ", ".join(details) or None
    ends_at = _date(hint.get("end_date"))
    per_euro = hint.get("type") == "campaign" and hint.get("point_type") == "factor" and value is not None
    if not per_euro:
        return OfferRate(HINT, ParsedRate(title), detail, ends_at)
    parsed = ParsedRate(title, PER_EURO, value)
    if campaign is not None and (campaign.parsed.value, campaign.ends_at) == (value, ends_at):
        return None  # the same campaign as min_refund: counted once
    # A campaign that needs more than the reference spend is shown, not counted.
    return OfferRate(PROMOTION if minimum <= REFERENCE_SPEND else HINT, parsed, detail, ends_at)


def _router_data(html: bytes | str) -> Optional[str]:
    """The text of the page's ``__STATIC_ROUTER_DATA__`` script, or ``None``.

    lxml (libxml2's HTML parser, in C, without the interpreter lock while it
    parses) builds the page's tree about ten times faster than html.parser
    built even the one script element. Bytes are read as UTF-8, as the portal
    sends them; bytes that are not UTF-8 go to lxml as they are, which honours
    a ``<meta charset>``.
    """
    if isinstance(html, bytes):
        try:
            html = html.decode("utf-8")
        except UnicodeDecodeError:
            pass
    try:
        document = lxml.html.document_fromstring(html)
    except (lxml.etree.ParserError, ValueError):
        return None  # an empty page, or text that is no HTML at all
    scripts = document.xpath('//script[@id="__STATIC_ROUTER_DATA__"]')
    return (scripts[0].text or "") if scripts else None


def read_bonded_data(html: bytes | str, page_url: str) -> dict:
    """Return the partner record of a partner page; raise ``ScrapeError`` on another shape."""
    data = _router_data(html)
    if data is None:
        raise _shape_error(f"{page_url} hat kein __STATIC_ROUTER_DATA__")
    try:
        bonded = json.loads(data)["loaderData"]["0"]["view"]["page"]["bonded_data"]
    except (ValueError, KeyError, TypeError) as exc:
        raise _shape_error(f"{page_url}: bonded_data nicht lesbar ({type(exc).__name__}: {exc})") from exc
    except RecursionError as exc:  # nested deeper than the interpreter follows: no partner record is
        raise _shape_error(f"{page_url}: bonded_data nicht lesbar (zu tief verschachtelt)") from exc
    if not isinstance(bonded, dict):
        raise _shape_error(f"{page_url}: bonded_data ist kein Objekt")
    return bonded


def parse_partner_page(html: bytes | str, page_url: str) -> Optional[Offer]:
    """Turn one partner page into an offer; ``None`` when it is not offered to shoppers.

    ``page_url`` is the page's public URL; it becomes the offer's link.
    """
    bonded = read_bonded_data(html, page_url)
    unique_name, name = bonded.get("unique_name"), bonded.get("name")
    # A name that cleaning would leave empty ("\x00") names no partner: it could not be stored apart.
    if not isinstance(unique_name, str) or not clean_text(unique_name):
        raise _shape_error(f"{page_url}: 'unique_name' fehlt ({shown(unique_name)})")
    if not isinstance(name, str) or not name.strip():
        raise _shape_error(f"{page_url}: 'name' fehlt")
    if bonded.get("visible") is False or bonded.get("hidden_shop") is True:
        return None
    logo = bonded.get("partner_logo")
    logo_url = logo.get("resolved_url") if isinstance(logo, dict) else None
    campaign = _campaign(bonded)
    listed = bonded.get("currently_active_hints")
    hints = [_hint(hint, campaign) for hint in listed if isinstance(hint, dict)] if isinstance(listed, list) else []
    status = bonded.get("status")
    return Offer(
        external_id=unique_name.strip(),
        name=" ".join(name.split()),
        slug=unique_name.strip(),
        detail_url=public_partner_url(page_url),
        logo_url=logo_url if isinstance(logo_url, str) else None,
        rates=[rate for rate in (_base(bonded, campaign), campaign, *hints) if rate is not None],
        source_status=status if isinstance(status, str) else repr(status),
    )

