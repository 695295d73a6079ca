"""The shopper's pages: which programme pays most at a shop, and its history."""

from __future__ import annotations

from typing import Optional

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, render_template, request
from sqlalchemy.orm import selectinload

from models import Programme, Shop, db, utcnow
from views.charts import history_chart
from views.comparison import compare_shops, matches_query

bp = Blueprint("shops", __name__)

MAX_QUERY_LENGTH = 100
MAX_SHOP_ID = 2**31 - 1  # the id column's range on PostgreSQL


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
    """Search shops and show every programme's current offer, best first."""
    query = request.args.get("q", "").strip()[:MAX_QUERY_LENGTH]
    values = euro_values()
    comparisons = compare_shops(_active_shops(), values, utcnow())
    if query:
        comparisons = [comparison for comparison in comparisons if matches_query(comparison, query)]
    programmes = db.session.scalars(sa.select(Programme).order_by(Programme.id)).all()
    return render_template(
        "index.html",
        comparisons=comparisons,
        query=query,
        programmes=programmes,
        euro_values=values,
        any_sample=any(o.shop.is_sample or o.programme.is_sample for c in comparisons for o in c.offers),
    )


@bp.get("/shop/<int:shop_id>")
def shop(shop_id: int) -> str:
    """Show one merchant across programmes with the rate history chart."""
    if not 1 <= shop_id <= MAX_SHOP_ID:
        abort(400, description=f"Die Shop-Nummer muss von 1 bis {MAX_SHOP_ID} reichen.")
    wanted = db.session.get(Shop, shop_id)
    if wanted is None:
        abort(404)
    now, values = utcnow(), euro_values()
    shops = _active_shops() if wanted.active else _active_shops() + [wanted]
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
def date_de(moment) -> str:
    return moment.strftime("%d.%m.%Y") if moment else ""
