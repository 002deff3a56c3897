"""The bank's schema (schema.py) has its own Alembic chain: migrations/ beside this module, with its
own version table, so it never mixes with the authorization server's chain even in one database.

Before the bank had its own chain, the authorization server's migrations 0004 and 0005 created the
bank's tables. The bank's first revisions adopt such tables: when a revision's tables are all
there already, it creates nothing, and Alembic records the revision as done."""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa
from alembic import op

from fingrade.store.sql.db import Database
from fingrade.store.sql.migrate import upgrade_chain

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "bank_alembic_version"

log = logging.getLogger("fingrade.bank")


async def upgrade(db: Database) -> None:
    """Bring the bank's tables to the latest schema."""
    await upgrade_chain(db, MIGRATIONS)


def tables_exist(names: tuple[str, ...]) -> bool:
    """Inside a migration: True when all of `names` exist (tables this revision adopts), False when
    none does. Some of them only is a schema no migration made: refused, nothing is changed."""
    inspector = sa.inspect(op.get_bind())
    found = [name for name in names if inspector.has_table(name)]
    if found and len(found) != len(names):
        missing = sorted(set(names) - set(found))
        raise RuntimeError(f"bank schema: {', '.join(found)} exist but {', '.join(missing)} do not; not migrating")
    if found:
        log.info("bank schema: adopting the existing tables %s", ", ".join(names))
    return bool(found)
