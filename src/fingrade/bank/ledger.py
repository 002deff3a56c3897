"""The demo bank's double-entry ledger.

Money moves only through `book` (and its one-order forms `transfer` / `receive_external`): per
order one transfer row and exactly two entries
(a debit and a credit of the same amount) written in the caller's database transaction, so the
entries of every currency sum to zero and every account's balance equals the sum of its entries.
Payments to and from outside the bank are booked against the bank's clearing account of the
currency, so they balance too.

Concurrency (see docs/banking-api.md, "Ledger"): the account rows are locked in id order
(`SELECT … ORDER BY id FOR UPDATE` on PostgreSQL — one global lock order, so two opposite transfers
cannot deadlock; SQLite has one writer at a time, `BEGIN IMMEDIATE`), and every debit is the single
conditional statement `UPDATE … SET balance = balance - :amt WHERE … AND balance - :amt >=
-overdraft_limit RETURNING balance`. The limit is checked by the database on the row it writes, so
no interleaving can overdraw an account; a CHECK constraint on the table backs it up.

The functions take a SQLAlchemy `Connection` inside a write transaction (`Database.write`); the
`Ledger` class at the end is their async facade. Amounts are `int` minor units throughout.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import secrets
import time
from dataclasses import dataclass
from random import Random
from typing import Any

from sqlalchemy import Connection, and_, bindparam, exists, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError

from fingrade.bank.errors import (
    AccountClosed,
    CurrencyMismatch,
    InsufficientFunds,
    InvalidCursor,
    InvalidQuery,
    InvalidText,
    LedgerError,
    SameAccount,
    UnknownAccount,
)
from fingrade.bank.schema import bank_accounts, bank_entries, bank_transfers
from fingrade.finance.iban import make_iban, normalize_iban
from fingrade.finance.money import check_amount, check_currency
from fingrade.protocol.rfc3339 import MAX_EPOCH, MIN_EPOCH
from fingrade.store.sql.db import Database
from fingrade.store.sql.direct import Statement

OPEN = "open"
CLOSED = "closed"
CUSTOMER_KINDS = ("current", "savings")
CLEARING = "clearing"
BOOKED = "booked"

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
MAX_TEXT = 140  # UK OB RemittanceInformation.Unstructured is Max140Text
BANK_CODE = "FING"  # the demo bank's (fictitious) bank code in its IBANs
BANK_NAME = "Fingrade Bank"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# -- values -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    id: str
    owner_user_id: str | None
    kind: str
    iban: str
    name: str
    holder_name: str
    currency: str
    overdraft_limit: int | None  # None: unlimited (the bank's clearing accounts)
    balance: int
    status: str
    created_at: int

    @property
    def available(self) -> int | None:
        """What can be spent now: balance plus the overdraft limit (None if unlimited)."""
        return None if self.overdraft_limit is None else self.balance + self.overdraft_limit


@dataclass(frozen=True)
class Balances:
    account_id: str
    currency: str
    booked: int  # the booked balance: the sum of all booked entries (OB "InterimBooked"/"ClosingBooked")
    available: int  # booked + overdraft limit (OB "InterimAvailable", with the credit line included)
    overdraft_limit: int
    at: int  # epoch seconds at which the balances were read


@dataclass(frozen=True)
class Entry:
    id: str
    transfer_id: str
    account_id: str
    amount: int  # signed: < 0 debit, > 0 credit
    currency: str
    booked_at: int
    value_date: dt.date
    description: str
    counterparty_name: str
    counterparty_iban: str
    balance_after: int

    @property
    def credit_debit(self) -> str:
        return "Credit" if self.amount > 0 else "Debit"


@dataclass(frozen=True)
class Transfer:
    id: str
    kind: str  # internal | outgoing | incoming
    debtor_account_id: str
    creditor_account_id: str
    debtor_iban: str
    debtor_name: str
    creditor_iban: str
    creditor_name: str
    amount: int
    currency: str
    remittance: str
    created_at: int
    status: str
    debtor_balance_after: int | None = None  # set on a freshly booked transfer
    entry_ids: tuple[str, str] | None = None  # (debit, credit), set on a freshly booked transfer


@dataclass(frozen=True)
class TransactionPage:
    entries: list[Entry]
    next_cursor: str | None  # None: this was the last page


# -- helpers ----------------------------------------------------------------------------------


def new_id(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(16)  # 128 random bits


def _now() -> int:
    return int(time.time())


def _date_of(epoch: int) -> dt.date:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).date()


def check_text(value: object, what: str, *, required: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidText(f"{what} must be a string")
    value = value.strip()
    if required and not value:
        raise InvalidText(f"{what} is required")
    if len(value) > MAX_TEXT:
        raise InvalidText(f"{what} is longer than {MAX_TEXT} characters")
    if _CONTROL.search(value):
        raise InvalidText(f"{what} contains control characters")
    return value


def _account_id(value: object) -> str:
    # Anything that cannot be an account id is simply not found (and never reaches PostgreSQL with a NUL).
    if not isinstance(value, str) or not value or len(value) > 64 or "\x00" in value:
        raise UnknownAccount("account not found")
    return value


def _account(row: Any) -> Account:
    """An account from its columns in the table's order (every select here reads the whole row)."""
    return Account(
        id=row[0],
        owner_user_id=row[1],
        kind=row[2],
        iban=row[3],
        name=row[4],
        holder_name=row[5],
        currency=row[6],
        overdraft_limit=row[7],
        balance=row[8],
        status=row[9],
        created_at=row[10],
    )


