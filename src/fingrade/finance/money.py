"""Money at the edges. Inside Fingrade an amount is an `int` of minor units (cents) and a currency
code; `Decimal` appears only when parsing or rendering a decimal string such as the open-banking
`"Amount": "10.50"`. Floats never."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from fingrade.finance.errors import InvalidAmount, UnsupportedCurrency

# ISO 4217 minor units of the currencies the demo bank books. Extend as needed.
MINOR_UNITS: dict[str, int] = {
    "EUR": 2,
    "GBP": 2,
    "USD": 2,
    "CHF": 2,
    "SEK": 2,
    "NOK": 2,
    "DKK": 2,
    "PLN": 2,
    "CZK": 2,
    "HUF": 2,
    "JPY": 0,
    "BHD": 3,
    "KWD": 3,
}

# Largest single amount: 10^13 major units is the UK OB `Amount` pattern's limit (\d{1,13}); in minor
# units it stays far inside a signed 64-bit column, so sums of many entries cannot overflow either.
MAX_AMOUNT = 10**15

# UK Open Banking OBActiveOrHistoricCurrencyAndAmount: ^\d{1,13}$|^\d{1,13}\.\d{1,5}$
_AMOUNT = re.compile(r"\d{1,13}(\.\d{1,5})?")


def check_currency(currency: object) -> str:
    if not isinstance(currency, str) or currency not in MINOR_UNITS:
        raise UnsupportedCurrency("currency must be a supported ISO 4217 code")
    return currency


def check_amount(amount: object) -> int:
    """A transfer amount: a positive int of minor units, not above MAX_AMOUNT."""
    if type(amount) is not int:  # bool is an int subclass; floats and Decimals are refused
        raise InvalidAmount("amount must be an integer number of minor units")
    if amount <= 0:
        raise InvalidAmount("amount must be positive")
    if amount > MAX_AMOUNT:
        raise InvalidAmount("amount is too large")
    return amount


def parse_amount(value: str, currency: str) -> int:
    """`"10.50"`, `"EUR"` -> 1050. More decimals than the currency has are refused unless zeros."""
    check_currency(currency)
    if not isinstance(value, str) or not _AMOUNT.fullmatch(value):
        raise InvalidAmount("amount must be a decimal string such as 10.50")
    try:
        minor = Decimal(value).scaleb(MINOR_UNITS[currency])
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only valid decimals
        raise InvalidAmount("amount must be a decimal string") from exc
    if minor != minor.to_integral_value():
        raise InvalidAmount(f"{currency} has {MINOR_UNITS[currency]} decimal places")
    return check_amount(int(minor))


def format_amount(minor: int, currency: str) -> str:
    """1050, "EUR" -> "10.50"; -5, "EUR" -> "-0.05"."""
    places = MINOR_UNITS[check_currency(currency)]
    return str(Decimal(minor).scaleb(-places).quantize(Decimal(1).scaleb(-places)))
