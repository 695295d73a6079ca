"""The comparison page helps a shopper decide: sort, pages, programme filter, ties, conditions, end dates."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import Flask

from models import BASE, HINT, PROMOTION, Shop, db, utcnow
from scrapers.rates import ParsedRate, parse_rate
from scrapers.store import Offer, OfferRate, store_offers
from views.shop_ranking import PAGE_SIZE


def offer(external_id: str, name: str, rate: str, domains=(), extra=()) -> Offer:
    return Offer(external_id=external_id, name=name, domains=list(domains),
                 rates=[OfferRate(BASE, parse_rate(rate)), *extra])


def merchant_names(page: str) -> list[str]:
    return re.findall(r'<th[^>]*class="merchant-name"[^>]*>\s*<a href="/shop/\d+">([^<]*)</a>', page)


def fill_ranked(app: Flask) -> None:
    with app.app_context():
        store_offers("payback", [
            offer("p1", "Apotheke", "1 °P pro 2 €", ["apotheke.example"]),
            offer("p2", "Zoo", "5 °P pro 1 €", ["zoo.example"]),
            offer("p3", "Möbel", "2 °P pro 1 €", ["moebel.example"]),
        ], complete=True)
        store_offers("miles_and_more", [offer("m1", "Bücher", "3 Meilen pro 1 €", ["buecher.example"])],
                     complete=True)


def test_sorted_by_best_value_by_default_and_by_name_on_request(app: Flask, client) -> None:
    fill_ranked(app)
    assert merchant_names(client.get("/").get_data(as_text=True)) == ["Zoo", "Bücher", "Möbel", "Apotheke"]
    by_name = client.get("/", query_string={"sort": "name"}).get_data(as_text=True)
    assert merchant_names(by_name) == ["Apotheke", "Bücher", "Möbel", "Zoo"]
    assert 'name="sort"' in by_name  # the choice is a form control on the page


def test_a_programme_filter_keeps_only_merchants_that_programme_offers(app: Flask, client) -> None:
    fill_ranked(app)
    page = client.get("/", query_string={"programme": "miles_and_more"}).get_data(as_text=True)
    assert merchant_names(page) == ["Bücher"]
    assert 'name="programme"' in page


def test_hundreds_of_shops_come_a_page_at_a_time(app: Flask, client) -> None:
    with app.app_context():
        store_offers("payback", [offer(f"p{n}", f"Shop {n:03d}", "1 °P pro 1 €", [f"shop{n}.example"])
                                 for n in range(PAGE_SIZE * 2 + 5)], complete=True)
    first = client.get("/", query_string={"sort": "name"}).get_data(as_text=True)
    assert merchant_names(first) == [f"Shop {n:03d}" for n in range(PAGE_SIZE)]
    assert "Seite 1 von 3" in first and 'rel="next"' in first
    last = client.get("/", query_string={"sort": "name", "page": 3}).get_data(as_text=True)
    assert merchant_names(last) == [f"Shop {n:03d}" for n in range(PAGE_SIZE * 2, PAGE_SIZE * 2 + 5)]
    assert 'rel="prev"' in last and 'rel="next"' not in last
    assert client.get("/", query_string={"page": 99}).status_code == 404


def test_all_tied_best_offers_are_highlighted(app: Flask, client) -> None:
    with app.app_context():
        store_offers("payback", [offer("p1", "Gleichstand", "1 °P pro 1 €", ["gleich.example"])], complete=True)
        store_offers("miles_and_more", [offer("m1", "Gleichstand", "1 Meile pro 1 €", ["gleich.example"])],
                     complete=True)
        store_offers("example", [offer("e1", "Gleichstand", "1 Punkt pro 2 €", ["gleich.example"])],
                     complete=True)
    page = client.get("/").get_data(as_text=True)
    assert page.count('class="offer best-offer"') == 2
    assert page.count('class="value best"') == 2


def test_a_condition_is_shown_once_per_offer(app: Flask, client) -> None:
    ends = utcnow() + timedelta(days=20)
    with app.app_context():
        store_offers("miles_and_more", [offer("douglas", "Douglas", "1 Meile pro 1 €", ["douglas.de"], extra=[
            OfferRate(PROMOTION, parse_rate("5 Meilen pro 1 €"), "Code X, ab 60 € Einkaufswert", ends),
            OfferRate(HINT, ParsedRate("15 € Gutschein"), "Code X, ab 60 € Einkaufswert", ends),
        ])], complete=True)
    page = client.get("/").get_data(as_text=True)
    assert page.count("ab 60 € Einkaufswert") == 1
    assert page.count("Code X") == 1


def test_an_end_date_in_the_promotions_text_is_not_repeated(app: Flask, client) -> None:
    with app.app_context():
        store_offers("payback", [offer("p1", "Apotheke", "1 °P pro 1 €", ["apotheke.example"], extra=[
            OfferRate(PROMOTION, parse_rate("10-fach °P"), "bis 31.12.2026", datetime(2026, 12, 31, 23, 59, 59)),
        ])], complete=True)
    page = client.get("/").get_data(as_text=True)
    row = page[page.index("10-fach °P"):page.index("</td>", page.index("10-fach °P"))]
    assert row.count("31.12.2026") == 1


def test_a_running_promotion_shows_its_end_date_on_the_shop_page(app: Flask, client) -> None:
    with app.app_context():
        store_offers("payback", [offer("p1", "Silvester", "1 °P pro 1 €", ["silvester.example"], extra=[
            OfferRate(PROMOTION, parse_rate("3 °P pro 1 €"), None, datetime(2026, 12, 31, 12, 0)),
        ])], complete=True)
        shop_id = db.session.scalar(sa.select(Shop.id))
    page = client.get(f"/shop/{shop_id}").get_data(as_text=True)
    history = page[page.index('class="history"'):]
    assert "bis 31.12." in history
    assert history.count("aktuell") == 1  # the base rate has no end; the promotion has one


def test_the_page_explains_the_value_with_the_configured_point_values(make_app) -> None:
    app = make_app(PAYBACK_EURO_PER_POINT=0.02)
    page = app.test_client().get("/").get_data(as_text=True)
    assert "PAYBACK 2 ct je °Punkt" in page
    assert "× 100 ×" in page  # the formula, not only the result
