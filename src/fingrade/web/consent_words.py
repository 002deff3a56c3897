"""The open-banking authorization details (RFC 9396, fingrade.finance.open_banking) in plain words:
what the consent page and the customer's connections page show. Plain text: the page templates
escape it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from fingrade.finance.currencies import MINOR_UNITS
from fingrade.finance.iban import format_iban
from fingrade.finance.open_banking import PAYMENT_INITIATION

_SYMBOLS = {"EUR": "€", "GBP": "£", "USD": "$"}
_ACTION_WORDS = {"accounts": "names and numbers", "balances": "balances", "transactions": "transactions"}


def display_amount(value: dict[str, str]) -> str:
    """`{"currency": "CHF", "amount": "1250.5"}` -> "1,250.50 CHF"; EUR, GBP and USD by their symbol."""
    currency, number = value["currency"], Decimal(value["amount"])
    decimals = MINOR_UNITS.get(currency, 2)
    text = f"{number:,.{decimals}f}"
    symbol = _SYMBOLS.get(currency)
    return f"{symbol}{text}" if symbol else f"{text} {currency}"


def format_account(ref: dict[str, str]) -> str:
    """An account reference: an IBAN in its paper format, a UK sort code and account number in words."""
    if "iban" in ref:
        return format_iban(ref["iban"])
    number = ref["sortCodeAccountNumber"]
    return f"sort code {number[0:2]}-{number[2:4]}-{number[4:6]}, account {number[6:]}"


def _day(value: str) -> str:
    day = date.fromisoformat(value[:10])
    return f"{day.day} {day:%B %Y}"


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def describe(details: list[dict[str, Any]], payer_names: Mapping[int, str] | None = None) -> list[dict[str, Any]]:
    """What the customer is asked to allow, one item per object: a title and detail lines.
    `payer_names`: for a payment (by its index) whose `debtorAccount` the bank confirmed is the
    customer's and can pay it, the account's name: only such an account is called "your account" —
    an account the app names is otherwise just an account."""
    items = []
    for i, d in enumerate(details):
        if d["type"] == PAYMENT_INITIATION:
            title = f"Pay {display_amount(d['instructedAmount'])} to {d['creditorName']}"
            lines = [f"To account {format_account(d['creditorAccount'])}"]
            if "remittanceInformationUnstructured" in d:
                lines.append(f"Reference: “{d['remittanceInformationUnstructured']}”")
            if "debtorAccount" not in d:
                lines.append("From one of your accounts")
            elif payer_names and i in payer_names:
                lines.append(f"From your account {payer_names[i]}")
            else:
                lines.append(f"From account {format_account(d['debtorAccount'])}")
            if "cancel" in d.get("actions", []):
                lines.append("The app may also cancel this payment before it is made")
        else:
            which = (
                "these accounts: " + ", ".join(format_account(a) for a in d["accounts"])
                if "accounts" in d
                else "your accounts"
            )
            title = f"See the {_join([_ACTION_WORDS[a] for a in d['actions']])} of {which}"
            lines = []
            if "transactions_from" in d or "transactions_to" in d:
                start = _day(d["transactions_from"]) if "transactions_from" in d else None
                end = _day(d["transactions_to"]) if "transactions_to" in d else None
                lines.append(
                    f"Transactions from {start} to {end}"
                    if start and end
                    else f"Transactions from {start} onwards"
                    if start
                    else f"Transactions up to {end}"
                )
            if "expires_at" in d:
                lines.append(f"Until {_day(d['expires_at'])}")
        items.append({"title": title, "lines": lines})
    return items
