"""Offers as plain JSON, so a held run can be applied later exactly as it was read.

A held run (``scrapers/drift_guard.py``) keeps its fitted offers on its
``ScrapeRun``; accepting it turns them back into ``Offer`` objects and stores
them through the normal path. Dates travel as ISO strings.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any, Iterable, Optional

from scrapers.rates import ParsedRate
from scrapers.store import Offer, OfferRate


def _date_text(moment: Optional[datetime]) -> Optional[str]:
    return moment.isoformat() if moment is not None else None


def _date(text: Optional[str]) -> Optional[datetime]:
    return datetime.fromisoformat(text) if text else None


def offers_to_json(offers: Iterable[Offer]) -> list[dict[str, Any]]:
    """Turn offers into JSON-ready dicts (lists, strings, numbers, None)."""
    encoded = []
    for offer in offers:
        item = asdict(offer)
        item["rates"] = [
            {"kind": rate.kind, "parsed": asdict(rate.parsed), "detail": rate.detail,
             "ends_at": _date_text(rate.ends_at)}
            for rate in offer.rates
        ]
        encoded.append(item)
    return encoded


def offers_from_json(items: Iterable[dict[str, Any]]) -> list[Offer]:
    """Rebuild the offers ``offers_to_json`` encoded."""
    offers = []
    for item in items:
        rates = [
            OfferRate(rate["kind"], ParsedRate(**rate["parsed"]), rate["detail"], _date(rate["ends_at"]))
            for rate in item["rates"]
        ]
        offers.append(Offer(**{**item, "rates": rates}))
    return offers
