"""The public pages: the shops each programme pays for."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, render_template
from sqlalchemy.orm import selectinload

from models import Programme, Shop, db

bp = Blueprint("shops", __name__)


@bp.get("/")
def index() -> str:
    """List the active shops of every programme with their current rates."""
    programmes = db.session.scalars(sa.select(Programme).order_by(Programme.id)).all()
    shops = db.session.scalars(
        sa.select(Shop)
        .where(Shop.active)
        .options(selectinload(Shop.rates))
        .order_by(sa.func.lower(Shop.name))
    ).all()
    by_programme = {programme.id: [] for programme in programmes}
    for shop in shops:
        by_programme[shop.programme_id].append(shop)
    return render_template("index.html", programmes=programmes, shops_by_programme=by_programme)