def _entry(row: Any) -> Entry:
    value_date = row.value_date
    if isinstance(value_date, str):  # pragma: no cover - SQLAlchemy converts; raw drivers may not
        value_date = dt.date.fromisoformat(value_date)
    return Entry(
        id=row.id,
        transfer_id=row.transfer_id,
        account_id=row.account_id,
        amount=row.amount,
        currency=row.currency,
        booked_at=row.booked_at,
        value_date=value_date,
        description=row.description,
        counterparty_name=row.counterparty_name,
        counterparty_iban=row.counterparty_iban,
        balance_after=row.balance_after,
    )


def _transfer(row: Any) -> Transfer:
    return Transfer(
        id=row.id,
        kind=row.kind,
        debtor_account_id=row.debtor_account_id,
        creditor_account_id=row.creditor_account_id,
        debtor_iban=row.debtor_iban,
        debtor_name=row.debtor_name,
        creditor_iban=row.creditor_iban,
        creditor_name=row.creditor_name,
        amount=row.amount,
        currency=row.currency,
        remittance=row.remittance,
        created_at=row.created_at,
        status=row.status,
    )


# -- statements (built once) ------------------------------------------------------------------

_A = bank_accounts.c
_E = bank_entries.c
_ACCOUNT = select(bank_accounts).where(_A.id == bindparam("acct"))
_OWNED_ACCOUNT = select(bank_accounts).where(and_(_A.id == bindparam("acct"), _A.owner_user_id == bindparam("owner")))
# The same read on the driver (store/sql/direct.py): every account API call makes it.
_OWNED_ACCOUNT_DIRECT = Statement(
    "SELECT id, owner_user_id, kind, iban, name, holder_name, currency, overdraft_limit, balance, status, "
    "created_at FROM bank_accounts WHERE id = :acct AND owner_user_id = :owner"
)
_ACCOUNT_BY_IBAN = select(bank_accounts).where(_A.iban == bindparam("iban"))
_OWNED_ACCOUNTS = select(bank_accounts).where(_A.owner_user_id == bindparam("owner")).order_by(_A.created_at, _A.id)
_ACCOUNTS_BY_IBAN = select(_A.id, _A.iban).where(_A.iban.in_(bindparam("ibans", expanding=True)))
# Locks the rows in one global order (ids ascending) on PostgreSQL; SQLite ignores FOR UPDATE and
# serialises writers instead (BEGIN IMMEDIATE).
_LOCK = select(bank_accounts).where(_A.id.in_(bindparam("ids", expanding=True))).order_by(_A.id).with_for_update()
# THE rule: the balance never goes below -overdraft_limit. Checked and written by one statement on
# the locked (and, on PostgreSQL, re-read latest) row version.
_DEBIT = (
    update(bank_accounts)
    .where(
        and_(
            _A.id == bindparam("acct"),
            _A.status == OPEN,
            or_(_A.overdraft_limit.is_(None), _A.balance - bindparam("amt") >= -_A.overdraft_limit),
        )
    )
    .values(balance=_A.balance - bindparam("amt"))
    .returning(_A.balance)
)
_CREDIT = (
    update(bank_accounts)
    .where(and_(_A.id == bindparam("acct"), _A.status == OPEN))
    .values(balance=_A.balance + bindparam("amt"))
    .returning(_A.balance)
)
_INSERT_TRANSFER = insert(bank_transfers)
_INSERT_ENTRY = insert(bank_entries)


