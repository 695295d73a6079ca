"""Property tests of every parser: any input gives offers or a ``ScrapeError``, and offers store cleanly.

The parsers read what strangers publish. Whatever they are given (random
values, random bytes, or the real shapes with hostile leaves: numbers where
text belongs, ``None``, nested lists and objects, NUL and other control
characters, half a UTF-16 surrogate pair, huge integers), they must end in
one of two ways: a result, or a ``ScrapeError`` whose German message the job
shows. Any other exception would fail a whole run on one odd value. And every
offer, once fitted to its columns (``fit_offer``), must be storable: no NUL
(PostgreSQL refuses it), no lone surrogate (no database can encode it), no
``None`` inside a list of domains or categories.
"""

from __future__ import annotations

import html
import json
from typing import Any, Optional
from urllib.parse import urlsplit
from xml.sax.saxutils import escape as xml_escape

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scrapers.errors import ScrapeError
from scrapers.example import parse_catalogue_page
from scrapers.field_limits import fit_offer
from scrapers.miles_and_more_pages import parse_partner_page, parse_sitemap
from scrapers.payback import parse_payback_page
from scrapers.sanitize import clean_text
from scrapers.store import Offer

# Modest: the whole file runs in well under a minute on a shared 2-core machine.
PROPERTIES = settings(max_examples=200, deadline=None,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

PAGE_URL = "http://127.0.0.1:1/katalog/seite-1.html"
PARTNER_URL = "http://127.0.0.1:1/partner/otto_de"

# -- hostile leaves ----------------------------------------------------------------

NASTY_CHARACTERS = ["\x00", "\x01", "\x1b", "\x7f", "\x85", "\u202e", "\u2066", "\ud800", "\udfff",
                    "\ufeff", "\t", "\n", " ", "<", ">", "&", '"', "'", "/", ":", "[", "]", "%", "€"]
any_character = st.one_of(st.characters(), st.sampled_from(NASTY_CHARACTERS))
hostile_text = st.one_of(
    st.text(any_character, max_size=30),
    st.sampled_from(["\x00", "\u202e\x1b", "\ud800", "a\x00b", "\udfff ", "", " "]),  # nothing once cleaned
    st.sampled_from(["otto", "2 °P pro 1 €", "10-fach °P", "bis 31.12.2026", "0001-01-01T00:00:00+01:00",
                     "9999-12-31T23:59:59-01:00", "2026-02-30", "www.otto.de", "../../admin", "http://[::1",
                     "javascript:alert(1)", "x" * 2000]),
)
huge_integers = st.sampled_from([10**400, -(10**400), 2**63, 2**31, -1, 0, 10**4000])
hostile_leaf = st.one_of(st.none(), st.booleans(), st.integers(), huge_integers,
                         st.floats(allow_nan=True, allow_infinity=True), hostile_text)


def json_like(keys: Optional[list[str]] = None) -> st.SearchStrategy[Any]:
    """Arbitrary JSON-like values: leaves, lists and objects (keys partly from ``keys``)."""
    key = st.one_of(st.text(max_size=8), st.sampled_from(keys)) if keys else st.text(max_size=8)
    return st.recursive(
        hostile_leaf,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(key, children, max_size=4),
        max_leaves=12,
    )


def maybe(strategy: st.SearchStrategy[Any], keys: Optional[list[str]] = None) -> st.SearchStrategy[Any]:
    """The real kind of value most of the time, a hostile one otherwise."""
    return st.one_of(strategy, strategy, hostile_leaf, json_like(keys))


def mostly(sound: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``sound`` four times in five, else ``odd``: enough sound parts that a document gets read deeply."""
    return st.sampled_from([True] * 4 + [False]).flatmap(lambda ok: sound if ok else odd)


def optional_fields(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict]:
    """An object with any subset of ``fields``."""
    return st.fixed_dictionaries({}, optional=fields)


# -- what every offer must satisfy -------------------------------------------------

def _storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def assert_storable(offer: Offer) -> None:
    """``offer``, fitted to its columns, has only storable text and no ``None`` in its lists."""
    fitted, _ = fit_offer(offer)
    texts = [fitted.external_id, fitted.name]
    texts += [value for value in (fitted.slug, fitted.detail_url, fitted.logo_url) if value is not None]
    for values in (fitted.domains, fitted.categories):
        assert all(isinstance(value, str) and value for value in values), values
        texts += values
    for rate in fitted.rates:
        texts.append(rate.parsed.raw_text)
        if rate.detail is not None:
            texts.append(rate.detail)
    for text in texts:
        assert isinstance(text, str) and _storable(text), repr(text)
    assert fitted.external_id  # a shop needs an id to be stored under


def assert_fetchable(url: str) -> None:
    """``url`` is one the fetcher can take apart (it refuses other schemes itself, as a ScrapeError)."""
    parts = urlsplit(url)  # must not raise
    assert parts.scheme in ("http", "https") and parts.hostname, url


# -- PAYBACK -----------------------------------------------------------------------

PAYBACK_KEYS = ["partner", "partnerShortName", "partnerDisplayName", "partnerVanityName", "incentivation",
                "incentivationHeadline", "incentivationSubline", "promotionListItem",
                "browserExtensionInfoListItem", "domainNameListItem", "categoryShortNameListItem",
                "totalResultSize", "digitalShopListItem"]
plain_text = st.one_of(hostile_text, st.sampled_from(["otto", "lp628101", "OTTO", "mode-shop_2"]))
incentivation = optional_fields(incentivationHeadline=maybe(plain_text), incentivationSubline=maybe(plain_text))
payback_item = optional_fields(
    partner=maybe(optional_fields(partnerShortName=maybe(plain_text), partnerDisplayName=maybe(plain_text)),
                  PAYBACK_KEYS),
    partnerVanityName=maybe(plain_text),
    incentivation=maybe(incentivation, PAYBACK_KEYS),
    promotionListItem=maybe(st.lists(maybe(incentivation, PAYBACK_KEYS), max_size=3), PAYBACK_KEYS),
    browserExtensionInfoListItem=maybe(
        st.lists(maybe(optional_fields(domainNameListItem=maybe(st.lists(maybe(plain_text), max_size=3))),
                       PAYBACK_KEYS), max_size=3),
        PAYBACK_KEYS),
    categoryShortNameListItem=maybe(st.lists(maybe(plain_text), max_size=3), PAYBACK_KEYS),
)
# A valid id and name, so the other fields get looked at rather than the entry refused.
valid_partner = st.fixed_dictionaries({"partnerShortName": plain_text.filter(clean_text),
                                       "partnerDisplayName": plain_text.filter(str.strip)})
payback_catalogue = st.fixed_dictionaries({
    "totalResultSize": mostly(st.integers(min_value=0, max_value=10_000), hostile_leaf),
    "digitalShopListItem": mostly(st.lists(st.one_of(
        payback_item,
        st.tuples(payback_item, valid_partner).map(lambda pair: {**pair[0], "partner": pair[1]}),
    ), max_size=4), json_like(PAYBACK_KEYS)),
})


def check_payback(payload: Any) -> None:
    try:
        page = parse_payback_page(payload)
    except ScrapeError:
        return
    assert isinstance(page.total, int) and page.total >= 0
    for offer in page.offers:
        assert_storable(offer)


@PROPERTIES
@given(json_like(PAYBACK_KEYS))
def test_payback_parser_on_any_json_value(payload: Any) -> None:
    check_payback(payload)


@PROPERTIES
@given(payback_catalogue)
def test_payback_parser_on_the_real_shape_with_hostile_leaves(payload: dict) -> None:
    check_payback(payload)


sound_catalogue = st.lists(st.tuples(payback_item, valid_partner).map(lambda pair: {**pair[0], "partner": pair[1]}),
                          max_size=4).map(lambda items: {"totalResultSize": len(items), "digitalShopListItem": items})


@PROPERTIES
@given(sound_catalogue)
def test_payback_parser_keeps_every_entry_that_has_an_id_and_a_name(payload: dict) -> None:
    """Odd values in any other field never cost a shop, let alone the run: it is kept, the value counted."""
    page = parse_payback_page(payload)
    assert len(page.offers) == len(payload["digitalShopListItem"])
    for offer in page.offers:
        assert_storable(offer)
    for odd in page.odd_values.values():  # what the job's message quotes: a few, short, storable
        assert 0 < odd.count and len(odd.examples) <= min(odd.count, 3)
        assert all(len(example) < 200 and _storable(example) for example in odd.examples), odd.examples


# -- Miles & More: partner pages ---------------------------------------------------

MILES_KEYS = ["loaderData", "0", "view", "page", "bonded_data", "unique_name", "name", "status", "visible",
              "hidden_shop", "loyalty_points", "min_refund", "point_type", "point_value", "start_date", "end_date",
              "currently_active_hints", "title", "locale", "content", "voucher_code", "total_min", "type",
              "partner_logo", "resolved_url"]
date_text = st.one_of(hostile_text, st.sampled_from(["2026-12-31", "2026-12-31T22:59:59+00:00",
                                                      "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00"]))
number = st.one_of(st.integers(0, 20), st.floats(0, 20), huge_integers, st.floats())
campaign = optional_fields(type=maybe(st.just("campaign")), point_type=maybe(st.just("factor")),
                           point_value=maybe(number), start_date=maybe(date_text), end_date=maybe(date_text),
                           total_min=maybe(number))
hint_title_entry = optional_fields(locale=maybe(st.sampled_from(["de", "en", "fr"]), MILES_KEYS),
                                   content=maybe(st.sampled_from(["<p>Gutschein</p>", "<b>15 €</b>", "<![x", ""])
                                                 | hostile_text))
hint = optional_fields(type=maybe(st.just("campaign")), point_type=maybe(st.just("factor")),
                       point_value=maybe(number), total_min=maybe(number), end_date=maybe(date_text),
                       voucher_code=maybe(plain_text),
                       title=maybe(st.lists(maybe(hint_title_entry, MILES_KEYS), max_size=3) | hostile_text,
                                   MILES_KEYS))
# Mostly a sound id and name (else the page is refused before the other fields are read), odd fields around them.
bonded_data = st.fixed_dictionaries(
    {"unique_name": mostly(st.just("otto_de"), maybe(plain_text)),
     "name": mostly(st.just("OTTO") | plain_text.filter(str.strip), maybe(plain_text))},
    optional={
        "status": maybe(st.just("online")), "visible": maybe(st.booleans()), "hidden_shop": maybe(st.booleans()),
        "loyalty_points": maybe(number), "min_refund": maybe(campaign, MILES_KEYS),
        "currently_active_hints": maybe(st.lists(maybe(hint, MILES_KEYS), max_size=3), MILES_KEYS),
        "partner_logo": maybe(optional_fields(resolved_url=maybe(plain_text)), MILES_KEYS),
    },
)


def partner_document(bonded: Any) -> str:
    data = json.dumps({"loaderData": {"0": {"view": {"page": {"bonded_data": bonded}}}}})
    return ('<!doctype html><html><head><meta charset="utf-8"></head><body>'
            f'<script type="application/json" id="__STATIC_ROUTER_DATA__">{data}</script></body></html>')


@st.composite
def damaged(draw: st.DrawFn, document: st.SearchStrategy[str]) -> str | bytes:
    """A near-valid document: whole, cut short, with bytes spliced in, or re-encoded."""
    text = draw(document)
    # Mostly whole, so the hostile leaves inside reach the parser's field readers.
    how = draw(st.sampled_from(["whole"] * 6 + ["cut", "splice", "latin-1", "utf-16"]))
    if how == "cut":
        return text[: draw(st.integers(0, len(text)))]
    if how == "splice":
        at = draw(st.integers(0, len(text)))
        return text.encode("utf-8", "surrogatepass")[:at] + draw(st.binary(max_size=20)) + text[at:].encode(
            "utf-8", "surrogatepass")
    if how in ("latin-1", "utf-16"):
        return text.encode(how, "replace")
    return text


def check_partner_page(document: str | bytes) -> None:
    try:
        offer = parse_partner_page(document, PARTNER_URL)
    except ScrapeError:
        return
    if offer is not None:
        assert_storable(offer)


@PROPERTIES
@given(st.one_of(st.binary(max_size=300), st.text(any_character, max_size=300)))
def test_partner_page_parser_on_any_bytes_or_text(document: str | bytes) -> None:
    check_partner_page(document)


@PROPERTIES
@given(damaged(st.one_of(bonded_data.map(partner_document), json_like(MILES_KEYS).map(partner_document))))
def test_partner_page_parser_on_near_valid_pages(document: str | bytes) -> None:
    check_partner_page(document)


# -- Miles & More: sitemaps --------------------------------------------------------

loc = st.one_of(
    hostile_text,
    st.sampled_from(["http://h/partner/otto_de", "https://h/partner/a.b~c/", "http://h/partner/",
                     "http://[::1/partner/x", "http://[::1]/partner/x", "//h/partner/x", "/partner/x",
                     "ftp://h/partner/x", "http://h:99999/partner/x", "http://h/a.xml", "javascript:x"]),
)


@st.composite
def sitemap_document(draw: st.DrawFn) -> str:
    root = draw(st.sampled_from([("urlset", "url"), ("sitemapindex", "sitemap"), ("html", "body")]))
    namespace = draw(st.sampled_from([' xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"', "", ' xmlns="x"']))
    entries = "".join(f"<{root[1]}><loc>{xml_escape(value)}</loc></{root[1]}>"
                      for value in draw(st.lists(loc, max_size=5)))
    return f'<?xml version="1.0" encoding="UTF-8"?><{root[0]}{namespace}>{entries}</{root[0]}>'


def check_sitemap(document: str | bytes) -> None:
    try:
        partners, children = parse_sitemap(document, limit=3)
    except ScrapeError:
        return
    assert len(partners) <= 3
    for url in partners:
        urlsplit(url)  # the scraper takes each apart to build the page's URL: must not raise
    for url in children:
        urlsplit(url)  # handed to the fetcher as they are


@PROPERTIES
@given(st.one_of(st.binary(max_size=300), st.text(any_character, max_size=300)))
def test_sitemap_parser_on_any_bytes_or_text(document: str | bytes) -> None:
    check_sitemap(document)


@PROPERTIES
@given(damaged(sitemap_document()))
def test_sitemap_parser_on_near_valid_sitemaps(document: str | bytes) -> None:
    check_sitemap(document)


# -- Example catalogue -------------------------------------------------------------

attribute = st.one_of(hostile_text, st.sampled_from(
    ["https://shop.example/", "/relative", "unterseite.html", "//cdn.example/x", "mailto:x@y",
     "javascript:void(0)", "http://[::1", "http://", "https://:0/", "data:text/html,x", "ex-001"]))
page_number = mostly(st.integers(1, 5).map(str),
                     st.one_of(st.integers(-3, 5).map(str), hostile_text, st.just("9" * 5000)))


@st.composite
def catalogue_document(draw: st.DrawFn) -> str:
    def attr(value: str) -> str:  # usually escaped as a page would be, sometimes raw
        return html.escape(value, quote=True) if draw(st.booleans()) else value

    shops = []
    for _ in range(draw(st.integers(0, 4))):
        shop_id = draw(mostly(st.sampled_from(["ex-001", "ex-002"]), attribute))
        href = draw(attribute)
        name = draw(mostly(st.just("Schuhhaus"), hostile_text))
        rate = draw(mostly(st.just("2 Punkte pro 1 €"), hostile_text))
        link = draw(mostly(st.just(f'<a class="name" href="{attr(href)}">{html.escape(name)}</a>'),
                           st.sampled_from([f'<a class="name">{html.escape(name)}</a>', f"<a>{name}</a>", ""])))
        shops.append(f'<li class="shop" data-shop-id="{attr(shop_id)}">{link}'
                     f'<span class="rate">{html.escape(rate)}</span></li>')
    pager = (f'<p class="pager">Seite <span class="page">{html.escape(draw(page_number))}</span> von '
             f'<span class="pages">{html.escape(draw(page_number))}</span></p>')
    after = draw(st.sampled_from(["", f'<a rel="next" href="{attr(draw(attribute))}">Weiter</a>',
                                  '<a rel="next">Weiter</a>']))
    return f"<html><body>{pager}<ul class=\"shops\">{''.join(shops)}</ul>{after}</body></html>"


def check_catalogue(document: str | bytes) -> None:
    try:
        page = parse_catalogue_page(document, PAGE_URL)
    except ScrapeError:
        return
    for offer in page.offers:
        assert_storable(offer)
        if offer.detail_url is not None:
            assert_fetchable(offer.detail_url)
    if page.next_url is not None:
        assert_fetchable(page.next_url)


@PROPERTIES
@given(st.one_of(st.binary(max_size=300), st.text(any_character, max_size=300)))
def test_catalogue_parser_on_any_bytes_or_text(document: str | bytes) -> None:
    check_catalogue(document)


@PROPERTIES
@given(damaged(catalogue_document()))
def test_catalogue_parser_on_near_valid_pages(document: str | bytes) -> None:
    check_catalogue(document)
