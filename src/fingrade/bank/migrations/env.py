"""Alembic environment of the bank's schema: migrations always run on a connection handed in by
fingrade.bank.migrate, and record their revisions in the bank's own version table."""

from alembic import context

from fingrade.bank.migrate import VERSION_TABLE
from fingrade.bank.schema import metadata
from fingrade.store.sql.migrate import own_tables

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,
    version_table=VERSION_TABLE,
    include_name=own_tables(metadata),
)
with context.begin_transaction():
    context.run_migrations()