# -- accounts ---------------------------------------------------------------------------------


def _bban(currency: str, number: int) -> tuple[str, str]:
    """(country, BBAN) of an account number: GBP accounts get a GB IBAN (bank code, sort code,
    account number), every other currency a Dutch-shaped one (bank code, 10 digits)."""
    if currency == "GBP":
        return "GB", f"{BANK_CODE}{400000 + number // 10**8 % 100000:06d}{number % 10**8:08d}"
    return "NL", f"{BANK_CODE}{number % 10**10:010d}"


def create_account(
    conn: Connection,
    *,
    owner_user_id: str,
    kind: str,
    currency: str,
    name: str,
    holder_name: str,
    overdraft_limit: int = 0,
    now: int | None = None,
    rng: Random | None = None,
) -> Account:
    """Open a customer account with a zero balance and a fresh, valid, unique IBAN. `rng` makes the
    IBAN deterministic (demo data); by default it is drawn from `secrets`."""
    if kind not in CUSTOMER_KINDS:
        raise InvalidQuery(f"account kind must be one of {', '.join(CUSTOMER_KINDS)}")
    currency = check_currency(currency)
    if type(overdraft_limit) is not int or overdraft_limit < 0:
        raise InvalidQuery("overdraft limit must be a non-negative integer of minor units")
    owner_user_id = _account_id(owner_user_id)
    name = check_text(name, "account name", required=True)
    holder_name = check_text(holder_name, "holder name", required=True)
    for _ in range(20):
        # Customer numbers stay below 9·10^9; the 9… range is for clearing accounts.
        number = rng.randrange(9 * 10**9) if rng is not None else secrets.randbelow(9 * 10**9)
        iban = make_iban(*_bban(currency, number))
        if conn.execute(_ACCOUNT_BY_IBAN, {"iban": iban}).first() is None:
            break
    else:  # pragma: no cover - 20 collisions in a space of 9·10^9
        raise RuntimeError("could not allocate an IBAN")
    account = Account(
        id=new_id("acc_"),
        owner_user_id=owner_user_id,
        kind=kind,
        iban=iban,
        name=name,
        holder_name=holder_name,
        currency=currency,
        overdraft_limit=overdraft_limit,
        balance=0,
        status=OPEN,
        created_at=now if now is not None else _now(),
    )
    conn.execute(insert(bank_accounts).values(**account.__dict__))
    return account


def clearing_account_id(currency: str) -> str:
    return f"clearing-{currency}"


def clearing_account(conn: Connection, currency: str, now: int | None = None) -> Account:
    """The bank's settlement account of `currency` (created on first use): the other side of every
    payment to or from another bank. Unlimited overdraft: its balance is the bank's net position."""
    currency = check_currency(currency)
    account_id = clearing_account_id(currency)
    row = conn.execute(_ACCOUNT, {"acct": account_id}).first()
    if row is not None:
        return _account(row)
    country, bban = _bban(currency, 9 * 10**9 + int(currency, 36))
    values = dict(
        id=account_id,
        owner_user_id=None,
        kind=CLEARING,
        iban=make_iban(country, bban),
        name=f"{currency} clearing",
        holder_name=BANK_NAME,
        currency=currency,
        overdraft_limit=None,
        balance=0,
        status=OPEN,
        created_at=now if now is not None else _now(),
    )
    try:
        with conn.begin_nested():
            conn.execute(insert(bank_accounts).values(**values))
    except IntegrityError:
        pass  # created concurrently by another transfer: use that one
    return _account(conn.execute(_ACCOUNT, {"acct": account_id}).one())


def close_account(conn: Connection, account_id: str) -> bool:
    """Close an account: it can no longer send or receive money. Its entries and balance stay."""
    return (
        conn.execute(
            update(bank_accounts)
            .where(and_(_A.id == _account_id(account_id), _A.status == OPEN, _A.kind != CLEARING))
            .values(status=CLOSED)
        ).rowcount
        == 1
    )


