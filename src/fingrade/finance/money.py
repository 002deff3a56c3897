"""Money at the edges. Inside Fingrade an amount is an `int` of minor units (cents) and a currency
code; `Decimal` appears only when parsing or rendering a decimal string such as the open-banking
`"Amount": "10.50"`. Floats never.

Two amount grammars and two bounds, each a different rule, both here:
- the payment a customer approves (RFC 9396 `payment_initiation` `instructedAmount.amount`,
  `approved_amount`): a decimal string with at most the currency's ISO 4217 decimals, no leading
  zeros, greater than 0 and less than MAX_APPROVED_AMOUNT major units;
- what the ledger books (`parse_amount`, `check_amount`): the UK OB `Amount` grammar in a currency the
  bank books, a positive number of minor units not above MAX_LEDGER_AMOUNT.
Every approved amount is bookable: fewer than 10^9 major units is at most 10^12 minor units (three
decimals at most), far inside the ledger bound, and its string is in the UK OB grammar.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from fingrade.finance.currencies import BOOKED_CURRENCIES, minor_units
from fingrade.finance.errors import InvalidAmount, UnsupportedCurrency

# Approval bound: the exclusive upper bound, in major units, of a single payment a customer approves.
MAX_APPROVED_AMOUNT = Decimal("1000000000")

# Ledger bound: the largest single amount booked, in minor units. 10^13 major units is the UK OB
# `Amount` pattern's limit (\d{1,13}); in minor units it stays far inside a signed 64-bit column, so
# sums of many entries cannot overflow either.
MAX_LEDGER_AMOUNT = 10**15

# UK Open Banking OBActiveOrHistoricCurrencyAndAmount: ^\d{1,13}$|^\d{1,13}\.\d{1,5}$
_AMOUNT = re.compile(r"\d{1,13}(\.\d{1,5})?")


def check_currency(currency: object) -> str:
    """A currency the bank books (BOOKED_CURRENCIES); UnsupportedCurrency otherwise."""
    if not isinstance(currency, str) or currency not in BOOKED_CURRENCIES:
        raise UnsupportedCurrency("currency must be a supported ISO 4217 code")
    return currency


def check_amount(amount: object) -> int:
    """A transfer amount: a positive int of minor units, not above MAX_LEDGER_AMOUNT."""
    if type(amount) is not int:  # bool is an int subclass; floats and Decimals are refused
        raise InvalidAmount("amount must be an integer number of minor units")
    if amount <= 0:
        raise InvalidAmount("amount must be positive")
    if amount > MAX_LEDGER_AMOUNT:
        raise InvalidAmount("amount is too large")
    return amount


def to_minor_units(value: object, currency: str) -> int:
    """A UK OB `Amount` decimal string in any ISO 4217 currency as minor units: `"10.50"`, `"EUR"`
    -> 1050. More decimals than the currency has are refused unless zeros."""
    places = minor_units(currency)
    if not isinstance(value, str) or not _AMOUNT.fullmatch(value):
        raise InvalidAmount("amount must be a decimal string such as 10.50")
    try:
        minor = Decimal(value).scaleb(places)
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only valid decimals
        raise InvalidAmount("amount must be a decimal string") from exc
    if minor != minor.to_integral_value():
        raise InvalidAmount(f"{currency} has {places} decimal places")
    return int(minor)


def parse_amount(value: str, currency: str) -> int:
    """An amount to book: `"10.50"`, `"EUR"` -> 1050, in a currency the bank books, within the
    ledger bound."""
    return check_amount(to_minor_units(value, check_currency(currency)))


def format_amount(minor: int, currency: str) -> str:
    """The UK OB `Amount` string of `minor` units of any ISO 4217 currency: 1050, "EUR" -> "10.50";
    -5, "EUR" -> "-0.05"."""
    places = minor_units(currency)
    return str(Decimal(minor).scaleb(-places).quantize(Decimal(1).scaleb(-places)))


def approved_amount(value: object, currency: str) -> str:
    """The amount of a payment a customer may approve, normalised to exactly the currency's ISO 4217
    decimals: `"25"`, `"EUR"` -> `"25.00"`. A decimal string, never a JSON number (no binary floating
    point for money). InvalidAmount's message continues the member's name (`… .amount <message>`)."""
    decimals = minor_units(currency)
    pattern = r"(0|[1-9][0-9]{0,11})" + (rf"(\.[0-9]{{1,{decimals}}})?" if decimals else "")
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        raise InvalidAmount(f"must be a decimal string with at most {decimals} decimals")
    try:
        dec = Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise InvalidAmount("is not a number") from None
    if not Decimal(0) < dec < MAX_APPROVED_AMOUNT:
        raise InvalidAmount(f"must be greater than 0 and less than {MAX_APPROVED_AMOUNT}")
    return f"{dec:.{decimals}f}"
