"""The Alembic migrations produce exactly the schema that schema.py declares, on SQLite and on
PostgreSQL (so the two stay one code path), and upgrading twice is a no-op."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from support.server import _create_pg_database, drop_pg_database

from fingrade.store.sql.db import Database
from fingrade.store.sql.migrate import upgrade
from fingrade.store.sql.schema import metadata


def _diff(conn) -> list:
    return compare_metadata(MigrationContext.configure(conn), metadata)


async def _check(url: str) -> list:
    db = Database(url)
    try:
        await upgrade(db)
        await upgrade(db)  # idempotent
        return await db.read(_diff)
    finally:
        await db.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migrations_match_schema(backend: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}" if backend == "sqlite" else _create_pg_database()
    try:
        assert asyncio.run(_check(url)) == []
    finally:
        if backend == "postgres":
            drop_pg_database(url)
