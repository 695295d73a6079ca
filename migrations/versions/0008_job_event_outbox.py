"""The job-event outbox, and deliveries keyed on the event they come from.

A job's final state and its ``job_event`` row are written in one
transaction; webhooks turn each event into at most one delivery per
endpoint (the unique index), however often the event is read.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "job_event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False, autoincrement=True),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,  # ids never come back after deletes: deliveries are keyed on them
    )
    op.add_column("webhook_delivery", sa.Column("event_id", sa.BigInteger(), nullable=True))
    op.create_index("uq_webhook_delivery_event_endpoint", "webhook_delivery", ["event_id", "endpoint_id"],
                    unique=True)


def downgrade():
    op.drop_index("uq_webhook_delivery_event_endpoint", table_name="webhook_delivery")
    with op.batch_alter_table("webhook_delivery") as deliveries:
        deliveries.drop_column("event_id")
    op.drop_table("job_event")
