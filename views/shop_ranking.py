"""One page of the comparison: rank every merchant from narrow rows, load full shops only for the page.

Merchants are groups of shops across programmes (same domain or name,
``views/comparison.py``), so neither the grouping nor "best value first" can be
paged by SQL alone. The ranking therefore reads two narrow column queries
(shops: id, name, domains, programme; running rates: the fields a value needs)
into light stand-ins for ``Shop`` and ``Rate``, and only the page's shops are
loaded as ORM objects with their rates for rendering. Statements per request
are fixed; the heavy rows (every rate's text, links, history) are the page's only.

Ranking 1,200 shops costs 100–200 ms of Python, which is that long the
web process's other requests (the job_status polls) wait for its interpreter lock. The data
changes only when a scrape stores (or an admin accepts) a run, so the ranking
is kept per process and rebuilt when the data's version changes (one cheap
statement), and at least every ``RANKING_SECONDS`` because running promotions
end as time passes.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Mapping, Optional, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from flask import current_app

from models import Programme, Rate, Shop, db
from views.comparison import ShopComparison, by_name, by_value, compare_group, group_shops
from views.search import PREFIX, Query

PAGE_SIZE = 50
RANKING_SECONDS = 60.0
_CACHE_KEY = "comparison_ranking"
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
    programme: "ProgrammeRow"
    rates: list[RateRow] = field(default_factory=list)


@dataclass
class ComparisonPage:
    comparisons: list[ShopComparison]
    number: int
    count: int  # pages in all
    total: int  # merchants matching the filters


def _shop_rows(programmes: Sequence[ProgrammeRow], now: datetime) -> list[ShopRow]:
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


@dataclass(frozen=True)
class ProgrammeRow:
    """What ranking reads of a programme, as plain data: a kept ranking outlives its session."""

    id: int
    slug: str
    name: str
    unit_name: str
    is_sample: bool


def _data_version() -> tuple:
    """Changes whenever stored offers do: every store touches ``last_seen``, rates get ids or an end."""
    return tuple(db.session.execute(sa.select(
        sa.select(sa.func.max(Shop.last_seen)).scalar_subquery(),
        sa.select(sa.func.count()).select_from(Shop).where(Shop.active).scalar_subquery(),
        sa.select(sa.func.max(Rate.id)).scalar_subquery(),
        sa.select(sa.func.max(Rate.valid_to)).scalar_subquery(),
    )).one())


class _RankingCache:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.key: Optional[tuple] = None
        self.built_at = 0.0
        self.ranked: list[ShopComparison] = []
        self.merchant_of: dict[int, ShopComparison] = {}  # shop id -> its merchant's comparison


def _ranking(programmes: Sequence[Programme], euro_per_unit: Mapping[str, Optional[float]],
             now: datetime) -> _RankingCache:
    """Every merchant compared, from this process's kept ranking when the data has not changed."""
    cache = current_app.extensions.setdefault(_CACHE_KEY, _RankingCache())
    key = (_data_version(), tuple(sorted(euro_per_unit.items())),
           tuple((p.id, p.slug, p.name, p.unit_name, p.is_sample) for p in programmes))
    with cache.lock:
        if cache.key == key and time.monotonic() - cache.built_at < RANKING_SECONDS:
            return cache
    rows = [ProgrammeRow(p.id, p.slug, p.name, p.unit_name, p.is_sample) for p in programmes]
    ranked = [compare_group(group, euro_per_unit, now) for group in group_shops(_shop_rows(rows, now))]
    merchant_of = {offer.shop.id: comparison for comparison in ranked for offer in comparison.offers}
    with cache.lock:
        cache.key, cache.built_at, cache.ranked, cache.merchant_of = key, time.monotonic(), ranked, merchant_of
    return cache


def merchant_shop_ids(programmes: Sequence[Programme], euro_per_unit: Mapping[str, Optional[float]],
                      now: datetime, shop_id: int) -> Optional[list[int]]:
    """The ids of the shops that are one merchant with ``shop_id`` (itself included), from the kept
    ranking: a shop page loads those, not the whole catalogue. None for a shop not ranked (inactive)."""
    comparison = _ranking(programmes, euro_per_unit, now).merchant_of.get(shop_id)
    return [offer.shop.id for offer in comparison.offers] if comparison is not None else None


def _matching(ranked: list[ShopComparison], query: str) -> list[ShopComparison]:
    """The merchants whose name (in any programme) matches ``query``: exact and prefix matches first,
    then the others, each part in the page's order (``views/search.py``)."""
    wanted = Query(query)
    close, loose_matches = [], []
    for comparison in ranked:
        ranks = [rank for offer in comparison.offers if (rank := wanted.rank(offer.shop.name)) is not None]
        if ranks:
            (close if min(ranks) <= PREFIX else loose_matches).append(comparison)
    return close + loose_matches


def comparison_page(programmes: Sequence[Programme], euro_per_unit: Mapping[str, Optional[float]],
                    now: datetime, *, query: str = "", programme: str = "", sort: str = "value",
                    number: int = 1) -> Optional[ComparisonPage]:
    """Rank the merchants matching the filters and build page ``number`` (None: no such page)."""
    ranked = _ranking(programmes, euro_per_unit, now).ranked
    if programme:
        ranked = [comparison for comparison in ranked if programme in comparison.programme_slugs]
    ranked = sorted(ranked, key=SORTS.get(sort, by_value))  # a new list: the kept ranking stays as it is
    if query:
        ranked = _matching(ranked, query)
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
