"""Upserts: idempotent writes, rate history, deactivation only after complete runs."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from flask import Flask

from models import BASE, PROMOTION, Rate, Shop, db
from scrapers.rates import parse_rate
from scrapers.store import Offer, OfferRate, store_offers


def offer(external_id: str, name: str, rate: str, promotion: str | None = None, **fields) -> Offer:
    rates = [OfferRate(BASE, parse_rate(rate))]
    if promotion:
        rates.append(OfferRate(PROMOTION, parse_rate(promotion), "bis 31.12.2026",
                               datetime(2026, 12, 31, 23, 59, 59)))
    return Offer(external_id=external_id, name=name, rates=rates, **fields)


CATALOGUE = [
    offer("lp1", "OTTO", "2 °P pro 1 €", "10-fach °P", domains=["otto.de"]),
    offer("lp2", "Zalando", "1 °P pro 2 €", domains=["zalando.de"]),
    offer("lp3", "REWE", "1 °P pro 2 €"),
]


def shops(app: Flask) -> dict[str, Shop]:
    return {shop.external_id: shop for shop in db.session.scalars(sa.select(Shop))}


def test_first_run_adds_and_identical_second_run_changes_nothing(app: Flask) -> None:
    with app.app_context():
        first = store_offers("payback", CATALOGUE, complete=True)
        assert (first.added, first.updated, first.deactivated) == (3, 0, 0)
        rates_before = db.session.scalar(sa.select(sa.func.count(Rate.id)))
        second = store_offers("payback", CATALOGUE, complete=True)
        assert (second.added, second.updated, second.deactivated) == (0, 0, 0)
        assert db.session.scalar(sa.select(sa.func.count(Rate.id))) == rates_before == 4
        assert len(shops(app)) == 3


def test_changed_rate_closes_the_old_row_and_opens_a_new_one(app: Flask) -> None:
    with app.app_context():
        store_offers("payback", CATALOGUE, complete=True)
        changed = [offer("lp1", "OTTO", "3 °P pro 1 €", "10-fach °P", domains=["otto.de"])] + CATALOGUE[1:]
        result = store_offers("payback", changed, complete=True)
        assert (result.added, result.updated) == (0, 1)
        otto = shops(app)["lp1"]
        base = sorted((r for r in otto.rates if r.kind == BASE), key=lambda r: r.id)
        assert [(r.raw_text, r.valid_to is None) for r in base] == [
            ("2 °P pro 1 €", False),
            ("3 °P pro 1 €", True),
        ]
        assert base[0].valid_to == base[1].valid_from
        # the promotion did not change: still one open row, untouched
        promotions = [r for r in otto.rates if r.kind == PROMOTION]
        assert len(promotions) == 1 and promotions[0].valid_to is None


def test_ended_promotion_is_closed_without_touching_the_base_rate(app: Flask) -> None:
    with app.app_context():
        store_offers("payback", CATALOGUE, complete=True)
        without_promotion = [offer("lp1", "OTTO", "2 °P pro 1 €", domains=["otto.de"])] + CATALOGUE[1:]
        assert store_offers("payback", without_promotion, complete=True).updated == 1
        otto = shops(app)["lp1"]
        assert [r.kind for r in otto.current_rates] == [BASE]
        assert len(otto.rates) == 2


def test_shop_missing_from_a_complete_run_is_deactivated_not_deleted(app: Flask) -> None:
    with app.app_context():
        store_offers("payback", CATALOGUE, complete=True)
        result = store_offers("payback", CATALOGUE[:2], complete=True)
        assert result.deactivated == 1
        rewe = shops(app)["lp3"]
        assert rewe.active is False and rewe.rates  # history kept
        # it comes back when the programme lists it again
        again = store_offers("payback", CATALOGUE, complete=True)
        assert (again.updated, again.deactivated) == (1, 0)
        assert shops(app)["lp3"].active is True


def test_partial_run_deactivates_nothing(app: Flask) -> None:
    with app.app_context():
        store_offers("payback", CATALOGUE, complete=True)
        result = store_offers("payback", CATALOGUE[:1], complete=False)
        assert result.deactivated == 0
        assert all(shop.active for shop in shops(app).values())


def test_programmes_are_kept_apart(app: Flask) -> None:
    with app.app_context():
        store_offers("payback", CATALOGUE, complete=True)
        result = store_offers("miles_and_more", [offer("lp1", "Otto", "1 Meile pro 1 €")], complete=True)
        assert result.added == 1 and result.deactivated == 0
        assert db.session.scalar(sa.select(sa.func.count(Shop.id)).where(Shop.active)) == 4


def test_upserts_on_postgresql(pg_app: Flask) -> None:
    with pg_app.app_context():
        assert store_offers("payback", CATALOGUE, complete=True).added == 3
        assert store_offers("payback", CATALOGUE, complete=True).updated == 0
        changed = [offer("lp2", "Zalando", "1 °P pro 1 €", domains=["zalando.de"])] + CATALOGUE[:1]
        result = store_offers("payback", changed, complete=True)
        assert (result.updated, result.deactivated) == (1, 1)


def _varied_catalogue(count: int) -> list[Offer]:
    """New shops whose optional fields are set on some and missing (None) on others, as live catalogues are."""
    return [offer(f"lp{number}", f"Shop {number}", "2 °P pro 1 €", "10-fach °P" if number % 3 == 0 else None,
                  slug=f"shop-{number}" if number % 2 else None,
                  logo_url=f"https://example.org/{number}.png" if number % 5 else None)
            for number in range(count)]


def test_storing_new_shops_takes_the_same_statements_for_10_and_for_100(app: Flask) -> None:
    """The first run of a catalogue is written in a fixed number of statements, not one per few shops.

    Every statement is interpreter time in the job's thread, which the web
    threads of the same process wait for.
    """
    executed: list[str] = []

    def count(_conn, _cursor, statement, _parameters, _context, _executemany) -> None:
        executed.append(statement)

    with app.app_context():
        sa.event.listen(db.engine, "before_cursor_execute", count)
        try:
            counts = []
            for programme, size in (("payback", 10), ("miles_and_more", 100)):
                executed.clear()
                assert store_offers(programme, _varied_catalogue(size), complete=True).added == size
                counts.append(len(executed))
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", count)
    assert counts[0] == counts[1], counts
