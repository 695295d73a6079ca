"""Job control: one active job per key, cancel requests, retries, time limits, cron schedules.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ACTIVE = sa.text("status IN ('queued', 'running')")


def upgrade():
    with op.batch_alter_table("job") as job:
        job.add_column(sa.Column("unique_key", sa.String(length=200), nullable=True))
        job.add_column(sa.Column("cancel_requested_at", sa.DateTime(), nullable=True))
        job.add_column(sa.Column("retry_at", sa.DateTime(), nullable=True))
        job.add_column(sa.Column("time_limit", sa.Float(), nullable=True))
    op.create_index("uq_job_active_key", "job", ["unique_key"], unique=True,
                    sqlite_where=ACTIVE, postgresql_where=ACTIVE)
    op.create_table(
        "job_schedule",
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("expression", sa.String(length=120), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("last_due_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("kind"),
    )


def downgrade():
    op.drop_table("job_schedule")
    op.drop_index("uq_job_active_key", table_name="job")
    with op.batch_alter_table("job") as job:
        for column in ("time_limit", "retry_at", "cancel_requested_at", "unique_key"):
            job.drop_column(column)
