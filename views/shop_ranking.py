"""One page of the comparison: rank every merchant from narrow rows, load full shops only for the page.

Merchants are groups of shops across programmes (same domain or name,
``views/comparison.py``), so neither the grouping nor "best value first" can be
paged by SQL alone. The ranking therefore reads two narrow column queries
(shops: id, name, domains, programme; running rates: the fields a value needs)
into light stand-ins for ``Shop`` and ``Rate``, and only the page's shops are
loaded as ORM objects with their rates for rendering. Statements per request
are fixed; the heavy rows (every rate's text, links, history) are the page's only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Mapping, Optional, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from models import Programme, Rate, Shop, db
from views.comparison import ShopComparison, by_name, by_value, compare_group, group_shops, matches_query

PAGE_SIZE = 50
SORTS = {"value": by_value, "name": by_name}


@dataclass(frozen=True)
class RateRow:
    """The fields of a running ``Rate`` that its value depends on."""

    kind: str
    raw_text: str
    rate_type: Optional[str]
    value: Optional[float]
    up_to: bool
    detail: Optional[str]
    ends_at: Optional[datetime]
    valid_to: Optional[datetime] = None


@dataclass
class ShopRow:
    """A shop as ranking needs it: what grouping and valuing read, nothing more."""

    id: int
    name: str
    domains: list
    programme: Programme
    rates: list[RateRow] = field(default_factory=list)


@dataclass
class ComparisonPage:
    comparisons: list[ShopComparison]
    number: int
    count: int  # pages in all
    total: int  # merchants matching the filters


def _shop_rows(programmes: Sequence[Programme], now: datetime) -> list[ShopRow]:
    by_id = {programme.id: programme for programme in programmes}
    shops = {
        shop_id: ShopRow(shop_id, name, domains or [], by_id[programme_id])
        for shop_id, name, domains, programme_id in db.session.execute(
            sa.select(Shop.id, Shop.name, Shop.domains, Shop.programme_id).where(Shop.active))
    }
    rates = db.session.execute(
        sa.select(Rate.shop_id, Rate.kind, Rate.raw_text, Rate.rate_type, Rate.value, Rate.up_to,
                  Rate.detail, Rate.ends_at)
        .join(Shop, Shop.id == Rate.shop_id)
        .where(Shop.active, Rate.valid_to.is_(None), sa.or_(Rate.ends_at.is_(None), Rate.ends_at >= now))
        .order_by(Rate.id)
    )
    for shop_id, *fields in rates:
        shops[shop_id].rates.append(RateRow(*fields))
    return list(shops.values())


def comparison_page(programmes: Sequence[Programme], euro_per_unit: Mapping[str, Optional[float]],
                    now: datetime, *, query: str = "", programme: str = "", sort: str = "value",
                    number: int = 1) -> Optional[ComparisonPage]:
    """Rank the merchants matching the filters and build page ``number`` (None: no such page)."""
    ranked = [compare_group(group, euro_per_unit, now) for group in group_shops(_shop_rows(programmes, now))]
    if query:
        ranked = [comparison for comparison in ranked if matches_query(comparison, query)]
    if programme:
        ranked = [comparison for comparison in ranked if programme in comparison.programme_slugs]
    ranked.sort(key=SORTS.get(sort, by_value))
    count = max(1, math.ceil(len(ranked) / PAGE_SIZE))
    if not 1 <= number <= count:
        return None
    shown = ranked[(number - 1) * PAGE_SIZE: number * PAGE_SIZE]
    wanted = [offer.shop.id for comparison in shown for offer in comparison.offers]
    loaded = {shop.id: shop for shop in db.session.scalars(
        sa.select(Shop).where(Shop.id.in_(wanted)).options(selectinload(Shop.rates)))} if wanted else {}
    comparisons = [compare_group([loaded[offer.shop.id] for offer in comparison.offers], euro_per_unit, now)
                   for comparison in shown]
    return ComparisonPage(comparisons, number, count, len(ranked))
