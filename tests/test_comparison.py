"""The shopper's comparison: matching across programmes, ranking, search, chart."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import Flask

from models import BASE, PROMOTION, Shop, db
from scrapers.rates import parse_rate
from scrapers.store import Offer, OfferRate, store_offers
from views.charts import history_chart
from views.comparison import compare_shops, normalise_name
from views.shops import euro_values

NOW = datetime(2026, 11, 29, 12, 0)


def offer(external_id, name, rate, domains=(), promotion=None, ends_at=None):
    rates = [OfferRate(BASE, parse_rate(rate))]
    if promotion:
        rates.append(OfferRate(PROMOTION, parse_rate(promotion), None, ends_at))
    return Offer(external_id=external_id, name=name, domains=list(domains), rates=rates)


def fill(app: Flask) -> None:
    with app.app_context():
        store_offers("payback", [
            offer("p1", "OTTO", "2 °P pro 1 €", ["otto.de"]),
            offer("p2", "Zalando", "1 °P pro 2 €", ["zalando.de"]),
            offer("p3", "Thalia", "500 °P pro Abschluss", ["thalia.de"]),
            offer("p4", "Sample Feinkost", "1 °P pro 1 €", ["feinkost-a.example"]),
        ], complete=True)
        store_offers("miles_and_more", [
            offer("otto_de", "Otto", "1 Meile pro 1 €", promotion="3 Meilen pro 1 €",
                  ends_at=NOW + timedelta(days=30)),
            offer("zalando_de", "ZALANDO", "2 Meilen pro 1 €", promotion="9 Meilen pro 1 €",
                  ends_at=NOW - timedelta(days=1)),  # ended: must not count
            offer("thalia_de", "Thalia", "1 Meile pro 1 €"),
        ], complete=True)
        store_offers("example", [
            offer("e1", "Sample Feinkost", "1 Punkt pro 1 €", ["feinkost-b.example"]),
        ], complete=True)


def comparisons(app: Flask):
    with app.app_context():
        shops = db.session.scalars(sa.select(Shop).where(Shop.active)).all()
        return compare_shops(shops, euro_values(), NOW)


def merchant(result, name: str):
    (match,) = [c for c in result if normalise_name(c.name) == name]
    return match


def test_normalise_name() -> None:
    assert normalise_name("OTTO.de") == normalise_name(" Otto ") == "otto"
    assert normalise_name("Böse GmbH") == "boesegmbh"


def test_shops_match_by_domain_else_by_name_and_rank_best_first(app: Flask) -> None:
    fill(app)
    result = comparisons(app)
    otto = merchant(result, "otto")
    assert [o.programme.slug for o in otto.offers] == ["miles_and_more", "payback"]
    # the running campaign (3 miles per euro) beats PAYBACK's 2 points per euro
    assert [round(o.value, 2) for o in otto.offers] == [3.0, 2.0]
    assert otto.best.programme.slug == "miles_and_more"

    zalando = merchant(result, "zalando")
    # the ended campaign is ignored: 2 miles (2.00 €) beat 1 point per 2 € (0.50 €)
    assert [round(o.value, 2) for o in zalando.offers] == [2.0, 0.5]
    assert zalando.offers[0].promotions == []

    thalia = merchant(result, "thalia")
    assert [o.value for o in thalia.offers] == [1.0, None]  # fixed points per order: not per 100 €
    # same name but different known domains: two different merchants
    feinkost = [c for c in result if normalise_name(c.name) == "samplefeinkost"]
    assert [len(c.offers) for c in feinkost] == [1, 1]


def test_euro_values_come_from_config(make_app) -> None:
    app = make_app(MILES_AND_MORE_EURO_PER_MILE=0.005)
    fill(app)
    otto = merchant(comparisons(app), "otto")
    assert [(o.programme.slug, round(o.value, 2)) for o in otto.offers] == [
        ("payback", 2.0), ("miles_and_more", 1.5)]


def test_search_and_best_first_on_the_page(app: Flask, client) -> None:
    fill(app)
    page = client.get("/", query_string={"q": "otto"}).get_data(as_text=True)
    assert page.count('class="merchant"') == 1
    assert page.index("Miles &amp; More") < page.index("PAYBACK", page.index('class="merchant"'))
    assert "3,00 €" in page and "bis " in page  # promotion with its end date
    assert "Kein Shop passt" in client.get("/", query_string={"q": "gibtsnicht"}).get_data(as_text=True)


def test_shop_page_shows_the_history_chart(app: Flask, client) -> None:
    fill(app)
    with app.app_context():
        otto_id = db.session.scalar(sa.select(Shop.id).where(Shop.external_id == "p1"))
        store_offers("payback", [offer("p1", "OTTO", "4 °P pro 1 €", ["otto.de"])], complete=False)
    page = client.get(f"/shop/{otto_id}").get_data(as_text=True)
    assert '<svg id="history-chart"' in page
    assert page.count("<polyline") >= 2 and "2 °P pro 1 €" in page and "4 °P pro 1 €" in page
    assert client.get("/shop/999999").status_code == 404


def test_history_chart_steps_follow_rate_changes(app: Flask) -> None:
    fill(app)
    with app.app_context():
        store_offers("payback", [offer("p1", "OTTO", "4 °P pro 1 €", ["otto.de"])], complete=False)
        shops = db.session.scalars(sa.select(Shop).where(Shop.external_id == "p1")).all()
        offers = next(iter(compare_shops(shops, euro_values(), NOW + timedelta(days=2)))).offers
        chart = history_chart(offers, euro_values(), NOW + timedelta(days=2))
    (series,) = chart.series
    ys = [cy for _, cy in series.markers]
    assert len(ys) == 2 and ys[1] < ys[0]  # the new, higher rate is drawn higher


def test_multiplier_promotion_lifts_the_best_value_on_the_page(app: Flask, client) -> None:
    with app.app_context():
        store_offers("payback", [
            offer("p1", "Zalando", "1 °P pro 2 €", ["zalando.de"], promotion="10fach °P",
                  ends_at=NOW + timedelta(days=30)),
            offer("p2", "Stromtarif", "Bis zu 1.500 °P", ["strom.example"], promotion="Extra-°P: 5fach",
                  ends_at=NOW + timedelta(days=30)),
            offer("p3", "Abgelaufen", "1 °P pro 1 €", ["alt.example"], promotion="20-fach Punkte",
                  ends_at=NOW - timedelta(days=1)),
        ], complete=True)
        store_offers("miles_and_more", [offer("zalando_de", "Zalando", "2 Meilen pro 1 €")], complete=True)
    result = comparisons(app)
    zalando = merchant(result, "zalando")
    # 10 × (1 °P per 2 €) = 5 °P per euro = 5,00 € per 100 € beats 2 miles per euro
    assert [(o.programme.slug, round(o.value, 2)) for o in zalando.offers] == [("payback", 5.0), ("miles_and_more", 2.0)]
    (promotion,) = zalando.offers[0].promotions
    assert promotion.equivalent == "= 5 °Punkte pro 1 €"
    assert zalando.offers[0].value_promotion is promotion.rate
    strom = merchant(result, "stromtarif")
    assert strom.offers[0].value is None and strom.offers[0].promotions[0].value is None
    assert merchant(result, "abgelaufen").offers[0].value == 1.0  # an ended promotion does not count

    page = client.get("/").get_data(as_text=True)
    zalando_row = page[page.index("10fach °P") - 600: page.index("10fach °P") + 600]
    assert "5,00 €" in zalando_row and "mit Aktion bis" in zalando_row and "(= 5 °Punkte pro 1 €)" in zalando_row
    strom_row = page[page.index("Extra-°P: 5fach"): page.index("Extra-°P: 5fach") + 300]
    assert "nicht eingerechnet" in strom_row


def test_a_promotion_runs_to_the_end_of_its_german_day_across_daylight_saving(app: Flask, client) -> None:
    from scrapers.payback import parse_end_date

    with app.app_context():
        store_offers("payback", [offer("p1", "OTTO", "2 °P pro 1 €", ["otto.de"], promotion="10-fach °P",
                                       ends_at=parse_end_date("bis 29.03.2026"))], complete=True)
        shop = db.session.scalars(sa.select(Shop)).one()
        late_evening, after_midnight = datetime(2026, 3, 29, 21, 30), datetime(2026, 3, 29, 22, 30)  # UTC
        # 23:30 in Berlin (summer time since 02:00 that day) still runs; 00:30 the next day no longer does.
        assert [c.offers[0].promotions for c in compare_shops([shop], euro_values(), late_evening)][0]
        assert not [c.offers[0].promotions for c in compare_shops([shop], euro_values(), after_midnight)][0]
        rate = next(rate for rate in shop.rates if rate.kind == PROMOTION)
        assert app.jinja_env.filters["date_de"](rate.ends_at) == "29.03.2026"
