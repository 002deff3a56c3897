"""Queries for the account-information API: a customer sees only their own
accounts (another customer's id is answered like an unknown one); balances; transactions in a date
range with keyset cursor pagination that returns every row exactly once while bookings go on."""

from __future__ import annotations

import asyncio
import base64
import threading
from typing import Any

import pytest
from bank_helpers import customer, open_account, run

from fingrade.bank import ledger
from fingrade.bank.errors import InvalidCursor, InvalidQuery
from fingrade.store.sql.db import Database

pytestmark = pytest.mark.bank


def test_a_customer_sees_only_their_own_accounts(db_url: str) -> None:
    async def body(db: Database, book: ledger.Ledger) -> None:
        alice, bob = customer(), customer()
        a1 = await open_account(book, alice, funded=1_000, overdraft=200)
        a2 = await open_account(book, alice, kind="savings")
        b1 = await open_account(book, bob, funded=500)
        listed = [a.id for a in await book.list_accounts(alice)]
        assert sorted(listed) == sorted([a1.id, a2.id])
        assert [a.id for a in await book.list_accounts(alice)] == listed  # a stable order
        assert [a.id for a in await book.list_accounts(bob)] == [b1.id]
        assert await book.list_accounts(customer()) == []
        got = await book.get_account(alice, a1.id)
        assert got is not None and (got.iban, got.currency, got.balance, got.available) == (a1.iban, "EUR", 1000, 1200)
        # bob's account, asked for by alice, looks exactly like one that does not exist
        for owner, acc_id in (
            (alice, b1.id),
            (bob, a1.id),
            (alice, "acc_nope"),
            (alice, "clearing-EUR"),
            (alice, "acc_\x00"),
            (alice + "\x00", a1.id),
            (alice, "x" * 10_000),
        ):
            assert await book.get_account(owner, acc_id) is None
            assert await book.get_balances(owner, acc_id) is None
            assert await book.list_transactions(owner, acc_id) is None
        assert await book.list_accounts("\x00") == []
        bal = await book.get_balances(bob, b1.id)
        assert bal is not None and (bal.booked, bal.available, bal.overdraft_limit, bal.currency) == (
            500,
            500,
            0,
            "EUR",
        )

    run(db_url, body)


async def _history(db: Database, book: ledger.Ledger, n: int, base: int) -> tuple[str, ledger.Account]:
    """An account with `n` entries, three per second (so pages split ties on booked_at)."""
    owner = customer()
    acc = await open_account(book, owner)
    orders = [
        ledger.TransferOrder(
            amount=100 + i,
            currency="EUR",
            remittance=f"#{i}",
            debtor_iban="GB82WEST12345698765432",
            debtor_name="Payer",
            creditor_account_id=acc.id,
            booked_at=base + i // 3,
        )
        for i in range(n)
    ]
    await db.write(lambda c: ledger.book(c, orders))
    return owner, acc


def test_cursor_pages_return_every_row_exactly_once_while_bookings_go_on(db_url: str) -> None:
    async def body(db: Database, book: ledger.Ledger) -> None:
        base = 1_780_000_000
        owner, acc = await _history(db, book, 47, base)
        first = await book.list_transactions(owner, acc.id, limit=100)
        assert first is not None and first.next_cursor is None and len(first.entries) == 47
        originals = [e.id for e in first.entries]
        seen: list[ledger.Entry] = []
        cursor = None
        pages = 0
        while True:
            page = await book.list_transactions(owner, acc.id, cursor=cursor, limit=7)
            assert page is not None and len(page.entries) <= 7
            seen += page.entries
            pages += 1
            # bookings between pages: new ones now, and ones at the very second of the cursor
            # (ties on booked_at, ids random: some sort before the cursor, some after)
            cursor_time = page.entries[-1].booked_at
            extra = [
                ledger.TransferOrder(
                    amount=1,
                    currency="EUR",
                    debtor_iban="GB82WEST12345698765432",
                    debtor_name="Payer",
                    creditor_account_id=acc.id,
                    booked_at=t,
                )
                for t in (None, cursor_time, cursor_time)
            ]
            await db.write(lambda c, extra=extra: ledger.book(c, extra))
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        ids = [e.id for e in seen]
        assert len(ids) == len(set(ids)), "a row was returned twice"
        assert set(originals) <= set(ids), "a row was skipped"
        keys = [(e.booked_at, e.id) for e in seen]
        assert keys == sorted(keys, reverse=True)  # newest first, strictly
        assert pages >= 7

    run(db_url, body)


