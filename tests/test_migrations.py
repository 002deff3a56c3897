"""The Alembic migrations produce exactly the schemas that store/sql/schema.py (the authorization
server's) and bank/schema.py (the bank's) declare, on SQLite and on PostgreSQL (so the two stay one
code path); each chain keeps its revisions in its own version table, and upgrading twice is a no-op.

A database made before the bank had its own chain (the authorization server's migrations 0004 and
0005 created the bank's tables; tests/support/as_migrations_with_bank_tables holds those revisions
as they were) upgrades to the same schemas, with its rows kept: the bank's chain adopts the tables."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, inspect, text
from support.server import _create_pg_database, drop_pg_database

from fingrade.bank import migrate as bank_migrations
from fingrade.bank.schema import metadata as bank_metadata
from fingrade.store.sql.db import Database
from fingrade.store.sql.migrate import MIGRATIONS, alembic_config, own_tables, upgrade
from fingrade.store.sql.schema import metadata as as_metadata

WITH_BANK_TABLES = Path(__file__).parent / "support" / "as_migrations_with_bank_tables"
AS_VERSION_TABLE = "alembic_version"
ACCOUNT = {
    "id": "acc_before",
    "owner_user_id": "u_before",
    "kind": "current",
    "iban": "DE89370400440532013000",
    "name": "Everyday",
    "holder_name": "Ada Before",
    "currency": "EUR",
    "overdraft_limit": 0,
    "balance": 0,
    "status": "open",
    "created_at": 1_700_000_000,
}


def _head(script_location: Path) -> str:
    cfg = alembic_config(None, script_location)  # type: ignore[arg-type]  # only reads the scripts
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def _diff(conn: Connection, metadata: MetaData, version_table: str) -> list:
    ctx = MigrationContext.configure(conn, opts={"version_table": version_table, "include_name": own_tables(metadata)})
    return compare_metadata(ctx, metadata)


def _state(conn: Connection) -> dict:
    """Both schemas' differences from their declarations, every table there, and both versions."""
    return {
        "as_diff": _diff(conn, as_metadata, AS_VERSION_TABLE),
        "bank_diff": _diff(conn, bank_metadata, bank_migrations.VERSION_TABLE),
        "tables": set(inspect(conn).get_table_names()),
        "as_version": conn.execute(text(f"SELECT version_num FROM {AS_VERSION_TABLE}")).scalars().all(),
        "bank_version": conn.execute(text(f"SELECT version_num FROM {bank_migrations.VERSION_TABLE}")).scalars().all(),
    }


def _assert_latest(state: dict) -> None:
    assert state["as_diff"] == []
    assert state["bank_diff"] == []
    assert state["tables"] == (
        set(as_metadata.tables) | set(bank_metadata.tables) | {AS_VERSION_TABLE, bank_migrations.VERSION_TABLE}
    )
    assert state["as_version"] == [_head(MIGRATIONS)]
    assert state["bank_version"] == [_head(bank_migrations.MIGRATIONS)]


async def _upgrade_both(db: Database) -> None:
    await upgrade(db)
    await bank_migrations.upgrade(db)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.db'}"
        return
    url = _create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


def test_migrations_match_schema(url: str) -> None:
    """A fresh database gets both schemas; a second upgrade changes nothing."""

    async def main() -> dict:
        db = Database(url)
        try:
            await _upgrade_both(db)
            await _upgrade_both(db)  # idempotent
            return await db.read(_state)
        finally:
            await db.close()

    _assert_latest(asyncio.run(main()))


def _chain_with_bank_tables(tmp_path: Path) -> Path:
    """The authorization server's chain as it was while it created the bank's tables."""
    chain = tmp_path / "as_migrations_with_bank_tables"
    shutil.copytree(MIGRATIONS, chain, ignore=shutil.ignore_patterns("__pycache__"))
    for script in WITH_BANK_TABLES.glob("000*.py"):
        shutil.copy(script, chain / "versions" / script.name)
    return chain


@pytest.mark.parametrize("made_at", ["0004", "head"])
def test_database_whose_bank_tables_the_as_chain_made_upgrades(url: str, made_at: str, tmp_path: Path) -> None:
    """A database made by the authorization server's chain with the bank's tables in it - at its
    head, or at 0004 (ledger tables only) - upgrades cleanly: the AS chain's 0004 and 0005 are still
    known revisions, the bank's chain adopts the tables there and creates the missing ones, and the
    rows are kept."""
    chain = _chain_with_bank_tables(tmp_path)

    def make(conn: Connection) -> None:
        command.upgrade(alembic_config(conn, chain), made_at)
        conn.execute(
            text(
                "INSERT INTO bank_accounts (id, owner_user_id, kind, iban, name, holder_name, currency, "
                "overdraft_limit, balance, status, created_at) VALUES (:id, :owner_user_id, :kind, :iban, "
                ":name, :holder_name, :currency, :overdraft_limit, :balance, :status, :created_at)"
            ),
            ACCOUNT,
        )

    def rows(conn: Connection) -> list:
        return [dict(r) for r in conn.execute(text("SELECT * FROM bank_accounts")).mappings()]

    async def main() -> tuple[set, dict, list]:
        db = Database(url)
        try:
            await db.write(make)
            before = await db.read(lambda conn: set(inspect(conn).get_table_names()))
            await _upgrade_both(db)
            await _upgrade_both(db)
            return before, await db.read(_state), await db.read(rows)
        finally:
            await db.close()

    before, state, kept = asyncio.run(main())
    assert bank_migrations.VERSION_TABLE not in before
    assert {"bank_accounts", "bank_transfers", "bank_entries"} <= before
    assert ("bank_payments" in before) == (made_at == "head")
    _assert_latest(state)
    assert kept == [ACCOUNT]


def test_bank_chain_refuses_a_partial_bank_schema(tmp_path: Path) -> None:
    """Some of a revision's tables without the others is no schema a migration made: the bank's chain
    changes nothing and says which tables are there and which are missing."""

    async def main() -> None:
        db = Database(f"sqlite:///{tmp_path / 'p.db'}")
        try:
            await upgrade(db)
            await db.write(lambda conn: conn.execute(text("CREATE TABLE bank_accounts (id VARCHAR(64) PRIMARY KEY)")))
            with pytest.raises(RuntimeError, match="bank_accounts exist but bank_entries, bank_transfers do not"):
                await bank_migrations.upgrade(db)
            tables = await db.read(lambda conn: set(inspect(conn).get_table_names()))
            assert "bank_transfers" not in tables
            assert bank_migrations.VERSION_TABLE not in tables
        finally:
            await db.close()

    asyncio.run(main())
