"""Demo ledger for `fingrade serve --demo`: accounts for alice and bob with about three months of
plausible bookings, generated from a seeded RNG (the same story on every fresh start, dated up to
today) and booked through `ledger.book`, the function every transfer goes through, so the ledger's
invariants hold for the demo data as for any other. One transaction; idempotent (nothing is added when alice
already has accounts); serialised between nodes starting at once."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from random import Random
from typing import Any

from sqlalchemy import Connection

from fingrade.bank import ledger
from fingrade.finance.iban import make_iban
from fingrade.store.sql.db import Database

SEED = 4  # fixed, so the demo ledger is the same on every start
DAYS = 92


def _ext(country: str, bban: str) -> str:
    return make_iban(country, bban)


# Counterparties at other (fictitious) banks, with valid IBANs.
EMPLOYER_A = ("ACME Robotics GmbH", _ext("DE", "100100101234567890"))
EMPLOYER_B = ("Nordlicht Logistik BV", _ext("NL", "ABNA0417164300"))
LANDLORD_A = ("Hausverwaltung Kranich", _ext("DE", "200400600012345678"))
LANDLORD_B = ("Woonstichting De Linde", _ext("NL", "RABO0123456789"))
UTILITIES = [
    ("Stadtwerke Energie", _ext("DE", "300500000001122334"), 6400),
    ("Telco Mobile", _ext("NL", "INGB0001234567"), 1999),
    ("StreamFlix", _ext("IE", "AIBK93115212345678"), 1299),
]
GROCERS = [
    ("REWE Markt", _ext("DE", "370400440532013000")),
    ("Albert Heijn", _ext("NL", "ABNA0123456789")),
    ("Lidl", _ext("DE", "600501010002345678")),
    ("Aldi Nord", _ext("DE", "440400370123456789")),
]
SHOPS = [
    ("Cafe Kauri", _ext("NL", "TRIO0212345678")),
    ("Boekhandel Pantheon", _ext("NL", "SNSB0912345678")),
    ("Apotheke am Markt", _ext("DE", "120300000001234567")),
    ("Deutsche Bahn", _ext("DE", "500105175407324931")),
    ("Kino Delphi", _ext("DE", "100700000009876543")),
    ("Online Shop EU", _ext("LU", "0019400644750000")),
]
UK_SHOPS = [
    ("The Crown & Anchor", _ext("GB", "NWBK60161331926819")),
    ("Tesco Metro", _ext("GB", "BARC20000055779911")),
    ("Transport for London", _ext("GB", "LOYD30963112345678")),
]
UK_EMPLOYER = ("Thames Consulting Ltd", _ext("GB", "HBUK40127612345678"))


@dataclass
class _Booking:
    at: int
    kind: str  # "in" | "out" | "internal"
    account: str
    amount: int
    currency: str
    remittance: str
    party: tuple[str, str] | None = None  # (name, iban) outside the bank
    to_account: str | None = None


def _plan(rng: Random, start: dt.date, days: int, acc: dict[str, str], now: int) -> list[_Booking]:
    out: list[_Booking] = []

    def at(day: dt.date, lo: int = 7, hi: int = 21) -> int:
        base = int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp())
        return base + rng.randrange(lo * 3600, hi * 3600)

    first = start
    out.append(
        _Booking(
            at(first, 7, 8),
            "in",
            acc["alice_current"],
            240000,
            "EUR",
            "Opening balance",
            ("Alice Andersen", _ext("DE", "370400440532099999")),
        )
    )
    out.append(
        _Booking(
            at(first, 7, 8),
            "in",
            acc["alice_savings"],
            1250000,
            "EUR",
            "Opening balance",
            ("Alice Andersen", _ext("DE", "370400440532099999")),
        )
    )
    out.append(
        _Booking(
            at(first, 7, 8),
            "in",
            acc["bob_current"],
            160000,
            "EUR",
            "Opening balance",
            ("Bob Berg", _ext("NL", "RABO0300065264")),
        )
    )
    out.append(
        _Booking(
            at(first, 7, 8),
            "in",
            acc["bob_gbp"],
            85000,
            "GBP",
            "Opening balance",
            ("Bob Berg", _ext("GB", "NWBK60161331926800")),
        )
    )
    for n in range(1, days + 1):
        day = start + dt.timedelta(days=n)
        month = day.strftime("%B %Y")
        if day.day == 25:
            out.append(
                _Booking(
                    at(day, 6, 7),
                    "in",
                    acc["alice_current"],
                    385000 + rng.randrange(0, 4) * 2500,
                    "EUR",
                    f"Salary {month}",
                    EMPLOYER_A,
                )
            )
            out.append(_Booking(at(day, 6, 7), "in", acc["bob_current"], 312000, "EUR", f"Salary {month}", EMPLOYER_B))
            out.append(
                _Booking(at(day, 6, 7), "in", acc["bob_gbp"], 45000, "GBP", f"Consulting fee {month}", UK_EMPLOYER)
            )
        if day.day == 26:
            out.append(
                _Booking(
                    at(day, 8, 9),
                    "internal",
                    acc["alice_current"],
                    30000,
                    "EUR",
                    "Monthly savings",
                    to_account=acc["alice_savings"],
                )
            )
        if day.day == 1:
            out.append(_Booking(at(day, 8, 9), "out", acc["alice_current"], 115000, "EUR", f"Rent {month}", LANDLORD_A))
            out.append(_Booking(at(day, 8, 9), "out", acc["bob_current"], 89000, "EUR", f"Huur {month}", LANDLORD_B))
            out.append(
                _Booking(
                    at(day, 0, 1),
                    "in",
                    acc["alice_savings"],
                    1800 + rng.randrange(0, 200),
                    "EUR",
                    "Interest",
                    (ledger.BANK_NAME, _ext("NL", "FING9999999999")),
                )
            )
            for name, iban, amount in UTILITIES:
                who = "alice_current" if name != "Telco Mobile" else "bob_current"
                out.append(_Booking(at(day, 9, 12), "out", acc[who], amount, "EUR", f"{name} {month}", (name, iban)))
        for who in ("alice_current", "bob_current"):
            if rng.random() < 0.35:
                name, iban = rng.choice(GROCERS)
                out.append(
                    _Booking(
                        at(day, 9, 20),
                        "out",
                        acc[who],
                        rng.randrange(1200, 9500),
                        "EUR",
                        f"Card payment {name}",
                        (name, iban),
                    )
                )
            if rng.random() < 0.55:
                name, iban = rng.choice(SHOPS)
                out.append(
                    _Booking(
                        at(day), "out", acc[who], rng.randrange(300, 12000), "EUR", f"Card payment {name}", (name, iban)
                    )
                )
        if rng.random() < 0.12:
            name, iban = rng.choice(UK_SHOPS)
            out.append(
                _Booking(
                    at(day),
                    "out",
                    acc["bob_gbp"],
                    rng.randrange(250, 6000),
                    "GBP",
                    f"Card payment {name}",
                    (name, iban),
                )
            )
        if n % 9 == 4:  # alice and bob split a dinner, taking turns
            payer, payee = ("alice_current", "bob_current") if n % 2 else ("bob_current", "alice_current")
            out.append(
                _Booking(
                    at(day, 20, 23),
                    "internal",
                    acc[payer],
                    rng.randrange(1500, 6000),
                    "EUR",
                    rng.choice(["Dinner", "Pizza night", "Concert tickets", "Groceries split"]),
                    to_account=acc[payee],
                )
            )
    return sorted((b for b in out if b.at <= now), key=lambda b: b.at)  # nothing in the future


def seed_ledger(conn: Connection, alice_id: str, bob_id: str, now: int | None = None) -> int:
    """Create the demo accounts and book the demo history in `conn`'s transaction. Returns the
    number of transfers booked (0 if alice already has accounts)."""
    ledger.lock_for_seeding(conn)
    if ledger.has_accounts(conn, alice_id):
        return 0
    now = now if now is not None else int(time.time())
    rng = Random(SEED)
    start = dt.datetime.fromtimestamp(now, dt.UTC).date() - dt.timedelta(days=DAYS)
    opened = int(dt.datetime.combine(start, dt.time(), dt.UTC).timestamp())
    specs = {
        "alice_current": (alice_id, "current", "EUR", "Everyday account", "Alice Andersen", 100000),
        "alice_savings": (alice_id, "savings", "EUR", "Rainy day savings", "Alice Andersen", 0),
        "bob_current": (bob_id, "current", "EUR", "Current account", "Bob Berg", 50000),
        "bob_gbp": (bob_id, "current", "GBP", "London account", "Bob Berg", 0),
    }
    acc = {}
    for n, (key, (owner, kind, currency, name, holder, overdraft)) in enumerate(specs.items()):
        acc[key] = ledger.create_account(
            conn,
            owner_user_id=owner,
            kind=kind,
            currency=currency,
            name=name,
            holder_name=holder,
            overdraft_limit=overdraft,
            now=opened + n,
            rng=rng,
        ).id
    orders = []
    for b in _plan(rng, start, DAYS, acc, now):
        if b.kind == "in":
            assert b.party is not None
            orders.append(
                ledger.TransferOrder(
                    amount=b.amount,
                    currency=b.currency,
                    remittance=b.remittance,
                    debtor_name=b.party[0],
                    debtor_iban=b.party[1],
                    creditor_account_id=b.account,
                    booked_at=b.at,
                )
            )
        elif b.kind == "out":
            assert b.party is not None
            orders.append(
                ledger.TransferOrder(
                    amount=b.amount,
                    currency=b.currency,
                    remittance=b.remittance,
                    debtor_account_id=b.account,
                    creditor_name=b.party[0],
                    creditor_iban=b.party[1],
                    booked_at=b.at,
                )
            )
        else:
            orders.append(
                ledger.TransferOrder(
                    amount=b.amount,
                    currency=b.currency,
                    remittance=b.remittance,
                    debtor_account_id=b.account,
                    creditor_account_id=b.to_account,
                    booked_at=b.at,
                )
            )
    # One booking of all orders: the ledger's own checks and statements, a handful of round trips.
    # An order the account could not cover is refused (and left out), as a real bank would refuse it.
    results = ledger.book(conn, orders, skip_refused=True)
    return sum(1 for r in results if isinstance(r, ledger.Transfer))


async def seed_bank_demo(core: Any, say: Callable[[str], None] = print) -> int:
    """Seed the demo ledger for the demo users alice and bob (see `seed_demo`)."""
    db: Database | None = getattr(core.store, "db", None)
    if db is None:  # pragma: no cover - every durable store today is SQL
        return 0
    alice = await core.store.get_user_by_username("alice")
    bob = await core.store.get_user_by_username("bob")
    if alice is None or bob is None:
        return 0
    started = time.perf_counter()
    booked = await db.write(seed_ledger, alice.id, bob.id)
    if booked:
        say(
            f"demo bank ledger: 4 accounts, {booked} transfers booked in "
            f"{(time.perf_counter() - started) * 1000:.0f} ms"
        )
    return booked
