"""The PAYBACK and Miles & More parsers on the bundled recorded-shape samples."""

from __future__ import annotations

import copy
import json
from datetime import datetime

import pytest

from scrapers.errors import ScrapeError
from scrapers.miles_and_more_pages import hint_title, parse_partner_page, parse_sitemap, partner_page_url
from scrapers.payback import parse_end_date, parse_payback_page
from models import BASE, FIXED_UP_TO, HINT, MULTIPLIER, PER_EURO, PER_ORDER, PROMOTION
from scrapers.sample_server import SAMPLE_DIR

PAYBACK = json.loads((SAMPLE_DIR / "payback" / "digital-shops.json").read_text(encoding="utf-8"))
PARTNERS = SAMPLE_DIR / "miles_and_more" / "partner"
PAGE_URL = "http://127.0.0.1:1/partner/{name}"


def partner_html(name: str) -> str:
    return (PARTNERS / f"{name}.html").read_text(encoding="utf-8")


def with_bonded(name: str, change) -> str:
    """A sample partner page with its bonded_data changed by ``change``."""
    html = partner_html(name)
    start = html.index('id="__STATIC_ROUTER_DATA__">') + len('id="__STATIC_ROUTER_DATA__">')
    end = html.index("</script>", start)
    data = json.loads(html[start:end])
    change(data["loaderData"]["0"]["view"]["page"]["bonded_data"])
    return html[:start] + json.dumps(data) + html[end:]


# -- PAYBACK ------------------------------------------------------------------

def by_id(page, external_id):
    return next(offer for offer in page.offers if offer.external_id == external_id)


def test_payback_sample_parses_every_shop() -> None:
    page = parse_payback_page(PAYBACK)
    assert page.total == 40 and len(page.offers) == 40
    otto = by_id(page, "lp628101")
    assert otto.name == "OTTO" and otto.slug == "otto"
    assert otto.detail_url == "https://www.payback.de/shop/otto"
    assert otto.domains == ["otto.de"]
    assert "fashion" in otto.categories
    base = [rate for rate in otto.rates if rate.kind == BASE]
    assert [(r.parsed.raw_text, r.parsed.rate_type, r.parsed.value) for r in base] == [
        ("2 °P pro 1 €", PER_EURO, 2.0)
    ]
    promotion = next(rate for rate in otto.rates if rate.kind == PROMOTION)
    assert promotion.parsed.raw_text == "10-fach °P"
    assert (promotion.parsed.rate_type, promotion.parsed.value) == (MULTIPLIER, 10.0)
    assert promotion.detail == "bis 31.12.2026"
    assert promotion.ends_at == datetime(2026, 12, 31, 22, 59, 59)  # 23:59:59 in Berlin, stored as UTC


@pytest.mark.parametrize("subline, utc_end", [
    ("bis 28.03.2026", datetime(2026, 3, 28, 22, 59, 59)),  # the last day before summer time: UTC+1
    ("bis 29.03.2026", datetime(2026, 3, 29, 21, 59, 59)),  # the day the clocks go forward: UTC+2 at its end
    ("bis 25.10.2026", datetime(2026, 10, 25, 22, 59, 59)),  # the day they go back: UTC+1 at its end
    ("bis 31.07.2026", datetime(2026, 7, 31, 21, 59, 59)),
])
def test_payback_end_dates_are_the_end_of_the_german_day_in_utc(subline: str, utc_end: datetime) -> None:
    assert parse_end_date(subline) == utc_end


def test_payback_rate_forms_in_the_sample() -> None:
    offers = parse_payback_page(PAYBACK).offers
    base = {o.name: o.rates[0].parsed for o in offers if o.rates and o.rates[0].kind == BASE}
    kinds = {parsed.rate_type for parsed in base.values()}
    assert {PER_EURO, PER_ORDER, FIXED_UP_TO, None} <= kinds
    zalando = base["Zalando"]
    assert (zalando.rate_type, zalando.value) == (PER_EURO, 0.5)  # 1 °P pro 2 €
    unknown = [p.raw_text for p in base.values() if p.rate_type is None]
    assert "Extra °Punkte sichern" in unknown
    assert sum(o.unparsed_rates for o in offers) >= 2