# -- transfers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransferOrder:
    """One movement of money, as asked for. Exactly one of `debtor_account_id` (a customer account)
    or `debtor_iban`+`debtor_name` (money arriving from another bank) names the payer; exactly one
    of `creditor_account_id` or `creditor_iban`+`creditor_name` names the payee. A creditor IBAN
    of this bank is booked internally; another bank's goes through the clearing account."""

    amount: int  # minor units, > 0
    currency: str
    remittance: str = ""
    debtor_account_id: str | None = None
    debtor_iban: str | None = None
    debtor_name: str | None = None
    creditor_account_id: str | None = None
    creditor_iban: str | None = None
    creditor_name: str | None = None
    booked_at: int | None = None  # default: now
    value_date: dt.date | None = None  # default: the booking date (UTC)
    transfer_id: str | None = None  # default: a fresh random id


@dataclass
class _Leg:  # an order resolved to two accounts of this bank
    order: TransferOrder
    kind: str
    debtor_id: str
    creditor_id: str
    external: tuple[str, str] | None  # (iban, name) of the party at another bank, if any
    amount: int
    currency: str
    remittance: str


def transfer(
    conn: Connection,
    *,
    debtor_account_id: str,
    amount: int,
    currency: str,
    remittance: str = "",
    creditor_account_id: str | None = None,
    creditor_iban: str | None = None,
    creditor_name: str | None = None,
    now: int | None = None,
    value_date: dt.date | None = None,
    transfer_id: str | None = None,
) -> Transfer:
    """Pay from a customer account to another account of this bank (by id or IBAN) or to another
    bank (by IBAN and name). Raises a LedgerError and writes nothing when refused."""
    if debtor_account_id is None:
        raise UnknownAccount("debtor account not found")
    result = book(
        conn,
        [
            TransferOrder(
                amount=amount,
                currency=currency,
                remittance=remittance,
                debtor_account_id=debtor_account_id,
                creditor_account_id=creditor_account_id,
                creditor_iban=creditor_iban,
                creditor_name=creditor_name,
                booked_at=now,
                value_date=value_date,
                transfer_id=transfer_id,
            )
        ],
    )[0]
    assert isinstance(result, Transfer)
    return result


def receive_external(
    conn: Connection,
    *,
    creditor_account_id: str,
    debtor_iban: str,
    debtor_name: str,
    amount: int,
    currency: str,
    remittance: str = "",
    now: int | None = None,
    value_date: dt.date | None = None,
) -> Transfer:
    """Book a payment that arrived from another bank (a salary, say): the clearing account pays."""
    result = book(
        conn,
        [
            TransferOrder(
                amount=amount,
                currency=currency,
                remittance=remittance,
                debtor_iban=debtor_iban,
                debtor_name=debtor_name,
                creditor_account_id=creditor_account_id,
                booked_at=now,
                value_date=value_date,
            )
        ],
    )[0]
    assert isinstance(result, Transfer)
    return result


