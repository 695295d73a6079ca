"""Write scraped offers to the database: idempotent upserts with rate history.

A shop is keyed by its programme's stable external id. A rate that changed is
closed (``valid_to``) and a new one opened, so the history stays complete.
Running the same scrape twice adds and updates nothing the second time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, Optional

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from database import utcnow
from models import EARN_RATE_KINDS, Programme, Rate, Shop, begin_write, db
from scrapers.rates import ParsedRate


@dataclass(frozen=True)
class OfferRate:
    """One rate of an offer: the base rate or a promotion, with its parse."""

    kind: str
    parsed: ParsedRate
    detail: Optional[str] = None
    ends_at: Optional[datetime] = None

    @property
    def identity(self) -> tuple:
        return (self.kind, self.parsed.raw_text, self.detail, self.ends_at)


@dataclass
class Offer:
    """What a programme publishes about one partner shop."""

    external_id: str
    name: str
    slug: Optional[str] = None
    detail_url: Optional[str] = None
    logo_url: Optional[str] = None
    domains: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    rates: list[OfferRate] = field(default_factory=list)
    # The programme's own status word for the partner, if it has one: reported, not stored.
    source_status: Optional[str] = None

    @property
    def unparsed_rates(self) -> int:
        return sum(
            1 for rate in self.rates if rate.kind in EARN_RATE_KINDS and not rate.parsed.is_parsed
        )


@dataclass
class StoreResult:
    added: int = 0
    updated: int = 0
    deactivated: int = 0


_SHOP_FIELDS = ("name", "slug", "detail_url", "logo_url", "domains", "categories")


def _rate_identity(rate: Rate) -> tuple:
    return (rate.kind, rate.raw_text, rate.detail, rate.ends_at)


def _new_rate(offer_rate: OfferRate, now: datetime) -> Rate:
    parsed = offer_rate.parsed
    return Rate(
        kind=offer_rate.kind,
        raw_text=parsed.raw_text,
        rate_type=parsed.rate_type,
        value=parsed.value,
        up_to=parsed.up_to,
        detail=offer_rate.detail,
        ends_at=offer_rate.ends_at,
        valid_from=now,
    )


def _sync_rates(shop: Shop, offer: Offer, now: datetime) -> bool:
    """Close rates that are gone, open rates that are new; return whether any changed."""
    current = {_rate_identity(rate): rate for rate in shop.current_rates}
    wanted = {rate.identity: rate for rate in offer.rates}
    changed = False
    for identity, rate in current.items():
        if identity not in wanted:
            rate.valid_to = now
            changed = True
    for identity, offer_rate in wanted.items():
        if identity not in current:
            shop.rates.append(_new_rate(offer_rate, now))
            changed = True
    return changed


def store_offers(
    programme_slug: str, offers: Iterable[Offer], complete: bool, is_sample: bool = False
) -> StoreResult:
    """Upsert ``offers`` of one programme and commit.

    ``complete`` says the offers are the programme's whole catalogue: only
    then are shops missing from it marked inactive (never deleted).
    ``is_sample`` says they came from a bundled sample, not the live site.
    """
    begin_write()
    result = write_offers(programme_slug, offers, complete, is_sample)
    db.session.commit()
    return result


def write_offers(
    programme_slug: str, offers: Iterable[Offer], complete: bool, is_sample: bool = False
) -> StoreResult:
    """Upsert as ``store_offers`` does, inside the caller's write transaction (no commit).

    For callers that decide in the same transaction whether to write at all
    (the drift guard, accepting a held run), so nothing changes in between.
    """
    programme = db.session.scalar(sa.select(Programme).where(Programme.slug == programme_slug))
    if programme is None:
        raise LookupError(f"unknown programme {programme_slug!r}")
    shops = {
        shop.external_id: shop
        for shop in db.session.scalars(
            sa.select(Shop)
            .where(Shop.programme_id == programme.id)
            .options(selectinload(Shop.rates))
        )
    }
    now = utcnow()
    result = StoreResult()
    seen: set[str] = set()
    for offer in {offer.external_id: offer for offer in offers}.values():
        seen.add(offer.external_id)
        shop = shops.get(offer.external_id)
        if shop is None:
            shop = Shop(programme=programme, external_id=offer.external_id, first_seen=now,
                        is_sample=is_sample)
            for name in _SHOP_FIELDS:
                setattr(shop, name, getattr(offer, name))
            shop.rates = [_new_rate(rate, now) for rate in offer.rates]
            db.session.add(shop)
            result.added += 1
        else:
            changed = not shop.active or shop.is_sample != is_sample
            shop.active, shop.is_sample = True, is_sample
            for name in _SHOP_FIELDS:
                if getattr(shop, name) != getattr(offer, name):
                    setattr(shop, name, getattr(offer, name))
                    changed = True
            if _sync_rates(shop, offer, now):
                changed = True
            result.updated += changed
        shop.last_seen = now
    if complete:
        for external_id, shop in shops.items():
            if external_id not in seen and shop.active:
                shop.active = False
                result.deactivated += 1
    db.session.flush()
    return result