def test_payback_missing_optional_fields() -> None:
    item = copy.deepcopy(PAYBACK["digitalShopListItem"][0])
    for key in ("browserExtensionInfoListItem", "promotionListItem", "categoryShortNameListItem",
                "labelListItem", "partnerLogoIdentifier", "incentivation", "partnerVanityName"):
        item.pop(key, None)
    offer = parse_payback_page({"totalResultSize": 1, "digitalShopListItem": [item]}).offers[0]
    assert offer.external_id == "lp628101"
    assert offer.domains == [] and offer.categories == [] and offer.rates == []
    assert offer.detail_url is None


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"digitalShopListItem": []},
        {"totalResultSize": "706", "digitalShopListItem": []},
        {"totalResultSize": 1, "shops": []},
        {"totalResultSize": 1, "digitalShopListItem": [{"partnerVanityName": "x"}]},
        {"totalResultSize": 1, "digitalShopListItem": [{"partner": {"partnerDisplayName": "Ohne ID"}}]},
        {"totalResultSize": 1, "digitalShopListItem": [{"partner": {"partnerShortName": "lp1"}}]},
    ],
)
def test_payback_changed_shape_fails_clearly(payload) -> None:
    with pytest.raises(ScrapeError, match="unerwartetes Format"):
        parse_payback_page(payload)


def test_payback_hostile_name_is_kept_verbatim() -> None:
    names = [offer.name for offer in parse_payback_page(PAYBACK).offers]
    assert '<script>alert("x")</script> Hack-Shop' in names


def test_end_date_parsing() -> None:
    assert parse_end_date("gültig bis 1.2.2027") == datetime(2027, 2, 1, 22, 59, 59)  # the end of the German day, in UTC
    assert parse_end_date("bis 31.02.2026") is None
    assert parse_end_date(None) is None


# -- Miles & More -----------------------------------------------------------------

def test_sitemap_lists_only_partner_pages() -> None:
    xml = (SAMPLE_DIR / "miles_and_more" / "sitemap.xml").read_text().replace("{BASE_URL}", "http://h")
    partners, children = parse_sitemap(xml)
    assert len(partners) == 30 and children == []
    assert "http://h/partner/otto_de" in partners
    assert not any(url.rstrip("/").endswith(("/partner", "/faq", "/kategorie/mode")) for url in partners)


def test_sitemap_index_names_child_sitemaps() -> None:
    index = ('<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
             "<sitemap><loc>http://h/a.xml</loc></sitemap></sitemapindex>")
    assert parse_sitemap(index) == ([], ["http://h/a.xml"])


def test_sitemap_in_an_unknown_format_fails() -> None:
    with pytest.raises(ScrapeError):
        parse_sitemap("<html><body>Wartung</body></html>")


def test_live_partner_record_with_status_online() -> None:
    offer = parse_partner_page(partner_html("rewe_de"), PAGE_URL.format(name="rewe_de"))
    assert (offer.external_id, offer.name, offer.source_status) == ("rewe_de", "REWE", "online")
    (base,) = offer.rates
    assert (base.kind, base.parsed.raw_text, base.parsed.rate_type, base.parsed.value) == (
        BASE, "1 Meile pro 1 €", PER_EURO, 1.0)


def test_factor_campaign_is_one_rate_with_its_end_date() -> None:
    # While the campaign runs, loyalty_points (3) already is the campaign's value.
    offer = parse_partner_page(partner_html("otto_de"), PAGE_URL.format(name="otto_de"))
    assert offer.detail_url == "http://127.0.0.1:1/partner/otto_de"
    assert offer.logo_url.endswith("/otto_de/logo.png")
    (campaign,) = offer.rates
    assert (campaign.kind, campaign.parsed.raw_text, campaign.parsed.rate_type, campaign.parsed.value) == (
        PROMOTION, "3 Meilen pro 1 €", PER_EURO, 3.0)
    assert campaign.ends_at == datetime(2026, 12, 31, 22, 59, 59)  # 23:59:59 in Berlin, stored as UTC
    assert campaign.detail == "Aktion vom 01.11.2026"


