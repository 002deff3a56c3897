"""Ledger tests run on a real database: a fresh SQLite file per test, and one PostgreSQL database
per session (tests there use their own fresh accounts, and the ledger invariants are global)."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fingrade.bank import ledger
from fingrade.store.sql.db import Database
from fingrade.store.sql.migrate import upgrade
from support.server import _create_pg_database, drop_pg_database

BACKENDS = os.environ.get("FINGRADE_TEST_BACKENDS", "sqlite,postgres").split(",")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    if "postgres" not in BACKENDS:
        yield ""
        return
    url = _create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path, pg_url: str) -> str:
    return f"sqlite:///{tmp_path / 'bank.db'}" if request.param == "sqlite" else pg_url


def run(url: str, body: Callable[[Database, ledger.Ledger], Awaitable[Any]]) -> Any:
    """Open the database (migrated), run `body(db, ledger)` on a fresh event loop, close."""
    async def main() -> Any:
        db = Database(url)
        try:
            await upgrade(db)
            return await body(db, ledger.Ledger(db))
        finally:
            await db.close()
    return asyncio.run(main())


def customer() -> str:
    return "u_" + secrets.token_urlsafe(8)


async def open_account(book: ledger.Ledger, owner: str, *, currency: str = "EUR", funded: int = 0,
                       overdraft: int = 0, kind: str = "current", holder: str = "Test Customer") -> ledger.Account:
    """A customer account, funded from another bank (through the clearing account) if asked."""
    acc = await book.create_account(owner_user_id=owner, kind=kind, currency=currency, name="Test account",
                                    holder_name=holder, overdraft_limit=overdraft)
    if funded:
        await book.receive_external(creditor_account_id=acc.id, debtor_iban="DE89370400440532013000",
                                    debtor_name="Funding Bank", amount=funded, currency=currency,
                                    remittance="funding")
    return acc


async def balance(book: ledger.Ledger, acc: ledger.Account) -> int:
    got = await book.get_account(acc.owner_user_id or "", acc.id)
    assert got is not None
    return got.balance


@pytest.fixture(params=BACKENDS)
def fresh_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of the test's own, for tests that break the books on purpose or count everything."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bank.db'}"
        return
    url = _create_pg_database()
    yield url
    drop_pg_database(url)
