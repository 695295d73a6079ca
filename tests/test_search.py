"""The shop search forgives as shoppers type: case, umlauts and accents either way, one typo in a long word.

"parfum" finds "Parfüm" as "parfüm" and "parfuem" do; exact and prefix matches come first. The
search runs on the ranking, so the same query finds the same shops on both databases.
"""

from __future__ import annotations

import re

import pytest
from flask import Flask

from scrapers.rates import parse_rate
from scrapers.store import Offer, OfferRate, store_offers
from models import BASE
from views.search import match_rank

SHOPS = {"p1": "Parfüm Dreams", "p2": "Müller", "p3": "Straßenmode Berg", "p4": "Café Royal", "p5": "Zalando",
         "p6": "L'Occitane", "p7": "Otto", "p8": "Lotto Land", "p9": "Sportscheck"}


def _fill(app: Flask) -> None:
    with app.app_context():
        store_offers("payback", [
            Offer(external_id=external_id, name=name, domains=[f"{external_id}.example"],
                  # Lotto Land pays most: an exact match must still come before it
                  rates=[OfferRate(BASE, parse_rate("9 °P pro 1 €" if external_id == "p8" else "1 °P pro 1 €"))])
            for external_id, name in SHOPS.items()], complete=True)


def _found(client, query: str) -> list[str]:
    page = client.get("/", query_string={"q": query}).get_data(as_text=True)
    return re.findall(r'<th[^>]*class="merchant-name"[^>]*>\s*<a href="/shop/\d+">([^<]*)</a>', page)


@pytest.mark.parametrize("query, shop", [
    ("parfum", "Parfüm Dreams"), ("parfuem", "Parfüm Dreams"), ("PARFÜM", "Parfüm Dreams"),
    ("muller", "Müller"), ("mueller", "Müller"), ("müller", "Müller"),
    ("strasse", "Straßenmode Berg"), ("straße", "Straßenmode Berg"),
    ("cafe", "Café Royal"), ("café", "Café Royal"),
    ("zalanda", "Zalando"), ("occitanne", "L&#39;Occitane"), ("sportschek", "Sportscheck"),
])
def test_a_query_finds_the_shop_however_it_is_typed(make_app, database_url: str, query: str, shop: str) -> None:
    app = make_app(DATABASE_URL=database_url)
    _fill(app)
    assert _found(app.test_client(), query) == [shop]


def test_exact_and_prefix_matches_come_before_better_paying_looser_ones(make_app, database_url: str) -> None:
    app = make_app(DATABASE_URL=database_url)
    _fill(app)
    assert _found(app.test_client(), "otto") == ["Otto", "Lotto Land"]


def test_short_words_get_no_typo_and_nonsense_finds_nothing(make_app, database_url: str) -> None:
    app = make_app(DATABASE_URL=database_url)
    _fill(app)
    client = app.test_client()
    assert _found(client, "ota") == []  # "otto" is one edit away, but short words must match as typed
    assert _found(client, "xylophon") == []
    assert "Kein Shop passt zu „xylophon“" in client.get("/?q=xylophon").get_data(as_text=True)


def test_match_rank_orders_exact_prefix_part_and_typo() -> None:
    assert [match_rank("Otto", q) for q in ("otto", "ot", "tt", "otot")] == [0, 1, 2, None]
    assert match_rank("Zalando Lounge", "zalanda") == 3
    assert match_rank("Zalando", "") == 0
