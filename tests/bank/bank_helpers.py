"""Helpers of the ledger tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from fingrade.bank import ledger
from fingrade.bank import migrate as bank_migrations
from fingrade.store.sql.db import Database
from fingrade.store.sql.migrate import upgrade


def run(url: str, body: Callable[[Database, ledger.Ledger], Awaitable[Any]]) -> Any:
    """Open the database (migrated), run `body(db, ledger)` on a fresh event loop, close."""

    async def main() -> Any:
        db = Database(url)
        try:
            await upgrade(db)
            await bank_migrations.upgrade(db)
            return await body(db, ledger.Ledger(db))
        finally:
            await db.close()

    return asyncio.run(main())


def customer() -> str:
    return "u_" + secrets.token_urlsafe(8)


async def open_account(
    book: ledger.Ledger,
    owner: str,
    *,
    currency: str = "EUR",
    funded: int = 0,
    overdraft: int = 0,
    kind: str = "current",
    holder: str = "Test Customer",
) -> ledger.Account:
    """A customer account, funded from another bank (through the clearing account) if asked."""
    acc = await book.create_account(
        owner_user_id=owner,
        kind=kind,
        currency=currency,
        name="Test account",
        holder_name=holder,
        overdraft_limit=overdraft,
    )
    if funded:
        await book.receive_external(
            creditor_account_id=acc.id,
            debtor_iban="DE89370400440532013000",
            debtor_name="Funding Bank",
            amount=funded,
            currency=currency,
            remittance="funding",
        )
    return acc


async def balance(book: ledger.Ledger, acc: ledger.Account) -> int:
    got = await book.get_account(acc.owner_user_id or "", acc.id)
    assert got is not None
    return got.balance
