"""Compare the programmes' offers for one shop: which pays most per 100 € spent.

Shops of different programmes are matched by a shared domain where known,
else by normalised name. Values are computed only from parsed rates; a rate
that was not understood is shown as its raw text and never ranked. A running
promotion counts when its value per euro is known: its own (``PER_EURO``,
``PERCENT``) or a multiple of a per-euro base rate (``MULTIPLIER``: "10-fach
°P" on "1 °P pro 2 €" is 5 °P per euro). A promotion whose value cannot be
computed is shown as "nicht eingerechnet".
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, Mapping, Optional

from models import BASE, HINT, MULTIPLIER, PER_EURO, PERCENT, PROMOTION, Rate, Shop
from views.timezone import local_time

_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})


def normalise_name(name: str) -> str:
    """Fold a shop name for matching: ``"OTTO.de"``, ``"Otto"`` → ``"otto"``."""
    folded = name.casefold().translate(_UMLAUTS)
    folded = unicodedata.normalize("NFKD", folded).encode("ascii", "ignore").decode()
    folded = re.sub(r"\.(de|com|at|ch|eu|net)\b", "", folded)
    return re.sub(r"[^a-z0-9]", "", folded)


def euro_per_100(rate: Rate, euro_per_unit: Optional[float]) -> Optional[float]:
    """Return the euro value earned per 100 € spent, or None if it cannot be computed."""
    if rate.value is None:
        return None
    if rate.rate_type == PER_EURO and euro_per_unit is not None:
        return rate.value * 100 * euro_per_unit
    if rate.rate_type == PERCENT:
        return rate.value
    return None


def is_running(rate: Rate, now: datetime) -> bool:
    return rate.valid_to is None and (rate.ends_at is None or rate.ends_at >= now)


def _format_number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".").replace(".", ",")


@dataclass
class PromotionValue:
    """A running promotion and what it is worth; ``value`` None: not computable, not counted."""

    rate: Rate
    value: Optional[float]  # euro per 100 € spent
    up_to: bool = False
    equivalent: Optional[str] = None  # a multiplier as units per euro: "= 5 °Punkte pro 1 €"


def value_promotion(promotion: Rate, base: Optional[Rate], euro_per_unit: Optional[float],
                    unit_name: str) -> PromotionValue:
    """Value one promotion, relative to the base rate where it is a multiplier."""
    if promotion.rate_type != MULTIPLIER or promotion.value is None:
        return PromotionValue(promotion, euro_per_100(promotion, euro_per_unit), promotion.up_to)
    if base is None or base.rate_type != PER_EURO or base.value is None:
        return PromotionValue(promotion, None)  # a multiple of what? not computable
    per_euro = base.value * promotion.value
    value = per_euro * 100 * euro_per_unit if euro_per_unit is not None else None
    return PromotionValue(promotion, value, base.up_to or promotion.up_to,
                          f"= {_format_number(per_euro)} {unit_name} pro 1 €")


@dataclass
class ProgrammeOffer:
    """One programme's current offer for a shop."""

    shop: Shop
    base: Optional[Rate]
    promotions: list[PromotionValue]
    hints: list[Rate]
    value: Optional[float]  # euro per 100 €, the best of base and running promotions
    value_is_upper_bound: bool
    value_promotion: Optional[Rate] = None  # the promotion the value comes from, if any
    is_best: bool = False  # pays the most for this merchant (ties: every one of them)
    shown_details: dict[int, Optional[str]] = field(default_factory=dict)

    @property
    def programme(self):
        return self.shop.programme

    def detail(self, rate: Rate) -> Optional[str]:
        """The rate's conditions, less those this offer already showed (one "ab 60 €" per offer)."""
        return self.shown_details.get(id(rate), rate.detail)


@dataclass
class ShopComparison:
    """One shop across programmes, best offer first."""

    name: str
    offers: list[ProgrammeOffer] = field(default_factory=list)

    @property
    def best(self) -> Optional[ProgrammeOffer]:
        return self.offers[0] if self.offers and self.offers[0].value is not None else None

    @property
    def best_value(self) -> Optional[float]:
        return self.best.value if self.best else None

    @property
    def programme_slugs(self) -> set[str]:
        return {offer.programme.slug for offer in self.offers}


