"""The double-entry ledger, on SQLite and PostgreSQL: a transfer writes one
transfer row and two entries summing to zero; refused transfers write nothing; a failure mid-way
leaves nothing behind; the invariant checker catches books that do not balance."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from bank_helpers import balance, customer, open_account, run
from sqlalchemy import event, func, select, text, update
from sqlalchemy.exc import IntegrityError

from fingrade.bank import ledger
from fingrade.bank.errors import (
    AccountClosed,
    CurrencyMismatch,
    InsufficientFunds,
    InvalidAmount,
    InvalidIban,
    InvalidText,
    LedgerError,
    SameAccount,
    UnknownAccount,
    UnsupportedCurrency,
)
from fingrade.bank.schema import bank_accounts, bank_entries, bank_transfers
from fingrade.store.sql.db import Database

pytestmark = pytest.mark.bank


async def _counts(db: Database) -> tuple[int, int]:
    def q(conn: Any) -> tuple[int, int]:
        return (
            conn.execute(select(func.count()).select_from(bank_transfers)).scalar(),
            conn.execute(select(func.count()).select_from(bank_entries)).scalar(),
        )

    return await db.read(q)


async def _entries_of(db: Database, transfer_id: str) -> list[Any]:
    def q(conn: Any) -> list[Any]:
        return list(
            conn.execute(
                select(bank_entries).where(bank_entries.c.transfer_id == transfer_id).order_by(bank_entries.c.amount)
            )
        )

    return await db.read(q)


def test_transfer_writes_two_entries_that_sum_to_zero(db_url: str) -> None:
    async def body(db: Database, book: ledger.Ledger) -> None:
        alice, bob = customer(), customer()
        a = await open_account(book, alice, funded=100_000, holder="Alice A")
        b = await open_account(book, bob, holder="Bob B")
        t = await book.transfer(
            debtor_account_id=a.id,
            creditor_account_id=b.id,
            amount=2_550,
            currency="EUR",
            remittance="Dinner",
            now=1_790_000_000,
        )
        assert (t.kind, t.amount, t.currency, t.status, t.debtor_balance_after) == (
            "internal",
            2550,
            "EUR",
            "booked",
            97_450,
        )
        assert (t.debtor_iban, t.debtor_name, t.creditor_iban, t.creditor_name) == (a.iban, "Alice A", b.iban, "Bob B")
        assert await balance(book, a) == 97_450 and await balance(book, b) == 2_550
        debit, credit = await _entries_of(db, t.id)
        assert (debit.account_id, debit.amount, debit.balance_after) == (a.id, -2550, 97_450)
        assert (credit.account_id, credit.amount, credit.balance_after) == (b.id, 2550, 2550)
        assert (debit.counterparty_iban, debit.counterparty_name) == (b.iban, "Bob B")
        assert (credit.counterparty_iban, credit.counterparty_name) == (a.iban, "Alice A")
        assert debit.booked_at == credit.booked_at == 1_790_000_000
        assert debit.value_date == dt.date(2026, 9, 21) and debit.description == "Dinner"
        assert {debit.id, credit.id} == set(t.entry_ids or ())
        stored = await book.get_transfer(t.id)
        assert stored is not None and stored.amount == 2550 and stored.creditor_account_id == b.id
        assert await book.check() == []

    run(db_url, body)


def test_overdraft_may_be_used_exactly_to_its_limit(db_url: str) -> None:
    async def body(db: Database, book: ledger.Ledger) -> None:
        owner = customer()
        a = await open_account(book, owner, funded=1_000, overdraft=500)
        b = await open_account(book, customer())
        bal = await book.get_balances(owner, a.id)
        assert bal is not None and (bal.booked, bal.available, bal.overdraft_limit) == (1_000, 1_500, 500)
        await book.transfer(debtor_account_id=a.id, creditor_account_id=b.id, amount=1_500, currency="EUR")
        assert await balance(book, a) == -500
        with pytest.raises(InsufficientFunds):
            await book.transfer(debtor_account_id=a.id, creditor_account_id=b.id, amount=1, currency="EUR")
        bal = await book.get_balances(owner, a.id)
        assert bal is not None and (bal.booked, bal.available) == (-500, 0)
        assert await book.check() == []

    run(db_url, body)


def test_payments_to_other_banks_balance_through_the_clearing_account(db_url: str) -> None:
    async def body(db: Database, book: ledger.Ledger) -> None:
        a = await open_account(book, customer(), funded=10_000, holder="Alice A")
        b = await open_account(book, customer(), holder="Bob B")
        out = await book.transfer(
            debtor_account_id=a.id,
            creditor_iban="gb82 west 1234 5698 7654 32",
            creditor_name="Shop Ltd",
            amount=1_000,
            currency="EUR",
        )
        assert out.kind == "outgoing" and out.creditor_account_id == "clearing-EUR"
        assert (out.creditor_iban, out.creditor_name) == ("GB82WEST12345698765432", "Shop Ltd")
        debit, credit = await _entries_of(db, out.id)
        assert debit.counterparty_iban == "GB82WEST12345698765432" and credit.account_id == "clearing-EUR"
        # An IBAN of this bank is booked internally, to that account.
        mine = await book.transfer(
            debtor_account_id=a.id, creditor_iban=b.iban, creditor_name="B", amount=500, currency="EUR"
        )
        assert mine.kind == "internal" and mine.creditor_account_id == b.id and await balance(book, b) == 500
        assert await balance(book, a) == 8_500
        assert await book.check() == []

    run(db_url, body)


REFUSALS: dict[str, tuple[type[LedgerError], dict[str, Any]]] = {
    "zero amount": (InvalidAmount, {"amount": 0}),
    "negative amount": (InvalidAmount, {"amount": -100}),
    "float amount": (InvalidAmount, {"amount": 10.0}),
    "string amount": (InvalidAmount, {"amount": "10.00"}),
    "bool amount": (InvalidAmount, {"amount": True}),
    "huge amount": (InvalidAmount, {"amount": 10**18}),
    "unsupported currency": (UnsupportedCurrency, {"currency": "XXX"}),
    "currency mismatch": (CurrencyMismatch, {"currency": "GBP"}),
    "creditor in another currency": (CurrencyMismatch, {"creditor": "gbp"}),
    "unknown debtor": (UnknownAccount, {"debtor": "acc_nope"}),
    "NUL debtor id": (UnknownAccount, {"debtor": "acc_\x00"}),
    "unknown creditor": (UnknownAccount, {"creditor": "acc_nope"}),
    "no creditor": (UnknownAccount, {"creditor": None}),
    "closed debtor": (AccountClosed, {"debtor": "closed"}),
    "closed creditor": (AccountClosed, {"creditor": "closed"}),
    "same account": (SameAccount, {"creditor": "debtor"}),
    "insufficient funds": (InsufficientFunds, {"amount": 10_001}),
    "clearing account as debtor": (UnknownAccount, {"debtor": "clearing-EUR"}),
    "clearing account as creditor": (UnknownAccount, {"creditor": "clearing-EUR"}),
    "clearing account's IBAN as creditor": (UnknownAccount, {"creditor_iban": "clearing"}),
    "invalid creditor IBAN": (InvalidIban, {"creditor_iban": "GB83WEST12345698765432"}),
    "creditor IBAN without a name": (InvalidText, {"creditor_iban": "GB82WEST12345698765432", "creditor_name": ""}),
    "control character in remittance": (InvalidText, {"remittance": "hi\nthere"}),
    "remittance too long": (InvalidText, {"remittance": "x" * 141}),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refused_transfers_write_nothing(db_url: str, case: str) -> None:
    error, change = REFUSALS[case]

    async def body(db: Database, book: ledger.Ledger) -> None:
        owner = customer()
        a = await open_account(book, owner, funded=10_000)
        b = await open_account(book, customer(), funded=1)
        gbp = await open_account(book, customer(), currency="GBP")
        closed = await open_account(book, customer(), funded=1)
        assert await book.close_account(closed.id)
        clearing = await db.read(lambda c: ledger.clearing_account(c, "EUR"))
        names = {"debtor": a.id, "gbp": gbp.id, "closed": closed.id, "clearing": clearing.iban}
        kw: dict[str, Any] = dict(
            debtor_account_id=a.id, creditor_account_id=b.id, amount=100, currency="EUR", remittance="test"
        )
        for key, value in change.items():
            value = names.get(value, value) if isinstance(value, str) else value
            if key == "debtor":
                kw["debtor_account_id"] = value
            elif key == "creditor":
                kw["creditor_account_id"] = value
            elif key == "creditor_iban":
                kw.pop("creditor_account_id")
                kw["creditor_iban"] = value
                kw.setdefault("creditor_name", "Someone")
            else:
                kw[key] = value
        before = (await _counts(db), await balance(book, a), await balance(book, b))
        with pytest.raises(error):
            await book.transfer(**kw)
        assert (await _counts(db), await balance(book, a), await balance(book, b)) == before
        assert await book.check() == []

    run(db_url, body)


@pytest.mark.parametrize(
    "fail_at", ["second UPDATE bank_accounts", "INSERT INTO bank_transfers", "INSERT INTO bank_entries"]
)
def test_a_failure_mid_way_leaves_nothing_behind(db_url: str, fail_at: str) -> None:
    """The database fails after the debit has been written: the whole transfer is rolled back."""

    async def body(db: Database, book: ledger.Ledger) -> None:
        a = await open_account(book, customer(), funded=10_000)
        b = await open_account(book, customer())
        before = (await _counts(db), await balance(book, a), await balance(book, b))
        engine = db.engine if db.engine is not None else db.async_engine.sync_engine  # type: ignore[union-attr]
        seen = {"updates": 0}

        def fail(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if statement.startswith("UPDATE bank_accounts"):
                seen["updates"] += 1
            if (fail_at == "second UPDATE bank_accounts" and seen["updates"] == 2) or statement.startswith(fail_at):
                raise RuntimeError("simulated failure")

        event.listen(engine, "before_cursor_execute", fail)
        try:
            with pytest.raises(Exception, match="simulated failure"):
                await book.transfer(debtor_account_id=a.id, creditor_account_id=b.id, amount=700, currency="EUR")
        finally:
            event.remove(engine, "before_cursor_execute", fail)
        assert seen["updates"] >= 1  # the debit had been executed
        assert (await _counts(db), await balance(book, a), await balance(book, b)) == before
        await book.transfer(debtor_account_id=a.id, creditor_account_id=b.id, amount=700, currency="EUR")
        assert await balance(book, a) == 9_300
        assert await book.check() == []

    run(db_url, body)


def test_book_checks_every_order_before_writing_any(db_url: str) -> None:
    """A batch whose third order is refused writes nothing; with skip_refused, only that one is left out."""

    async def body(db: Database, book: ledger.Ledger) -> None:
        a = await open_account(book, customer(), funded=1_000)
        b = await open_account(book, customer())
        orders = [
            ledger.TransferOrder(amount=400, currency="EUR", debtor_account_id=a.id, creditor_account_id=b.id)
            for _ in range(3)
        ]
        before = await _counts(db)
        with pytest.raises(InsufficientFunds):
            await db.write(lambda c: ledger.book(c, orders))
        assert await _counts(db) == before and await balance(book, a) == 1_000
        results = await db.write(lambda c: ledger.book(c, orders, skip_refused=True))
        assert [type(r) for r in results] == [ledger.Transfer, ledger.Transfer, InsufficientFunds]
        assert await balance(book, a) == 200 and await balance(book, b) == 800
        assert await book.check() == []

    run(db_url, body)


def test_check_ledger_finds_books_that_do_not_balance(fresh_db_url: str) -> None:
    """The checker the other tests rely on can fail: a balance changed behind the ledger's back, an
    entry without its counterpart, and the CHECK constraint on the overdraft limit."""

    async def body(db: Database, book: ledger.Ledger) -> None:
        a = await open_account(book, customer(), funded=1_000)
        assert await book.check() == []

        def tamper(conn: Any) -> None:
            conn.execute(update(bank_accounts).where(bank_accounts.c.id == a.id).values(balance=1_001))

        await db.write(tamper)
        problems = await book.check()
        assert any(a.id in p and "sum of entries" in p for p in problems)

        def restore(conn: Any) -> None:
            conn.execute(update(bank_accounts).where(bank_accounts.c.id == a.id).values(balance=1_000))

        await db.write(restore)
        t = await book.transfer(
            debtor_account_id=a.id, creditor_iban="DE89370400440532013000", creditor_name="X", amount=10, currency="EUR"
        )

        def drop_one_entry(conn: Any) -> None:
            conn.execute(text("DELETE FROM bank_entries WHERE transfer_id = :t AND amount > 0"), {"t": t.id})

        await db.write(drop_one_entry)
        problems = await book.check()
        assert any(t.id in p for p in problems) and any("currency EUR" in p for p in problems)

        def overdraw(conn: Any) -> None:
            conn.execute(update(bank_accounts).where(bank_accounts.c.id == a.id).values(balance=-1))

        with pytest.raises(IntegrityError):
            await db.write(overdraw)

    run(fresh_db_url, body)