def book(conn: Connection, orders: list[TransferOrder], *, skip_refused: bool = False) -> list[Transfer | LedgerError]:
    """Book `orders` in sequence, in the caller's write transaction: the one way money moves.

    Every order is checked completely (amount, currency, texts, IBANs, accounts exist, are open and
    in the order's currency, funds cover it given the orders before it) before anything is
    written. A refused order raises its LedgerError — or, with `skip_refused`, is left out and
    reported in its place in the result — and then nothing of it is written.

    Then the writes: every account's balance moves by its net amount through one conditional
    UPDATE (a debit `WHERE balance - :amt >= -overdraft_limit`), debits before credits, each
    checked to land exactly on the balance computed from the locked rows; then the transfer rows
    and their two entries each. Any failure there raises, and the caller's transaction rolls back
    as a whole. One order or a thousand: the same statements, so seeding many is cheap."""
    results: list[Transfer | LedgerError | None] = [None] * len(orders)
    legs: list[tuple[int, _Leg]] = []
    for i, order in enumerate(orders):
        try:
            legs.append((i, _resolve_static(order)))
        except LedgerError as exc:
            if not skip_refused:
                raise
            results[i] = exc
    _resolve_ibans(conn, [leg for _, leg in legs])
    rows = _lock(conn, {a for _, leg in legs for a in (leg.debtor_id, leg.creditor_id)}, legs)
    running = {a: r.balance for a, r in rows.items()}
    accepted: list[tuple[int, _Leg, int, int]] = []  # (index, leg, debtor balance after, creditor balance after)
    for i, leg in legs:
        try:
            _check_leg(leg, rows, running)
        except LedgerError as exc:
            if not skip_refused:
                raise
            results[i] = exc
            continue
        running[leg.debtor_id] -= leg.amount
        running[leg.creditor_id] += leg.amount
        accepted.append((i, leg, running[leg.debtor_id], running[leg.creditor_id]))
    if not accepted:
        return [r for r in results if r is not None]
    # -- writes: nothing has been written up to here -----------------------------------------
    delta: dict[str, int] = {}
    for _, leg, _, _ in accepted:
        delta[leg.debtor_id] = delta.get(leg.debtor_id, 0) - leg.amount
        delta[leg.creditor_id] = delta.get(leg.creditor_id, 0) + leg.amount
    for account_id in sorted(delta, key=lambda a: (delta[a] >= 0, a)):  # debits first, then by id
        d = delta[account_id]
        if d < 0:
            after = conn.execute(_DEBIT, {"acct": account_id, "amt": -d}).scalar()
            if after is None:
                raise InsufficientFunds("the debtor account's balance and overdraft limit do not cover the amount")
        elif d > 0:
            after = conn.execute(_CREDIT, {"acct": account_id, "amt": d}).scalar()
        else:
            continue
        if after != running[account_id]:  # pragma: no cover - the rows are locked (or SQLite's writer lock held)
            raise RuntimeError(f"account {account_id} changed under its lock")
    transfer_rows, entry_rows = [], []
    for i, leg, debtor_after, creditor_after in accepted:
        t = _transfer_of(leg, rows, debtor_after)
        results[i] = t
        transfer_rows.append(
            dict(
                id=t.id,
                kind=t.kind,
                debtor_account_id=t.debtor_account_id,
                creditor_account_id=t.creditor_account_id,
                debtor_iban=t.debtor_iban,
                debtor_name=t.debtor_name,
                creditor_iban=t.creditor_iban,
                creditor_name=t.creditor_name,
                amount=t.amount,
                currency=t.currency,
                remittance=t.remittance,
                created_at=t.created_at,
                status=t.status,
            )
        )
        vdate = leg.order.value_date or _date_of(t.created_at)
        assert t.entry_ids is not None
        common = dict(
            transfer_id=t.id, currency=t.currency, booked_at=t.created_at, value_date=vdate, description=t.remittance
        )
        entry_rows.append(
            dict(
                common,
                id=t.entry_ids[0],
                account_id=t.debtor_account_id,
                amount=-t.amount,
                counterparty_name=t.creditor_name,
                counterparty_iban=t.creditor_iban,
                balance_after=debtor_after,
            )
        )
        entry_rows.append(
            dict(
                common,
                id=t.entry_ids[1],
                account_id=t.creditor_account_id,
                amount=t.amount,
                counterparty_name=t.debtor_name,
                counterparty_iban=t.debtor_iban,
                balance_after=creditor_after,
            )
        )
    conn.execute(_INSERT_TRANSFER, transfer_rows)
    conn.execute(_INSERT_ENTRY, entry_rows)
    return [r for r in results if r is not None]


def _resolve_static(order: TransferOrder) -> _Leg:
    """Everything that can be checked without the database."""
    amount = check_amount(order.amount)
    currency = check_currency(order.currency)
    remittance = check_text(order.remittance, "remittance information")
    if order.booked_at is not None and type(order.booked_at) is not int:
        raise InvalidQuery("booking time must be epoch seconds")
    if order.debtor_account_id is not None:
        debtor_id, external = _account_id(order.debtor_account_id), None
        kind = "internal"
    elif order.debtor_iban is not None:
        debtor_id = clearing_account_id(currency)
        external = (
            normalize_iban(order.debtor_iban),
            check_text(order.debtor_name or "", "debtor name", required=True),
        )
        kind = "incoming"
    else:
        raise UnknownAccount("debtor account not found")
    if order.creditor_account_id is not None:
        creditor_id = _account_id(order.creditor_account_id)
    elif order.creditor_iban is not None and kind != "incoming":
        # resolved by _resolve_ibans: one of ours, or another bank's through clearing
        creditor_id = ""
        external = (
            normalize_iban(order.creditor_iban),
            check_text(order.creditor_name or "", "creditor name", required=True),
        )
        kind = "outgoing"
    else:
        raise UnknownAccount("creditor account not found")
    return _Leg(
        order=order,
        kind=kind,
        debtor_id=debtor_id,
        creditor_id=creditor_id,
        external=external,
        amount=amount,
        currency=currency,
        remittance=remittance,
    )