def test_campaign_beside_a_different_base_keeps_both() -> None:
    def change(bonded):
        bonded["loyalty_points"] = 1
        bonded["min_refund"] = {"type": "campaign", "point_type": "factor", "point_value": 5.0,
                                "start_date": "2026-08-31T22:00:00+00:00", "end_date": "2026-09-30T21:59:59+00:00",
                                "show_dates": True, "total_min": 0}
    offer = parse_partner_page(with_bonded("rewe_de", change), PAGE_URL.format(name="rewe_de"))
    assert [(r.kind, r.parsed.value) for r in offer.rates] == [(BASE, 1.0), (PROMOTION, 5.0)]
    assert offer.rates[1].ends_at == datetime(2026, 9, 30, 21, 59, 59)


def test_locale_list_hint_with_html_voucher_and_minimum() -> None:
    offer = parse_partner_page(partner_html("douglas_de"), PAGE_URL.format(name="douglas_de"))
    (hint,) = [rate for rate in offer.rates if rate.kind == HINT]
    assert hint.parsed.raw_text == "15€ Gutschein für Neukunden!"  # German, markup gone
    assert hint.detail == "Code SOMMER15, ab 60 € Einkaufswert"
    assert not hint.parsed.is_parsed and offer.unparsed_rates == 0  # a voucher is not an earn rate


def test_hint_title_prefers_german_then_english() -> None:
    english_only = [{"locale": "en", "content": "<p>€15 <em>gift card</em></p>"}]
    assert hint_title(english_only) == "€15 gift card"
    both = [{"locale": "en", "content": "<p>x</p>"}, {"locale": "de", "content": "<p>Gutschein<script>alert(1)</script></p>"}]
    assert hint_title(both) == "Gutschein"


def test_per_euro_campaign_hint_counts_as_a_promotion() -> None:
    offer = parse_partner_page(partner_html("beispiel_parfuemerie_de"), PAGE_URL.format(name="beispiel_parfuemerie_de"))
    (promotion,) = [rate for rate in offer.rates if rate.kind == PROMOTION]
    assert promotion.parsed.raw_text == "Adventsaktion: 3 Meilen pro Euro"
    assert (promotion.parsed.rate_type, promotion.parsed.value) == (PER_EURO, 3.0)
    assert promotion.ends_at == datetime(2026, 12, 24, 22, 59, 59)


def test_campaign_hint_repeating_min_refund_is_not_counted_twice() -> None:
    offer = parse_partner_page(partner_html("booking_com"), PAGE_URL.format(name="booking_com"))
    assert [(r.kind, r.parsed.value) for r in offer.rates] == [(PROMOTION, 4.0)]


def test_campaign_hint_above_the_reference_spend_is_shown_not_counted() -> None:
    offer = parse_partner_page(partner_html("probe_autovermietung_de"), PAGE_URL.format(name="probe_autovermietung_de"))
    (hint,) = [rate for rate in offer.rates if rate.kind == HINT]
    assert hint.parsed.value == 2.0 and hint.detail == "ab 150 € Einkaufswert"


def test_unknown_campaign_type_keeps_raw_text() -> None:
    def change(bonded):
        bonded["min_refund"] = {"point_type": "mystery", "point_value": 7}
    offer = parse_partner_page(with_bonded("otto_de", change), PAGE_URL.format(name="otto_de"))
    campaign = next(rate for rate in offer.rates if rate.kind == PROMOTION).parsed
    assert campaign.rate_type is None and "mystery" in campaign.raw_text
    assert offer.unparsed_rates == 1


