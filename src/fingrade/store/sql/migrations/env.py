"""Alembic environment of the authorization server's schema: migrations always run on a connection
handed in by fingrade.store.sql.migrate."""

from alembic import context

from fingrade.store.sql.migrate import own_tables
from fingrade.store.sql.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection, target_metadata=metadata, render_as_batch=True, include_name=own_tables(metadata)
)
with context.begin_transaction():
    context.run_migrations()