def _resolve_ibans(conn: Connection, legs: list[_Leg]) -> None:
    """Creditor IBANs: one of this bank's accounts is paid internally, any other through clearing."""
    ibans = sorted({leg.external[0] for leg in legs if leg.kind == "outgoing" and leg.external})
    ours = {r.iban: r for r in conn.execute(_ACCOUNTS_BY_IBAN, {"ibans": ibans})} if ibans else {}
    for leg in legs:
        if leg.kind != "outgoing" or leg.external is None:
            continue
        own = ours.get(leg.external[0])
        if own is None:
            leg.creditor_id = clearing_account_id(leg.currency)
        else:  # a clearing account's IBAN is not payable: _check_leg refuses it as unknown
            leg.creditor_id, leg.kind, leg.external = own.id, "internal", None


def _lock(conn: Connection, ids: set[str], legs: list[tuple[int, _Leg]]) -> dict[str, Any]:
    """Lock the rows (ids ascending: one global order, so concurrent bookings cannot deadlock) and
    read their latest committed balances; the first use of a currency creates its clearing account."""
    if not ids:
        return {}
    rows = {r.id: r for r in conn.execute(_LOCK, {"ids": sorted(ids)})}
    missing = {leg.currency for _, leg in legs if clearing_account_id(leg.currency) in ids - rows.keys()}
    if missing:
        for currency in sorted(missing):
            clearing_account(conn, currency)
        rows = {r.id: r for r in conn.execute(_LOCK, {"ids": sorted(ids)})}
    return rows


def _check_leg(leg: _Leg, rows: dict[str, Any], running: dict[str, int]) -> None:
    if leg.debtor_id == leg.creditor_id:
        raise SameAccount("debtor and creditor account are the same")
    debtor, creditor = rows.get(leg.debtor_id), rows.get(leg.creditor_id)
    if debtor is None or (leg.kind != "incoming" and debtor.kind == CLEARING):
        raise UnknownAccount("debtor account not found")
    if creditor is None or (leg.kind != "outgoing" and creditor.kind == CLEARING):
        raise UnknownAccount("creditor account not found")
    if debtor.status != OPEN:
        raise AccountClosed("debtor account is closed")
    if creditor.status != OPEN:
        raise AccountClosed("creditor account is closed")
    if debtor.currency != leg.currency:
        raise CurrencyMismatch(f"debtor account is held in {debtor.currency}, not {leg.currency}")
    if creditor.currency != leg.currency:
        raise CurrencyMismatch(f"creditor account is held in {creditor.currency}, not {leg.currency}")
    if debtor.overdraft_limit is not None and running[leg.debtor_id] - leg.amount < -debtor.overdraft_limit:
        raise InsufficientFunds("the debtor account's balance and overdraft limit do not cover the amount")


def _transfer_of(leg: _Leg, rows: dict[str, Any], debtor_after: int) -> Transfer:
    debtor, creditor = rows[leg.debtor_id], rows[leg.creditor_id]
    debtor_iban, debtor_name = (
        leg.external if leg.kind == "incoming" and leg.external else (debtor.iban, debtor.holder_name)
    )
    creditor_iban, creditor_name = (
        leg.external if leg.kind == "outgoing" and leg.external else (creditor.iban, creditor.holder_name)
    )
    booked_at = leg.order.booked_at if leg.order.booked_at is not None else _now()
    return Transfer(
        id=leg.order.transfer_id or new_id("trf_"),
        kind=leg.kind,
        debtor_account_id=leg.debtor_id,
        creditor_account_id=leg.creditor_id,
        debtor_iban=debtor_iban,
        debtor_name=debtor_name,
        creditor_iban=creditor_iban,
        creditor_name=creditor_name,
        amount=leg.amount,
        currency=leg.currency,
        remittance=leg.remittance,
        created_at=booked_at,
        status=BOOKED,
        debtor_balance_after=debtor_after,
        entry_ids=(new_id("txn_"), new_id("txn_")),
    )


def get_transfer(conn: Connection, transfer_id: str) -> Transfer | None:
    if not isinstance(transfer_id, str) or "\x00" in transfer_id or len(transfer_id) > 64:
        return None
    row = conn.execute(select(bank_transfers).where(bank_transfers.c.id == transfer_id)).first()
    return _transfer(row) if row else None


# -- queries for the account-information API --------------------------------------------------
# Every query names the customer: an account of somebody else is indistinguishable from one that
# does not exist (None), so ids cannot be probed.


