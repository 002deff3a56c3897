"""The demo ledger: about three months of bookings for alice and bob, booked
through the ledger itself so its invariants hold; deterministic; idempotent; safe when two nodes
start at once; fast enough for every `fingrade serve --demo` of the test suite."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from bank_helpers import run
from sqlalchemy import func, select

from fingrade.bank import ledger
from fingrade.bank.demo import seed_ledger
from fingrade.bank.schema import bank_accounts, bank_entries
from fingrade.finance.iban import is_valid_iban
from fingrade.store.sql.db import Database

pytestmark = pytest.mark.bank


async def _summary(db: Database, book: ledger.Ledger, alice: str, bob: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, owner in (("alice", alice), ("bob", bob)):
        accounts = await book.list_accounts(owner)
        out[name] = [(a.kind, a.currency, a.iban, a.balance, a.overdraft_limit) for a in accounts]
        for a in accounts:
            page = await book.list_transactions(owner, a.id, limit=100)
            assert page is not None
            out[name + "_" + a.name] = [(e.amount, e.description, e.counterparty_name) for e in page.entries]

    def span(conn: Any) -> tuple[int, int, int]:
        return tuple(
            conn.execute(
                select(
                    func.min(bank_entries.c.booked_at), func.max(bank_entries.c.booked_at), func.count()
                ).select_from(bank_entries)
            ).one()
        )

    out["span"] = await db.read(span)
    return out


def test_demo_ledger_is_plausible_balanced_and_idempotent(fresh_db_url: str) -> None:
    async def body(db: Database, book: ledger.Ledger) -> None:
        started = time.perf_counter()
        booked = await db.write(seed_ledger, "u_alice", "u_bob")
        elapsed = time.perf_counter() - started
        print(f"demo ledger: {booked} transfers in {elapsed * 1000:.0f} ms")
        assert 150 <= booked <= 300
        assert elapsed < 2.0  # ~60-200 ms when the machine is idle; generous for a loaded CI box
        assert await db.write(seed_ledger, "u_alice", "u_bob") == 0  # a second start adds nothing
        s = await _summary(db, book, "u_alice", "u_bob")
        assert sorted((k, c) for k, c, *_ in s["alice"]) == [("current", "EUR"), ("savings", "EUR")]
        assert sorted((k, c) for k, c, *_ in s["bob"]) == [("current", "EUR"), ("current", "GBP")]
        assert all(is_valid_iban(iban) for _, _, iban, _, _ in s["alice"] + s["bob"])
        first, last, entries = s["span"]
        assert entries == 2 * booked and last - first > 85 * 86400  # about three months
        everyday = s["alice_Everyday account"]
        assert any(d.startswith("Salary") and amount > 0 for amount, d, _ in everyday)
        assert any(d.startswith("Rent") and amount < 0 for amount, d, _ in everyday)
        assert any(d.startswith("Card payment") for _, d, _ in everyday)
        assert any(c == "Bob Berg" for _, _, c in everyday)  # transfers between alice and bob
        assert await book.check() == []

        def count(conn: Any) -> int:
            return conn.execute(select(func.count()).select_from(bank_accounts)).scalar()

        assert await db.read(count) == 4 + 2  # and the EUR and GBP clearing accounts

    run(fresh_db_url, body)


def test_demo_ledger_is_deterministic(tmp_path) -> None:
    now = 1_790_000_000
    summaries = []
    for name in ("one", "two"):

        async def body(db: Database, book: ledger.Ledger) -> dict[str, Any]:
            await db.write(seed_ledger, "u_alice", "u_bob", now)
            return await _summary(db, book, "u_alice", "u_bob")

        summaries.append(run(f"sqlite:///{tmp_path / name}.db", body))
    assert summaries[0] == summaries[1]


def test_two_nodes_seeding_at_once_seed_once(fresh_db_url: str) -> None:
    """Two servers starting together on one database: one seeds, the other sees the accounts."""

    async def setup(db: Database, book: ledger.Ledger) -> None:
        pass

    run(fresh_db_url, setup)  # migrated

    async def seed_twice() -> list[int]:
        dbs = [Database(fresh_db_url), Database(fresh_db_url)]
        try:
            if dbs[0].engine is not None:  # SQLite runs inline: two threads make it concurrent
                return list(
                    await asyncio.gather(
                        *(asyncio.to_thread(d.run_sync, lambda c: seed_ledger(c, "u_alice", "u_bob")) for d in dbs)
                    )
                )
            return list(await asyncio.gather(*(d.write(seed_ledger, "u_alice", "u_bob") for d in dbs)))
        finally:
            for d in dbs:
                await d.close()

    results = asyncio.run(seed_twice())
    assert sorted(r > 0 for r in results) == [False, True]

    async def after(db: Database, book: ledger.Ledger) -> None:
        assert len(await book.list_accounts("u_alice")) == 2
        assert await book.check() == []

    run(fresh_db_url, after)