@pytest.mark.parametrize("change", [
    lambda b: b.update(visible=False),
    lambda b: b.update(hidden_shop=True),
])
def test_partners_not_offered_to_shoppers_are_skipped(change) -> None:
    assert parse_partner_page(with_bonded("rewe_de", change), PAGE_URL.format(name="rewe_de")) is None


@pytest.mark.parametrize("status", ["maintenance", "inactive", None])
def test_unknown_status_is_kept(status) -> None:
    offer = parse_partner_page(with_bonded("rewe_de", lambda b: b.update(status=status)),
                               PAGE_URL.format(name="rewe_de"))
    assert offer is not None and offer.source_status == (status if status else "None")


def test_bundled_sample_has_one_unknown_status() -> None:
    statuses = {page.stem: parse_partner_page(page.read_text(encoding="utf-8"), PAGE_URL.format(name=page.stem))
                for page in PARTNERS.glob("*.html")}
    unknown = {name for name, offer in statuses.items() if offer and offer.source_status != "online"}
    assert unknown == {"muster_uhren_de"}


@pytest.mark.parametrize("listed, requested", [
    ("https://h/partner/otto_de", "https://h/partner/otto_de?noredirect=1&site=de"),
    ("https://h/partner/otto_de?noredirect=1&site=de", "https://h/partner/otto_de?noredirect=1&site=de"),
    ("https://h/partner/otto_de?site=at&ref=x#top", "https://h/partner/otto_de?ref=x&noredirect=1&site=de"),
    ("https://h/partner/otto_de?noredirect=0", "https://h/partner/otto_de?noredirect=1&site=de"),
])
def test_partner_pages_are_requested_with_noredirect(listed: str, requested: str) -> None:
    assert partner_page_url(listed) == requested


def test_missing_optional_fields() -> None:
    def change(bonded):
        for key in ("min_refund", "currently_active_hints", "partner_logo", "status", "visible",
                    "hidden_shop", "loyalty_points"):
            bonded.pop(key, None)
    offer = parse_partner_page(with_bonded("otto_de", change), PAGE_URL.format(name="otto_de"))
    assert offer.external_id == "otto_de" and offer.rates == [] and offer.logo_url is None


@pytest.mark.parametrize(
    "html",
    [
        "<html><body>Kein Skript</body></html>",
        '<script type="application/json" id="__STATIC_ROUTER_DATA__">{"loaderData": {"0": {}}}</script>',
        '<script type="application/json" id="__STATIC_ROUTER_DATA__">{"loaderData": </script>',
        with_bonded("otto_de", lambda b: b.pop("unique_name")),
        with_bonded("otto_de", lambda b: b.update(name=None)),
        with_bonded("otto_de", lambda b: b.update(unique_name="\x00\u202e")),  # nothing left once cleaned
        partner_html("otto_de")[: partner_html("otto_de").index("bonded_data") + 40],  # truncated
    ],
)
def test_changed_or_truncated_partner_page_fails_clearly(html: str) -> None:
    with pytest.raises(ScrapeError, match="unerwartetes Format"):
        parse_partner_page(html, PAGE_URL.format(name="otto_de"))


def test_hostile_partner_name_is_kept_verbatim() -> None:
    offer = parse_partner_page(partner_html("boese_de"), PAGE_URL.format(name="boese_de"))
    assert offer.name == '"><img src=x onerror=alert(1)> Böse GmbH'


def test_sitemap_with_entity_expansion_is_refused() -> None:
    bomb = ('<?xml version="1.0"?><!DOCTYPE urlset [<!ENTITY a "aaaaaaaaaa">'
            '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><urlset><url><loc>&b;</loc></url></urlset>')
    with pytest.raises(ScrapeError, match="kein gültiges XML"):
        parse_sitemap(bomb)


# -- odd values never raise anything but ScrapeError ----------------------------------