def list_accounts(conn: Connection, owner_user_id: str) -> list[Account]:
    if not isinstance(owner_user_id, str) or "\x00" in owner_user_id:
        return []
    return [_account(r) for r in conn.execute(_OWNED_ACCOUNTS, {"owner": owner_user_id})]


def _lookup_ids(*ids: Any) -> bool:
    """Ids that can be looked up: strings of our length, without NUL (PostgreSQL text cannot hold one)."""
    return all(isinstance(v, str) and "\x00" not in v and len(v) <= 64 for v in ids)


def get_account(conn: Connection, owner_user_id: str, account_id: str) -> Account | None:
    if not _lookup_ids(owner_user_id, account_id):
        return None
    row = conn.execute(_OWNED_ACCOUNT, {"acct": account_id, "owner": owner_user_id}).first()
    return _account(row) if row else None


def get_balances(conn: Connection, owner_user_id: str, account_id: str, now: int | None = None) -> Balances | None:
    return balances_of(get_account(conn, owner_user_id, account_id), now)


def balances_of(account: Account | None, now: int | None = None) -> Balances | None:
    if account is None:
        return None
    limit = account.overdraft_limit or 0
    return Balances(
        account_id=account.id,
        currency=account.currency,
        booked=account.balance,
        available=account.balance + limit,
        overdraft_limit=limit,
        at=now if now is not None else _now(),
    )


# A cursor is base64url (no padding) of "<booked_at>.<entry id>": ASCII digits of an epoch second
# within the range any booking can have, and an id of ours. Anything else is InvalidCursor, so no
# value out of a column's range (SQLite and PostgreSQL integers are 64-bit) reaches a query.
_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,200}", re.ASCII)
_CURSOR_KEY = re.compile(r"(0|[1-9][0-9]{0,11})\.([A-Za-z0-9_-]{1,64})", re.ASCII)