def unrepeated_details(rates: Iterable[Rate]) -> dict[int, Optional[str]]:
    """Each rate's detail without the parts shown before it or already in its own text.

    A detail is a comma-separated list of conditions ("Code X, ab 60 € Einkaufswert");
    a partner's promotion and hint often carry the same ones.
    """
    shown: set[str] = set()
    details: dict[int, Optional[str]] = {}
    for rate in rates:
        if not rate.detail:
            continue
        parts = [part.strip() for part in rate.detail.split(",") if part.strip()]
        # "bis 31.12.2026" in a detail repeats the end date the page shows beside it.
        said = {f"bis {local_time(rate.ends_at, '%d.%m.%Y')}".casefold()} if rate.ends_at else set()
        fresh = [part for part in parts
                 if part.casefold() not in shown | said and part not in rate.raw_text]
        shown.update(part.casefold() for part in parts)
        details[id(rate)] = ", ".join(fresh) or None
    return details


def build_offer(shop: Shop, euro_per_unit: Optional[float], now: datetime) -> ProgrammeOffer:
    current = [rate for rate in shop.rates if is_running(rate, now)]
    base = next((rate for rate in current if rate.kind == BASE), None)
    promotions = [value_promotion(rate, base, euro_per_unit, shop.programme.unit_name)
                  for rate in current if rate.kind == PROMOTION]
    hints = [rate for rate in current if rate.kind == HINT]
    candidates = [(euro_per_100(base, euro_per_unit), base.up_to, None)] if base else []
    candidates += [(promotion.value, promotion.up_to, promotion.rate) for promotion in promotions]
    candidates = [candidate for candidate in candidates if candidate[0] is not None]
    value, up_to, source = max(candidates, key=lambda candidate: candidate[0]) if candidates else (None, False, None)
    details = unrepeated_details([*([base] if base else []), *(p.rate for p in promotions), *hints])
    return ProgrammeOffer(shop, base, promotions, hints, value, up_to, source, shown_details=details)


def group_shops(shops: Iterable[Shop]) -> list[list[Shop]]:
    """Group shops that are the same merchant: same domain, or same name without conflicting domains."""
    shops = list(shops)
    parent = list(range(len(shops)))

    def find(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    def union(a: int, b: int) -> None:
        parent[find(a)] = find(b)

    by_domain: dict[str, int] = {}
    by_name: dict[str, list[int]] = {}
    for index, shop in enumerate(shops):
        for domain in shop.domains or []:
            if domain in by_domain:
                union(index, by_domain[domain])
            else:
                by_domain[domain] = index
        by_name.setdefault(normalise_name(shop.name), []).append(index)
    for indices in by_name.values():
        for a in indices:
            for b in indices:
                if a < b:
                    domains_a, domains_b = set(shops[a].domains or []), set(shops[b].domains or [])
                    if not (domains_a and domains_b) or domains_a & domains_b:
                        union(a, b)
    groups: dict[int, list[Shop]] = {}
    for index, shop in enumerate(shops):
        groups.setdefault(find(index), []).append(shop)
    return list(groups.values())


def _rank(offer: ProgrammeOffer) -> tuple:
    return (offer.value is None, -(offer.value or 0.0), offer.programme.name)


# Values closer than half a cent per 100 € are the same to a shopper: all of them are "best".
TIE_TOLERANCE = 0.005


def compare_group(group: Iterable[Shop], euro_per_unit: Mapping[str, Optional[float]],
                  now: datetime) -> ShopComparison:
    """Rank one merchant's offers across programmes, best first, marking every tied best offer."""
    offers = sorted((build_offer(shop, euro_per_unit.get(shop.programme.slug), now) for shop in group),
                    key=_rank)
    if offers and offers[0].value is not None:
        for offer in offers:
            offer.is_best = offer.value is not None and offers[0].value - offer.value < TIE_TOLERANCE
    # Name the merchant as the best-paying programme does.
    return ShopComparison(offers[0].shop.name, offers)


def compare_shops(
    shops: Iterable[Shop], euro_per_unit: Mapping[str, Optional[float]], now: datetime
) -> list[ShopComparison]:
    """Group shops across programmes and rank each group's offers, best first."""
    comparisons = [compare_group(group, euro_per_unit, now) for group in group_shops(shops)]
    comparisons.sort(key=by_name)
    return comparisons


def by_name(comparison: ShopComparison) -> tuple:
    return (normalise_name(comparison.name), comparison.name)


def by_value(comparison: ShopComparison) -> tuple:
    """Best value first; merchants whose value cannot be computed last, each part by name."""
    value = comparison.best_value
    return (value is None, -(value or 0.0), *by_name(comparison))