def test_payback_odd_value_is_counted_and_named_with_its_entry() -> None:
    items = [{"partner": {"partnerShortName": f"lp{i}", "partnerDisplayName": "Shop"}} for i in range(3)]
    items.append({"partner": {"partnerShortName": "evil", "partnerDisplayName": "Evil"},
                  "browserExtensionInfoListItem": 1})
    page = parse_payback_page({"totalResultSize": 4, "digitalShopListItem": items})
    assert [offer.external_id for offer in page.offers] == ["lp0", "lp1", "lp2", "evil"]
    odd = page.odd_values["evil"]
    assert (odd.count, odd.examples) == (1, ["Eintrag 3 ('evil'): 'browserExtensionInfoListItem' ist keine Liste (1)"])
    # On a later page the entry keeps its place in the catalogue.
    later = parse_payback_page({"totalResultSize": 24, "digitalShopListItem": items}, offset=20)
    assert later.odd_values["evil"].examples[0].startswith("Eintrag 23 ('evil')")


@pytest.mark.parametrize("short_name", ["\x00", " \u202e ", "\ud800"])
def test_payback_id_that_cleaning_empties_fails_clearly(short_name: str) -> None:
    item = {"partner": {"partnerShortName": short_name, "partnerDisplayName": "Shop"}}
    with pytest.raises(ScrapeError, match="partnerShortName"):
        parse_payback_page({"totalResultSize": 1, "digitalShopListItem": [item]})


@pytest.mark.parametrize("change", [
    pytest.param(lambda b: b.update(loyalty_points=10**400), id="integer-too-big-for-a-float"),
    pytest.param(lambda b: b.update(min_refund={"point_type": "factor", "point_value": 10**400}), id="huge-campaign"),
    pytest.param(lambda b: b.update(min_refund={"point_type": "factor", "point_value": 2,
                                                "end_date": "0001-01-01T00:00:00+01:00"}), id="date-before-year-1"),
    pytest.param(lambda b: b.update(min_refund={"point_type": "factor", "point_value": 2,
                                                "start_date": "9999-12-31T23:59:59-05:00"}), id="date-after-9999"),
    pytest.param(lambda b: b.update(currently_active_hints=[{"title": [{"locale": [], "content": "x"}]}]),
                 id="unhashable-locale"),
    pytest.param(lambda b: b.update(currently_active_hints=5), id="hints-a-number"),
    pytest.param(lambda b: b.update(currently_active_hints=[{"title": "<p>Gutschein\ud800</p>", "point_value": 10**400,
                                                             "total_min": 10**400}]), id="hint-huge-numbers"),
])
def test_partner_page_with_odd_values_keeps_the_partner(change) -> None:
    offer = parse_partner_page(with_bonded("otto_de", change), PAGE_URL.format(name="otto_de"))
    assert offer is not None and offer.external_id == "otto_de"


def test_partner_page_nested_too_deep_fails_clearly() -> None:
    html = '<script type="application/json" id="__STATIC_ROUTER_DATA__">' + "[" * 100_000 + "</script>"
    with pytest.raises(ScrapeError, match="unerwartetes Format"):
        parse_partner_page(html, PAGE_URL.format(name="otto_de"))


def test_sitemap_url_that_is_no_url_is_not_a_partner_page() -> None:
    xml = ('<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
           "<url><loc>http://[::1/partner/x</loc></url><url><loc>http://h/partner/otto_de</loc></url></urlset>")
    assert parse_sitemap(xml) == (["http://h/partner/otto_de"], [])


def test_sitemap_index_naming_a_child_that_is_no_url_fails_clearly() -> None:
    index = ('<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
             "<sitemap><loc>http://[::1/a.xml</loc></sitemap></sitemapindex>")
    with pytest.raises(ScrapeError, match=r"http://\[::1/a.xml"):
        parse_sitemap(index)


def test_sitemap_given_as_text_with_a_lone_surrogate_fails_clearly_or_reads() -> None:
    xml = ('<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
           "<url><loc>http://h/partner/otto_de\ud800</loc></url></urlset>")
    partners, children = parse_sitemap(xml)
    assert children == [] and all("\ud800" not in url for url in partners)
