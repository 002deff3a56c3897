"""No balance goes below its limit under any concurrency, and no money is created or lost
Concurrent transfers race on real connections — threads with a connection each on SQLite
(several writers on one file), a pool of connections on PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from bank_helpers import balance, customer, open_account, run

from fingrade.bank import ledger
from fingrade.bank.errors import InsufficientFunds
from fingrade.store.sql.db import Database

pytestmark = [pytest.mark.bank, pytest.mark.payments]


def _race(db_url: str, calls: list[Callable[[Any], Any]]) -> list[Any]:
    """Run each call(conn) in its own write transaction, all at once; return results or exceptions."""
    if db_url.startswith("sqlite"):
        barrier = threading.Barrier(len(calls))
        results: list[Any] = [None] * len(calls)

        def worker(i: int) -> None:
            db = Database(db_url)  # a connection of its own: a separate SQLite writer
            try:
                conn_fn = calls[i]
                barrier.wait()
                results[i] = db.run_sync(conn_fn)
            except Exception as exc:  # noqa: BLE001 - collected and asserted on by the test
                results[i] = exc
            finally:
                db.engine.dispose()  # type: ignore[union-attr]

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(calls))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        return results

    async def main() -> list[Any]:
        db = Database(db_url)  # a pool: each transfer on its own connection and transaction
        try:
            return await asyncio.gather(*(db.write(fn) for fn in calls), return_exceptions=True)
        finally:
            await db.close()

    return asyncio.run(main())


def test_concurrent_transfers_never_overdraw(db_url: str) -> None:
    """20 concurrent transfers of 100.00 from an account holding 1000.00, no overdraft: exactly 10
    succeed, the balance ends at 0.00, the books balance."""

    async def setup(db: Database, book: ledger.Ledger) -> tuple[ledger.Account, ledger.Account]:
        return (await open_account(book, customer(), funded=100_000), await open_account(book, customer()))

    a, b = run(db_url, setup)
    results = _race(
        db_url,
        [
            lambda conn: ledger.transfer(
                conn, debtor_account_id=a.id, creditor_account_id=b.id, amount=10_000, currency="EUR", remittance="race"
            )
            for _ in range(20)
        ],
    )
    assert sum(isinstance(r, ledger.Transfer) for r in results) == 10
    assert sum(isinstance(r, InsufficientFunds) for r in results) == 10, [
        r for r in results if not isinstance(r, ledger.Transfer)
    ]
    assert sorted(r.debtor_balance_after for r in results if isinstance(r, ledger.Transfer)) == list(
        range(0, 100_000, 10_000)
    )

    async def after(db: Database, book: ledger.Ledger) -> None:
        assert await balance(book, a) == 0 and await balance(book, b) == 100_000
        page = await book.list_transactions(a.owner_user_id or "", a.id, limit=100)
        assert page is not None and len(page.entries) == 11  # funding + 10 debits
        assert await book.check() == []

    run(db_url, after)


def test_concurrent_transfers_with_an_overdraft(db_url: str) -> None:
    """Overdraft 250.00 on 1000.00: of 20 concurrent 100.00 payments, exactly 12 fit (balance -200.00)."""

    async def setup(db: Database, book: ledger.Ledger) -> ledger.Account:
        return await open_account(book, customer(), funded=100_000, overdraft=25_000)

    a = run(db_url, setup)
    results = _race(
        db_url,
        [
            lambda conn: ledger.transfer(
                conn,
                debtor_account_id=a.id,
                creditor_iban="DE89370400440532013000",
                creditor_name="Shop",
                amount=10_000,
                currency="EUR",
            )
            for _ in range(20)
        ],
    )
    assert sum(isinstance(r, ledger.Transfer) for r in results) == 12
    assert all(isinstance(r, (ledger.Transfer, InsufficientFunds)) for r in results)

    async def after(db: Database, book: ledger.Ledger) -> None:
        assert await balance(book, a) == -20_000
        assert await book.check() == []

    run(db_url, after)


def test_opposite_transfers_do_not_deadlock_and_conserve_money(db_url: str) -> None:
    """Transfers in both directions between the same accounts at once: rows are locked in one
    global order, so none deadlocks; whatever the interleaving, the total is unchanged."""

    async def setup(db: Database, book: ledger.Ledger) -> list[ledger.Account]:
        return [await open_account(book, customer(), funded=50_000) for _ in range(3)]

    accounts = run(db_url, setup)
    calls = []
    for i in range(18):
        src, dst = accounts[i % 3], accounts[(i + 1 + i // 9) % 3]
        calls.append(
            lambda conn, s=src, d=dst, n=i: ledger.transfer(
                conn, debtor_account_id=s.id, creditor_account_id=d.id, amount=1_000 + n, currency="EUR"
            )
        )
    results = _race(db_url, calls)
    assert all(isinstance(r, ledger.Transfer) for r in results), results

    async def after(db: Database, book: ledger.Ledger) -> None:
        assert sum([await balance(book, a) for a in accounts]) == 150_000
        assert await book.check() == []

    run(db_url, after)


def test_first_payments_in_a_currency_create_one_clearing_account(fresh_db_url: str) -> None:
    """The clearing account of a currency is created by the first payment that needs it, also when
    several such payments race."""

    async def setup(db: Database, book: ledger.Ledger) -> list[ledger.Account]:
        return [await open_account(book, customer(), currency="GBP") for _ in range(8)]

    accounts = run(fresh_db_url, setup)
    results = _race(
        fresh_db_url,
        [
            lambda conn, a=a: ledger.receive_external(
                conn,
                creditor_account_id=a.id,
                debtor_iban="GB82WEST12345698765432",
                debtor_name="Payer",
                amount=1_234,
                currency="GBP",
            )
            for a in accounts
        ],
    )
    assert all(isinstance(r, ledger.Transfer) for r in results), results

    async def after(db: Database, book: ledger.Ledger) -> None:
        clearing = await db.read(lambda c: ledger.clearing_account(c, "GBP"))
        assert clearing.balance == -8 * 1_234
        assert await book.check() == []

    run(fresh_db_url, after)


@pytest.mark.parametrize("concurrency", [1, 4])
def test_benchmark_hook_books_n_payments(db_url: str, concurrency: int) -> None:
    from fingrade.bank.bench import run_transfers

    async def body(db: Database, book: ledger.Ledger) -> None:
        stats = await run_transfers(book, n=40, concurrency=concurrency)
        assert stats["booked"] == 40 and stats["per_second"] > 0
        assert await book.check() == []

    run(db_url, body)
