"""PAYBACK promotion end dates in UTC, like every other stored time.

They were stored as the naive local end of the day they name ("bis 31.12." as
31.12. 23:59:59, German time), so a promotion looked ended an hour or two late
beside UTC times. Converted here as the parser now stores them; only values at
23:59:59, the old form, are touched, so running it twice changes nothing.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

GERMANY = ZoneInfo("Europe/Berlin")

programme = sa.table("programme", sa.column("id", sa.Integer), sa.column("slug", sa.String))
shop = sa.table("shop", sa.column("id", sa.Integer), sa.column("programme_id", sa.Integer))
rate = sa.table("rate", sa.column("id", sa.Integer), sa.column("shop_id", sa.Integer),
                sa.column("ends_at", sa.DateTime))


def _payback_end_dates(connection) -> list:
    return connection.execute(
        sa.select(rate.c.id, rate.c.ends_at)
        .join(shop, shop.c.id == rate.c.shop_id).join(programme, programme.c.id == shop.c.programme_id)
        .where(programme.c.slug == "payback", rate.c.ends_at.is_not(None))
    ).all()


def _convert(to_utc: bool) -> None:
    connection = op.get_bind()
    for rate_id, ends_at in _payback_end_dates(connection):
        if to_utc and ends_at.time().isoformat() == "23:59:59":
            moved = ends_at.replace(tzinfo=GERMANY).astimezone(timezone.utc).replace(tzinfo=None)
        elif not to_utc and ends_at.time().isoformat() in ("21:59:59", "22:59:59"):
            moved = ends_at.replace(tzinfo=timezone.utc).astimezone(GERMANY).replace(tzinfo=None)
        else:
            continue
        connection.execute(sa.update(rate).where(rate.c.id == rate_id).values(ends_at=moved))


def upgrade():
    _convert(to_utc=True)


def downgrade():
    _convert(to_utc=False)