def encode_cursor(booked_at: int, entry_id: str) -> str:
    return base64.urlsafe_b64encode(f"{booked_at}.{entry_id}".encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        if not isinstance(cursor, str) or not _CURSOR.fullmatch(cursor):
            raise ValueError
        key = _CURSOR_KEY.fullmatch(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii"))
        if key is None or int(key.group(1)) > MAX_EPOCH:
            raise ValueError
        return int(key.group(1)), key.group(2)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidCursor("the page cursor is not valid") from None


def list_transactions(
    conn: Connection,
    owner_user_id: str,
    account_id: str,
    *,
    booked_from: int | None = None,
    booked_to: int | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
) -> TransactionPage | None:
    """One page of an account's entries, newest first, booked within [booked_from, booked_to]
    (epoch seconds, both inclusive, either open). None if the customer does not own the account.

    Keyset pagination on (booked_at, id): a page continues strictly after the last row of the
    previous one, so rows booked meanwhile never shift, repeat or hide the rows still to come
    (new bookings are newer than the cursor and show up when the client starts again)."""
    if type(limit) is not int or limit < 1:
        raise InvalidQuery("page size must be a positive integer")
    limit = min(limit, MAX_PAGE_SIZE)
    for bound in (booked_from, booked_to):
        if bound is not None and (type(bound) is not int or not MIN_EPOCH <= bound <= MAX_EPOCH):
            raise InvalidQuery("date range bounds must be epoch seconds of years 1 to 9999")
    if booked_from is not None and booked_to is not None and booked_from > booked_to:
        raise InvalidQuery("the date range ends before it starts")
    after = decode_cursor(cursor) if cursor is not None else None
    if get_account(conn, owner_user_id, account_id) is None:
        return None
    q = select(bank_entries).where(_E.account_id == account_id)
    if booked_from is not None:
        q = q.where(_E.booked_at >= booked_from)
    if booked_to is not None:
        q = q.where(_E.booked_at <= booked_to)
    if after is not None:
        q = q.where(or_(_E.booked_at < after[0], and_(_E.booked_at == after[0], _E.id < after[1])))
    rows = conn.execute(q.order_by(_E.booked_at.desc(), _E.id.desc()).limit(limit + 1)).all()
    entries = [_entry(r) for r in rows[:limit]]
    more = len(rows) > limit
    return TransactionPage(
        entries=entries, next_cursor=encode_cursor(entries[-1].booked_at, entries[-1].id) if more else None
    )


# -- invariants -------------------------------------------------------------------------------


def check_ledger(conn: Connection) -> list[str]:
    """Every way the books could be wrong, as messages; [] when they are right:
    each account's balance equals the sum of its entries; the entries of each currency sum to
    zero; each transfer has exactly one debit and one credit of its amount, in its currency, in
    accounts of that currency; no account is below its overdraft limit."""
    problems = []
    sums = (
        select(_E.account_id, func.coalesce(func.sum(_E.amount), 0).label("total")).group_by(_E.account_id).subquery()
    )
    for r in conn.execute(
        select(_A.id, _A.balance, _A.overdraft_limit, _A.currency, sums.c.total).select_from(
            bank_accounts.outerjoin(sums, sums.c.account_id == _A.id)
        )
    ):
        total = r.total or 0
        if r.balance != total:
            problems.append(f"account {r.id}: balance {r.balance} != sum of entries {total}")
        if r.overdraft_limit is not None and r.balance < -r.overdraft_limit:
            problems.append(f"account {r.id}: balance {r.balance} below -{r.overdraft_limit}")
    for r in conn.execute(select(_E.currency, func.sum(_E.amount).label("total")).group_by(_E.currency)):
        if r.total != 0:
            problems.append(f"currency {r.currency}: entries sum to {r.total}, not 0")
    t = bank_transfers.c
    per_transfer = (
        select(
            t.id,
            t.amount,
            func.count(_E.id).label("n"),
            func.coalesce(func.sum(_E.amount), 0).label("total"),
            func.min(_E.amount).label("lo"),
            func.max(_E.amount).label("hi"),
        )
        .select_from(bank_transfers.outerjoin(bank_entries, _E.transfer_id == t.id))
        .group_by(t.id, t.amount)
    )
    for r in conn.execute(per_transfer):
        if r.n != 2 or r.total != 0 or r.lo != -r.amount or r.hi != r.amount:
            problems.append(f"transfer {r.id}: {r.n} entries summing to {r.total}, expected -{r.amount}/+{r.amount}")
    mismatched = (
        select(_E.id)
        .select_from(
            bank_entries.join(bank_accounts, _A.id == _E.account_id).join(bank_transfers, t.id == _E.transfer_id)
        )
        .where(or_(_E.currency != _A.currency, _E.currency != t.currency))
    )
    for r in conn.execute(mismatched):
        problems.append(f"entry {r.id}: currency differs from its account or transfer")
    return problems


def lock_for_seeding(conn: Connection) -> None:
    """Serialise demo seeding between nodes that start at once (PostgreSQL; SQLite's BEGIN IMMEDIATE
    already does)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": 0x42414E4B})  # "BANK"


def has_accounts(conn: Connection, owner_user_id: str) -> bool:
    return bool(conn.execute(select(exists().where(_A.owner_user_id == owner_user_id))).scalar())


# -- async facade -----------------------------------------------------------------------------


class Ledger:
    """The ledger over a `Database`: each method is one transaction (writes) or one read."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_account(self, **kw: Any) -> Account:
        return await self.db.write(lambda conn: create_account(conn, **kw))

    async def close_account(self, account_id: str) -> bool:
        return await self.db.write(close_account, account_id)

    async def transfer(self, **kw: Any) -> Transfer:
        return await self.db.write(lambda conn: transfer(conn, **kw))

    async def receive_external(self, **kw: Any) -> Transfer:
        return await self.db.write(lambda conn: receive_external(conn, **kw))

    async def get_transfer(self, transfer_id: str) -> Transfer | None:
        return await self.db.read(get_transfer, transfer_id)

    async def list_accounts(self, owner_user_id: str) -> list[Account]:
        return await self.db.read(list_accounts, owner_user_id)

    async def get_account(self, owner_user_id: str, account_id: str) -> Account | None:
        if not _lookup_ids(owner_user_id, account_id):
            return None
        row = await self.db.direct.one(_OWNED_ACCOUNT_DIRECT, acct=account_id, owner=owner_user_id)
        return _account(row) if row else None

    async def get_balances(self, owner_user_id: str, account_id: str) -> Balances | None:
        return balances_of(await self.get_account(owner_user_id, account_id))

    async def list_transactions(self, owner_user_id: str, account_id: str, **kw: Any) -> TransactionPage | None:
        return await self.db.read(lambda conn: list_transactions(conn, owner_user_id, account_id, **kw))

    async def check(self) -> list[str]:
        return await self.db.read(check_ledger)