def test_transactions_in_a_date_range(db_url: str) -> None:
    async def body(db: Database, book: ledger.Ledger) -> None:
        base = 1_780_000_000
        owner, acc = await _history(db, book, 30, base)  # seconds base .. base+9, three each
        page = await book.list_transactions(owner, acc.id, booked_from=base + 2, booked_to=base + 4)
        assert page is not None and len(page.entries) == 9  # both bounds inclusive
        assert {e.booked_at for e in page.entries} == {base + 2, base + 3, base + 4}
        page = await book.list_transactions(owner, acc.id, booked_from=base + 8)
        assert page is not None and len(page.entries) == 6
        page = await book.list_transactions(owner, acc.id, booked_to=base)
        assert page is not None and len(page.entries) == 3
        # the range applies to every page
        p1 = await book.list_transactions(owner, acc.id, booked_from=base + 1, booked_to=base + 5, limit=4)
        assert p1 is not None and p1.next_cursor
        rest = await book.list_transactions(
            owner, acc.id, booked_from=base + 1, booked_to=base + 5, limit=100, cursor=p1.next_cursor
        )
        assert rest is not None and len(p1.entries) + len(rest.entries) == 15
        assert all(base + 1 <= e.booked_at <= base + 5 for e in p1.entries + rest.entries)
        e = rest.entries[0]
        assert e.credit_debit == "Credit" and e.counterparty_name == "Payer" and e.currency == "EUR"

    run(db_url, body)


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "bm90LWEtY3Vyc29y",
        base64.urlsafe_b64encode(b"-1.abc").decode(),
        base64.urlsafe_b64encode(b"12.").decode(),
        base64.urlsafe_b64encode(b"12.a\x00b").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        "A" * 500,
        # beyond a 64-bit integer column, and beyond any booking time
        base64.urlsafe_b64encode(b"1" * 120 + b".txn_x").decode(),
        base64.urlsafe_b64encode(b"9223372036854775808.txn_x").decode(),
        base64.urlsafe_b64encode(b"253402300800.txn_x").decode(),
        base64.urlsafe_b64encode(b"0012.txn_x").decode(),
        base64.urlsafe_b64encode(b"12.txn x").decode(),
        base64.urlsafe_b64encode("\u0663.txn_x".encode()).decode(),
        base64.urlsafe_b64encode(b"12.txn_x").decode() + "\n",
    ],
)
def test_bad_cursors_are_refused(db_url: str, cursor: str) -> None:
    async def body(db: Database, book: ledger.Ledger) -> None:
        owner = customer()
        acc = await open_account(book, owner, funded=1)
        with pytest.raises(InvalidCursor):
            await book.list_transactions(owner, acc.id, cursor=cursor)

    run(db_url, body)


@pytest.mark.parametrize(
    "kw",
    [
        {"limit": 0},
        {"limit": -1},
        {"limit": "10"},
        {"limit": 1.5},
        {"booked_from": 10, "booked_to": 9},
        {"booked_from": "2026-01-01"},
        {"booked_from": -(2**63) - 1},
        {"booked_to": 10**120},
    ],
)
def test_bad_page_queries_are_refused(db_url: str, kw: dict[str, Any]) -> None:
    async def body(db: Database, book: ledger.Ledger) -> None:
        owner = customer()
        acc = await open_account(book, owner, funded=1)
        with pytest.raises(InvalidQuery):
            await book.list_transactions(owner, acc.id, **kw)

    run(db_url, body)


def test_page_size_is_bounded(db_url: str) -> None:
    async def body(db: Database, book: ledger.Ledger) -> None:
        owner, acc = await _history(db, book, ledger.MAX_PAGE_SIZE + 5, 1_780_000_000)
        page = await book.list_transactions(owner, acc.id, limit=10_000)
        assert page is not None and len(page.entries) == ledger.MAX_PAGE_SIZE and page.next_cursor
        page = await book.list_transactions(owner, acc.id)
        assert page is not None and len(page.entries) == ledger.DEFAULT_PAGE_SIZE

    run(db_url, body)


def test_cursor_pages_under_a_concurrent_writer(db_url: str) -> None:
    """Another connection books into the account all the while (new rows, and rows back-dated into
    the range being paged): every row that existed before is still returned exactly once."""

    async def setup(db: Database, book: ledger.Ledger) -> tuple[str, ledger.Account]:
        return await _history(db, book, 60, 1_780_000_000)

    owner, acc = run(db_url, setup)
    stop = threading.Event()
    written = []

    def writer() -> None:
        async def loop() -> None:
            db = Database(db_url)
            try:
                n = 0
                while not stop.is_set():
                    order = ledger.TransferOrder(
                        amount=1,
                        currency="EUR",
                        debtor_iban="GB82WEST12345698765432",
                        debtor_name="Payer",
                        creditor_account_id=acc.id,
                        booked_at=None if n % 2 else 1_780_000_000 + n % 20,
                    )
                    await db.write(lambda c, o=order: ledger.book(c, [o]))
                    written.append(n)
                    n += 1
                    await asyncio.sleep(0.001)
            finally:
                await db.close()

        asyncio.run(loop())

    async def page_through(db: Database, book: ledger.Ledger) -> tuple[list[str], list[ledger.Entry]]:
        first = await book.list_transactions(owner, acc.id, limit=100)
        assert first is not None
        originals = [e.id for e in first.entries]
        thread = threading.Thread(target=writer)
        thread.start()
        try:
            seen: list[ledger.Entry] = []
            cursor = None
            while True:
                page = await book.list_transactions(owner, acc.id, cursor=cursor, limit=5)
                assert page is not None
                seen += page.entries
                await asyncio.sleep(0.005)
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
        finally:
            stop.set()
            thread.join(30)
        return originals, seen

    originals, seen = run(db_url, page_through)
    ids = [e.id for e in seen]
    assert len(written) > 3  # the writer really ran alongside
    assert len(ids) == len(set(ids)) and set(originals) <= set(ids)
    keys = [(e.booked_at, e.id) for e in seen]
    assert keys == sorted(keys, reverse=True)
