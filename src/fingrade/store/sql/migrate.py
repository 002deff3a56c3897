"""Run Alembic migrations on SQLite or PostgreSQL (the latter under an advisory lock, so that
several nodes starting at once migrate exactly once).

One database may hold two schemas, each with its own migration chain: the authorization server's
(migrations/ here, version table `alembic_version`; its `onetime` table is also the bank's one-time
store) and the bank's (fingrade/bank/migrations, version table `bank_alembic_version`). Each chain
has its own script directory and version table, so neither ever sees the other's revisions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, MetaData, text

from fingrade.store.sql.db import Database

MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_ID = 0x46494E47  # "FING"


def alembic_config(conn: Connection, script_location: Path = MIGRATIONS) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.attributes["connection"] = conn
    return cfg


def own_tables(metadata: MetaData) -> Callable[..., bool]:
    """Alembic's `include_name` for a chain's environment: autogenerate compares only the chain's own
    tables, and never proposes to drop the other chain's."""
    return lambda name, type_, _parent: type_ != "table" or name in metadata.tables


def _upgrade(conn: Connection, script_location: Path) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
    command.upgrade(alembic_config(conn, script_location), "head")


async def upgrade_chain(db: Database, script_location: Path) -> None:
    """Bring one chain to its head, in one transaction."""
    await db.write(_upgrade, script_location)


async def upgrade(db: Database) -> None:
    """The authorization server's schema."""
    await upgrade_chain(db, MIGRATIONS)
