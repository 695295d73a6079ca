"""The shopper's pages: which programme pays most at a shop, and its history."""

from __future__ import annotations

from datetime import datetime
from typing import Optional

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, render_template, request
from sqlalchemy.orm import selectinload

from models import Programme, Shop, db, utcnow
from scrapers.german_text import count_of, number_de
from views.charts import history_chart
from views.comparison import compare_shops
from views.ids import MAX_ROW_ID
from views.shop_ranking import SORTS, comparison_page, merchant_shop_ids
from views.timezone import local_time

bp = Blueprint("shops", __name__)

MAX_QUERY_LENGTH = 100


def euro_values() -> dict[str, Optional[float]]:
    """Euro value of one point or mile per programme, from the config."""
    config = current_app.config
    return {
        "payback": config["PAYBACK_EURO_PER_POINT"],
        "miles_and_more": config["MILES_AND_MORE_EURO_PER_MILE"],
        "example": config["EXAMPLE_EURO_PER_POINT"],
    }


def _active_shops() -> list[Shop]:
    return db.session.scalars(
        sa.select(Shop)
        .where(Shop.active)
        .options(selectinload(Shop.rates), selectinload(Shop.programme))
    ).all()


@bp.get("/")
def index() -> str:
    """Search and filter the merchants, best value (or name) first, a page at a time."""
    query = request.args.get("q", "").strip()[:MAX_QUERY_LENGTH]
    sort = request.args.get("sort", "value") if request.args.get("sort") in SORTS else "value"
    programmes = db.session.scalars(sa.select(Programme).order_by(Programme.id)).all()
    wanted_programme = request.args.get("programme", "")
    if wanted_programme not in {programme.slug for programme in programmes}:
        wanted_programme = ""
    values = euro_values()
    page = comparison_page(programmes, values, utcnow(), query=query, programme=wanted_programme, sort=sort,
                           number=request.args.get("page", 1, type=int))
    if page is None:
        abort(404, description="Diese Seite der Liste gibt es nicht: die Liste ist kürzer.")
    filters = {"q": query or None, "sort": sort if sort != "value" else None, "programme": wanted_programme or None}
    return render_template(
        "index.html",
        page=page,
        comparisons=page.comparisons,
        query=query,
        sort=sort,
        programme=wanted_programme,
        filters=filters,
        programmes=programmes,
        euro_values=values,
        any_sample=any(o.shop.is_sample or o.programme.is_sample for c in page.comparisons for o in c.offers),
    )


@bp.get("/shop/<int:shop_id>")  # out of range: a 400 naming the range, below
def shop(shop_id: int) -> str:
    """Show one merchant across programmes with the rate history chart."""
    if not 1 <= shop_id <= MAX_ROW_ID:
        abort(400, description=f"Die Shop-Nummer muss von 1 bis {MAX_ROW_ID} reichen.")
    wanted = db.session.get(Shop, shop_id)
    if wanted is None:
        abort(404)
    now, values = utcnow(), euro_values()
    programmes = db.session.scalars(sa.select(Programme).order_by(Programme.id)).all()
    merchant = merchant_shop_ids(programmes, values, now, shop_id) if wanted.active else None
    if merchant is not None:  # the merchant's shops from the kept ranking: this page loads only those
        shops = db.session.scalars(sa.select(Shop).where(Shop.id.in_(merchant))
                                   .options(selectinload(Shop.rates), selectinload(Shop.programme))).all()
    else:  # an inactive shop: grouped with the active ones as it would have been
        shops = _active_shops() + [wanted]
    comparison = next(
        c for c in compare_shops(shops, values, now) if any(o.shop.id == shop_id for o in c.offers)
    )
    return render_template(
        "shop.html",
        comparison=comparison,
        chart=history_chart(comparison.offers, values, now),
        euro_values=values,
    )


@bp.app_template_filter("http_url")
def http_url(url: Optional[str]) -> Optional[str]:
    """Pass only http(s) URLs to links: scraped ``javascript:`` URLs render as no link."""
    if isinstance(url, str) and url.lower().startswith(("https://", "http://")):
        return url
    return None


@bp.app_template_filter("euro")
def euro(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:.2f} €".replace(".", ",")


@bp.app_template_filter("date_de")
def date_de(moment: Optional[datetime]) -> str:
    """A rate's end (naive UTC, like every stored time) as the day it is in the site's zone: "bis 31.12."
    is stored as 22:59:59 UTC, the end of 31.12. in Germany."""
    return local_time(moment, "%d.%m.%Y") if moment else ""


@bp.app_template_filter("number_de")
def number_de_filter(value: float) -> str:
    return number_de(value)


@bp.app_template_filter("plural")
def plural(count: int, singular: str, plural_form: str) -> str:
    """``{{ n | plural("Seite", "Seiten") }}``: "1 Seite", "2 Seiten"."""
    return count_of(count, singular, plural_form)
