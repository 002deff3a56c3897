"""IBAN validation (ISO 13616: country length, mod-97 check digits) and money at the edges
(integer minor units inside, Decimal strings outside, never floats)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fingrade.bank.errors import InvalidAmount, InvalidIban, UnsupportedCurrency
from fingrade.bank.iban import IBAN_LENGTHS, format_iban, is_valid_iban, make_iban, normalize_iban
from fingrade.bank.money import MAX_AMOUNT, check_amount, format_amount, parse_amount

pytestmark = pytest.mark.bank

# Published example IBANs (registry and textbook examples), all valid.
VALID = [
    "GB82WEST12345698765432",
    "DE89370400440532013000",
    "NL91ABNA0417164300",
    "FR1420041010050500013M02606",
    "BE68539007547034",
    "CH9300762011623852957",
    "NO9386011117947",
    "MT84MALT011000012345MTLCAST001S",
]


@pytest.mark.parametrize("iban", VALID)
def test_iso13616_valid_ibans_are_accepted(iban: str) -> None:
    assert normalize_iban(iban) == iban
    assert normalize_iban(format_iban(iban).lower()) == iban  # paper format, any case
    assert is_valid_iban(iban)


@pytest.mark.parametrize(
    "iban,why",
    [
        ("GB83WEST12345698765432", "check digits"),
        ("DE89370400440532013001", "check digits"),
        ("GB82WEST1234569876543", "length"),
        ("GB82WEST123456987654321", "length"),
        ("ZZ82WEST12345698765432", "country"),
        ("GB8XWEST12345698765432", "shape"),
        ("GB82WEST12345698765-32", "shape"),
        ("", "shape"),
        ("GB82 WEST 1234 5698 7654 32\x00", "shape"),
        ("G" * 65, "length"),
    ],
)
def test_iso13616_invalid_ibans_are_refused(iban: str, why: str) -> None:
    with pytest.raises(InvalidIban):
        normalize_iban(iban)
    assert not is_valid_iban(iban)


def test_iban_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(InvalidIban):
        normalize_iban(12345)  # type: ignore[arg-type]


def test_make_iban_computes_check_digits() -> None:
    assert make_iban("GB", "WEST12345698765432") == "GB82WEST12345698765432"
    assert make_iban("DE", "370400440532013000") == "DE89370400440532013000"
    # every swap of two adjacent digits is caught by mod-97
    iban = make_iban("NL", "FING0123456789")
    for i in range(4, len(iban) - 1):
        swapped = iban[:i] + iban[i + 1] + iban[i] + iban[i + 2 :]
        if swapped != iban:
            assert not is_valid_iban(swapped)
    assert all(len(c) >= 2 and 15 <= n <= 34 for c, n in IBAN_LENGTHS.items())


@pytest.mark.parametrize(
    "text,currency,minor",
    [
        ("10.50", "EUR", 1050),
        ("0.01", "EUR", 1),
        ("10", "EUR", 1000),
        ("10.500", "EUR", 1050),
        ("1500", "JPY", 1500),
        ("1.234", "BHD", 1234),
        ("9999999999999", "EUR", 999999999999900),
    ],
)
def test_parse_amount(text: str, currency: str, minor: int) -> None:
    assert parse_amount(text, currency) == minor
    assert type(parse_amount(text, currency)) is int


@pytest.mark.parametrize(
    "text,currency",
    [
        ("10.001", "EUR"),
        ("1.5", "JPY"),
        ("0", "EUR"),
        ("0.00", "EUR"),
        ("-1.00", "EUR"),
        ("1e3", "EUR"),
        (" 1.00", "EUR"),
        ("1,00", "EUR"),
        ("", "EUR"),
        ("NaN", "EUR"),
        ("Infinity", "EUR"),
        ("12345678901234", "EUR"),
        ("1.000001", "EUR"),
    ],
)
def test_parse_amount_refuses(text: str, currency: str) -> None:
    with pytest.raises(InvalidAmount):
        parse_amount(text, currency)


def test_unknown_currency_is_refused() -> None:
    for bad in ("XXX", "eur", "EURO", "", None):
        with pytest.raises(UnsupportedCurrency):
            parse_amount("1.00", bad)  # type: ignore[arg-type]


def test_amounts_are_integers_of_minor_units_never_floats() -> None:
    for bad in (10.5, 10.0, Decimal("10"), True, "10", None, 0, -1, MAX_AMOUNT + 1):
        with pytest.raises(InvalidAmount):
            check_amount(bad)
    assert check_amount(MAX_AMOUNT) == MAX_AMOUNT


def test_format_amount() -> None:
    assert format_amount(1050, "EUR") == "10.50"
    assert format_amount(-5, "EUR") == "-0.05"
    assert format_amount(0, "GBP") == "0.00"
    assert format_amount(1500, "JPY") == "1500"
    assert format_amount(1, "BHD") == "0.001"
    assert format_amount(123456789012345, "EUR") == "1234567890123.45"
