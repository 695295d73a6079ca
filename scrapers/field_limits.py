"""Fit scraped offers into their database columns: cleaned, cut to length, counted.

One odd value must never fail a whole run: a 200,000-character shop name
would make PostgreSQL refuse the batch (``value too long``), a NUL character
too, while SQLite would silently store both. So every text is cleaned
(``sanitize.clean_text``) and cut to its column's length before it is
written, and the run reports how many values were cut. A link that does not
fit is dropped rather than cut: half a URL leads somewhere else.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

from models import Rate, Shop
from scrapers.sanitize import clean_text
from scrapers.store import Offer, OfferRate

MAX_LIST_ITEMS = 50  # domains, categories per shop
MAX_LIST_ITEM_LENGTH = 253  # the longest DNS name


def _length(model: type, column: str) -> int:
    return model.__table__.c[column].type.length


_SHOP_LENGTHS = {name: _length(Shop, name) for name in ("external_id", "name", "slug", "detail_url", "logo_url")}
_RATE_LENGTHS = {name: _length(Rate, name) for name in ("raw_text", "detail")}


class _Cutter:
    """Clean and cut values, counting every value that had to change length."""

    def __init__(self) -> None:
        self.cuts = 0

    def text(self, value: str, limit: int) -> str:
        cleaned = clean_text(value)
        if len(cleaned) > limit:
            self.cuts += 1
            return cleaned[: limit - 1].rstrip() + "…"
        return cleaned

    def optional_text(self, value: Optional[str], limit: int) -> Optional[str]:
        return None if value is None else self.text(value, limit) or None

    def link(self, value: Optional[str], limit: int) -> Optional[str]:
        if value is None:
            return None
        cleaned = clean_text(value).replace(" ", "%20")
        if len(cleaned) > limit:
            self.cuts += 1
            return None
        return cleaned or None

    def items(self, values: list[str]) -> list[str]:
        kept = [self.text(value, MAX_LIST_ITEM_LENGTH) for value in values]
        kept = [value for value in dict.fromkeys(kept) if value]
        if len(kept) > MAX_LIST_ITEMS:
            self.cuts += 1
        return kept[:MAX_LIST_ITEMS]

    def rate(self, rate: OfferRate) -> OfferRate:
        parsed = replace(rate.parsed, raw_text=self.text(rate.parsed.raw_text, _RATE_LENGTHS["raw_text"]))
        return replace(rate, parsed=parsed, detail=self.optional_text(rate.detail, _RATE_LENGTHS["detail"]))


def fit_offer(offer: Offer) -> tuple[Offer, int]:
    """Return ``offer`` cleaned and cut to the columns it is stored in, and the number of cuts."""
    cut = _Cutter()
    external_id = cut.text(offer.external_id, _SHOP_LENGTHS["external_id"])
    fitted = replace(
        offer,
        external_id=external_id,
        name=cut.text(offer.name, _SHOP_LENGTHS["name"]) or external_id,
        slug=cut.optional_text(offer.slug, _SHOP_LENGTHS["slug"]),
        detail_url=cut.link(offer.detail_url, _SHOP_LENGTHS["detail_url"]),
        logo_url=cut.link(offer.logo_url, _SHOP_LENGTHS["logo_url"]),
        domains=cut.items(offer.domains),
        categories=cut.items(offer.categories),
        rates=[cut.rate(rate) for rate in offer.rates],
    )
    return fitted, cut.cuts


def fit_offers(offers: list[Offer]) -> tuple[list[Offer], dict[str, int]]:
    """Fit each offer (``fit_offer``); return them and the cuts per (fitted) external id that had any.

    Cuts are kept per shop, the last offer of a shop winning as it does when
    stored (``write_offers``): they count the cut values of exactly the
    offers that are stored, however often a shop was listed.
    """
    fitted: list[Offer] = []
    cuts: dict[str, int] = {}
    for offer in offers:
        offer, count = fit_offer(offer)
        fitted.append(offer)
        cuts[offer.external_id] = count
    return fitted, {external_id: count for external_id, count in cuts.items() if count}
