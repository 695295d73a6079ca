"""Baseline: the schema of the releases before migrations (tables made by create_all).

A database made by such a release already has these tables: each one is
created only where it is missing, so ``flask db upgrade`` adopts that
database as it is, and a new database gets the same schema.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _tables() -> list[tuple[str, list, list[tuple[str, list[str]]]]]:
    """(table, columns and constraints, indexes) in creation order."""
    return [
        ("admin_user", [
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("username", sa.String(length=80), nullable=False),
            sa.Column("password_hash", sa.String(length=255), nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("username"),
        ], []),
        ("api_token", [
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("name", sa.String(length=80), nullable=False),
            sa.Column("token_hash", sa.String(length=64), nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("last_used_at", sa.DateTime(), nullable=True),
            sa.Column("revoked_at", sa.DateTime(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("name"),
        ], []),
        ("programme", [
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("slug", sa.String(length=40), nullable=False),
            sa.Column("name", sa.String(length=120), nullable=False),
            sa.Column("unit_name", sa.String(length=40), nullable=False),
            sa.Column("is_sample", sa.Boolean(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("slug"),
        ], []),
        ("scrape_run", [
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("scraper", sa.String(length=40), nullable=False),
            sa.Column("job_id", sa.String(length=36), nullable=True),
            sa.Column("started_at", sa.DateTime(), nullable=False),
            sa.Column("finished_at", sa.DateTime(), nullable=True),
            sa.Column("outcome", sa.String(length=20), nullable=False),
            sa.Column("added", sa.Integer(), nullable=False),
            sa.Column("updated", sa.Integer(), nullable=False),
            sa.Column("message", sa.Text(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        ], [("ix_scrape_run_scraper", ["scraper"])]),
        ("shop", [
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("programme_id", sa.Integer(), nullable=False),
            sa.Column("external_id", sa.String(length=120), nullable=False),
            sa.Column("name", sa.String(length=300), nullable=False),
            sa.Column("slug", sa.String(length=300), nullable=True),
            sa.Column("detail_url", sa.String(length=1000), nullable=True),
            sa.Column("logo_url", sa.String(length=1000), nullable=True),
            sa.Column("domains", sa.JSON(), nullable=False),
            sa.Column("categories", sa.JSON(), nullable=False),
            sa.Column("active", sa.Boolean(), nullable=False),
            sa.Column("is_sample", sa.Boolean(), nullable=False),
            sa.Column("first_seen", sa.DateTime(), nullable=False),
            sa.Column("last_seen", sa.DateTime(), nullable=False),
            sa.ForeignKeyConstraint(["programme_id"], ["programme.id"]),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("programme_id", "external_id"),
        ], [("ix_shop_active", ["active"]), ("ix_shop_programme_id", ["programme_id"])]),
        ("rate", [
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("shop_id", sa.Integer(), nullable=False),
            sa.Column("kind", sa.String(length=20), nullable=False),
            sa.Column("raw_text", sa.String(length=500), nullable=False),
            sa.Column("rate_type", sa.String(length=20), nullable=True),
            sa.Column("value", sa.Float(), nullable=True),
            sa.Column("up_to", sa.Boolean(), nullable=False),
            sa.Column("detail", sa.String(length=500), nullable=True),
            sa.Column("ends_at", sa.DateTime(), nullable=True),
            sa.Column("valid_from", sa.DateTime(), nullable=False),
            sa.Column("valid_to", sa.DateTime(), nullable=True),
            sa.ForeignKeyConstraint(["shop_id"], ["shop.id"]),
            sa.PrimaryKeyConstraint("id"),
        ], [("ix_rate_shop_id", ["shop_id"])]),
        ("job", [
            sa.Column("seq", _SEQ, autoincrement=True, nullable=False),
            sa.Column("id", sa.String(length=36), nullable=False),
            sa.Column("name", sa.String(length=200), nullable=False),
            sa.Column("func_path", sa.String(length=300), nullable=True),
            sa.Column("args_json", sa.Text(), nullable=True),
            sa.Column("pinned_to", sa.String(length=64), nullable=True),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("progress", sa.Integer(), nullable=False),
            sa.Column("total_steps", sa.Integer(), nullable=False),
            sa.Column("result_json", sa.Text(), nullable=True),
            sa.Column("error", sa.Text(), nullable=True),
            sa.Column("traceback", sa.Text(), nullable=True),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("started_at", sa.DateTime(), nullable=True),
            sa.Column("completed_at", sa.DateTime(), nullable=True),
            sa.Column("owner", sa.String(length=160), nullable=True),
            sa.Column("lease_until", sa.DateTime(), nullable=True),
            sa.Column("attempts", sa.Integer(), nullable=False),
            sa.Column("max_attempts", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("seq"),
            sa.UniqueConstraint("id"),
        ], [("ix_job_status_seq", ["status", "seq"])]),
        ("job_message", [
            sa.Column("seq", _SEQ, autoincrement=True, nullable=False),
            sa.Column("job_id", sa.String(length=36), nullable=False),
            sa.Column("timestamp", sa.DateTime(), nullable=False),
            sa.Column("message", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("seq"),
        ], [("ix_job_message_job_id", ["job_id"])]),
    ]


def upgrade():
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    for table, columns, indexes in _tables():
        if table in existing:
            continue
        op.create_table(table, *columns)
        for index, index_columns in indexes:
            op.create_index(index, table, index_columns, unique=False)


def downgrade():
    for table, _columns, _indexes in reversed(_tables()):
        op.drop_table(table)
