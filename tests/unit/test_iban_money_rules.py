"""IBAN validation (ISO 13616: country length, mod-97 check digits), ISO 4217 currencies and money at
the edges (integer minor units inside, Decimal strings outside, never floats): fingrade.finance."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fingrade.finance.currencies import BOOKED_CURRENCIES, MINOR_UNITS, minor_units
from fingrade.finance.errors import InvalidAmount, InvalidIban, UnsupportedCurrency
from fingrade.finance.iban import IBAN_LENGTHS, format_iban, is_valid_iban, make_iban, normalize_iban
from fingrade.finance.money import (
    MAX_APPROVED_AMOUNT,
    MAX_LEDGER_AMOUNT,
    approved_amount,
    check_amount,
    check_currency,
    format_amount,
    parse_amount,
    to_minor_units,
)

pytestmark = [pytest.mark.bank, pytest.mark.payments]

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
    for bad in (10.5, 10.0, Decimal("10"), True, "10", None, 0, -1, MAX_LEDGER_AMOUNT + 1):
        with pytest.raises(InvalidAmount):
            check_amount(bad)
    assert check_amount(MAX_LEDGER_AMOUNT) == MAX_LEDGER_AMOUNT


def test_format_amount() -> None:
    assert format_amount(1050, "EUR") == "10.50"
    assert format_amount(-5, "EUR") == "-0.05"
    assert format_amount(0, "GBP") == "0.00"
    assert format_amount(1500, "JPY") == "1500"
    assert format_amount(1, "BHD") == "0.001"
    assert format_amount(123456789012345, "EUR") == "1234567890123.45"


def test_iso_4217_one_table_and_the_booked_currencies_within_it() -> None:
    """One ISO 4217 table: the currencies the bank books are codes of it, with its minor units."""
    assert BOOKED_CURRENCIES.issubset(MINOR_UNITS)
    assert {c: MINOR_UNITS[c] for c in ("EUR", "JPY", "KWD", "BHD", "CLP", "TND")} == {
        "EUR": 2,
        "JPY": 0,
        "KWD": 3,
        "BHD": 3,
        "CLP": 0,
        "TND": 3,
    }
    assert all(len(c) == 3 and c.isascii() and c.isupper() and n in (0, 2, 3) for c, n in MINOR_UNITS.items())
    for bad in ("XYZ", "eur", "", None, 978):
        with pytest.raises(UnsupportedCurrency):
            minor_units(bad)


def test_the_ledger_books_only_its_currencies() -> None:
    """A valid ISO 4217 code the bank keeps no accounts in is unsupported_currency for the ledger."""
    assert check_currency("EUR") == "EUR"
    for code in ("AUD", "CLP", "XYZ"):
        with pytest.raises(UnsupportedCurrency):
            check_currency(code)
        with pytest.raises(UnsupportedCurrency):
            parse_amount("1.00", code)
    assert to_minor_units("1.00", "AUD") == 100  # the grammar is every ISO 4217 currency's


@pytest.mark.parametrize(
    "text,currency,normalised",
    [
        ("25", "EUR", "25.00"),
        ("25.5", "EUR", "25.50"),
        ("0.01", "EUR", "0.01"),
        ("100", "JPY", "100"),
        ("1.234", "KWD", "1.234"),
        ("999999999.99", "EUR", "999999999.99"),
    ],
)
def test_approved_amount_is_normalised_to_the_currencys_decimals(text: str, currency: str, normalised: str) -> None:
    assert approved_amount(text, currency) == normalised


@pytest.mark.parametrize(
    "text,currency,message",
    [
        ("0", "EUR", "must be greater than 0 and less than 1000000000"),
        ("0.00", "EUR", "must be greater than 0 and less than 1000000000"),
        ("1000000000", "EUR", "must be greater than 0 and less than 1000000000"),
        ("1.234", "EUR", "must be a decimal string with at most 2 decimals"),
        ("100.5", "JPY", "must be a decimal string with at most 0 decimals"),
        ("01.00", "EUR", "must be a decimal string with at most 2 decimals"),
        ("-5.00", "EUR", "must be a decimal string with at most 2 decimals"),
        ("1e3", "EUR", "must be a decimal string with at most 2 decimals"),
        (25, "EUR", "must be a decimal string with at most 2 decimals"),
    ],
)
def test_approved_amount_refuses(text: object, currency: str, message: str) -> None:
    """The approval bound and grammar: > 0 and < MAX_APPROVED_AMOUNT major units, no leading zeros,
    at most the currency's decimals, a string."""
    with pytest.raises(InvalidAmount) as info:
        approved_amount(text, currency)
    assert info.value.message == message


def _currency_and_minor() -> st.SearchStrategy[tuple[str, int]]:
    """A currency of the ISO 4217 table and an amount whose UK OB string has at most 13 integer digits."""
    return st.sampled_from(sorted(MINOR_UNITS)).flatmap(
        lambda c: st.tuples(
            st.just(c),
            st.one_of(st.integers(0, 10 ** (13 + MINOR_UNITS[c]) - 1), st.integers(0, 10**4)),
        )
    )


@settings(max_examples=500, deadline=None)
@given(_currency_and_minor())
def test_format_then_parse_round_trips_for_every_iso_4217_currency(case: tuple[str, int]) -> None:
    """Property: for every currency of the one table, the decimal string of an amount parses back to
    the same minor units, and the string has exactly the currency's decimals."""
    currency, minor = case
    text = format_amount(minor, currency)
    assert to_minor_units(text, currency) == minor
    places = MINOR_UNITS[currency]
    assert ("." in text) == (places > 0) and (not places or len(text.split(".")[1]) == places)
    if currency in BOOKED_CURRENCIES and 0 < minor <= MAX_LEDGER_AMOUNT:
        assert parse_amount(text, currency) == minor


def _amount_text() -> st.SearchStrategy[str]:
    """Strings near the amount grammars: decimals of every size, leading zeros, signs, exponents."""
    digits = st.text("0123456789", min_size=1, max_size=14)
    decimal = st.builds(
        lambda i, f: i + ("." + f if f is not None else ""),
        digits,
        st.one_of(st.none(), st.text("0123456789", min_size=0, max_size=6)),
    )
    edges = st.sampled_from(["0", "0.00", "999999999.999", "1000000000", "999999999999", "1e3", "-1", " 1", "1."])
    return st.one_of(decimal, edges, st.text("0123456789.-+e ", max_size=16))


@settings(max_examples=800, deadline=None)
@given(st.sampled_from(sorted(MINOR_UNITS)), _amount_text())
def test_an_approved_amount_is_always_bookable(currency: str, text: str) -> None:
    """Property: the approval bound lies within the ledger bound. Whatever amount a customer may
    approve, in any ISO 4217 currency, is a valid ledger amount whose UK OB string is the approved
    one; in a currency the bank books, the bank parses it to that amount."""
    try:
        approved = approved_amount(text, currency)
    except InvalidAmount:
        return
    minor = check_amount(to_minor_units(approved, currency))
    assert format_amount(minor, currency) == approved
    assert Decimal(approved) < MAX_APPROVED_AMOUNT
    if currency in BOOKED_CURRENCIES:
        assert parse_amount(approved, currency) == minor
