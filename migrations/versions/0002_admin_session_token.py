"""Admin sessions that end on the server: a session token per admin, part of every login id.

Existing admins get a random token each, so every session issued before the
upgrade ends with it (the login ids of old cookies carry no token).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""
import secrets

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_admin_user = sa.table("admin_user", sa.column("id", sa.Integer), sa.column("session_token", sa.String))


def upgrade():
    with op.batch_alter_table("admin_user") as batch:
        batch.add_column(sa.Column("session_token", sa.String(length=64), nullable=True))
    connection = op.get_bind()
    for (admin_id,) in connection.execute(sa.select(_admin_user.c.id)).all():
        connection.execute(_admin_user.update().where(_admin_user.c.id == admin_id)
                           .values(session_token=secrets.token_urlsafe(32)))
    with op.batch_alter_table("admin_user") as batch:
        batch.alter_column("session_token", existing_type=sa.String(length=64), nullable=False)


def downgrade():
    with op.batch_alter_table("admin_user") as batch:
        batch.drop_column("session_token")
