"""Alembic environment: migrations always run on a connection handed in by fingrade.store.sql.migrate."""

from alembic import context

from fingrade.store.sql.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
