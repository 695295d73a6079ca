"""Alembic environment: the app's models and the job tables, on the app's database.

Run by ``flask --app app db ...`` and by the app itself at start-up
(``database.upgrade_schema``), which hands over a connection that already
holds the schema lock (``config.attributes["connection"]``).
"""

from alembic import context
from flask import current_app

from jobs.schema import metadata as job_metadata

config = context.config
target_metadata = [current_app.extensions["migrate"].db.metadata, job_metadata]


def run_migrations(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=current_app.extensions["migrate"].db.engine.url, target_metadata=target_metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif config.attributes.get("connection") is not None:
    run_migrations(config.attributes["connection"])
else:
    with current_app.extensions["migrate"].db.engine.connect() as connection:
        run_migrations(connection)
        connection.commit()
