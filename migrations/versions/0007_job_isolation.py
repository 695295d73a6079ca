"""Where a job runs: in a worker thread, or in a child process its worker supervises.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("job") as job:
        job.add_column(sa.Column("isolation", sa.String(length=10), nullable=False, server_default="thread"))


def downgrade():
    with op.batch_alter_table("job") as job:
        job.drop_column("isolation")
