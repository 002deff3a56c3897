"""Run Alembic migrations on SQLite or PostgreSQL (the latter under an advisory lock, so that
several nodes starting at once migrate exactly once)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

from fingrade.store.sql.db import Database

_HERE = Path(__file__).parent
_LOCK_ID = 0x46494E47  # "FING"


def _alembic_config(conn: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_HERE / "migrations"))
    cfg.attributes["connection"] = conn
    return cfg


def _upgrade(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
    command.upgrade(_alembic_config(conn), "head")


async def upgrade(db: Database) -> None:
    await db.write(_upgrade)
