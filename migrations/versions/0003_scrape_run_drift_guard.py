"""Drift guard: each scrape run's figures, its held offers and who accepted it.

Existing runs keep NULL figures: the first run after this upgrade has no
baseline and is not compared (README "Drift guard").

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _columns() -> list[sa.Column]:
    return [
        sa.Column("is_sample", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=True),
        sa.Column("shops_seen", sa.Integer(), nullable=True),
        sa.Column("shops_offered", sa.Integer(), nullable=True),
        sa.Column("rates_total", sa.Integer(), nullable=True),
        sa.Column("rates_understood", sa.Integer(), nullable=True),
        sa.Column("promotions", sa.Integer(), nullable=True),
        sa.Column("deactivated", sa.Integer(), nullable=True),
        sa.Column("held_offers", sa.JSON(), nullable=True),
        sa.Column("accepted_at", sa.DateTime(), nullable=True),
        sa.Column("accepted_by", sa.String(length=80), nullable=True),
    ]


def upgrade():
    # Batch mode: SQLite adds the columns in place, PostgreSQL with plain ALTER TABLE.
    with op.batch_alter_table("scrape_run") as batch:
        for column in _columns():
            batch.add_column(column)


def downgrade():
    with op.batch_alter_table("scrape_run") as batch:
        for column in reversed(_columns()):
            batch.drop_column(column.name)
