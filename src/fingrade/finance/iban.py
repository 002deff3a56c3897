"""IBAN (ISO 13616): validation by country length, BBAN character set and the mod-97 check digits,
and generation of valid IBANs for the demo bank's accounts. Not cryptography: plain arithmetic."""

from __future__ import annotations

import re

from fingrade.finance.errors import InvalidIban

# IBAN lengths per country (SWIFT IBAN registry). A country missing here is refused: we cannot tell
# a well-formed IBAN of it from a typo.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24,
    "AE": 23,
    "AL": 28,
    "AT": 20,
    "AZ": 28,
    "BA": 20,
    "BE": 16,
    "BG": 22,
    "BH": 22,
    "BR": 29,
    "BY": 28,
    "CH": 21,
    "CR": 22,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DK": 18,
    "DO": 28,
    "EE": 20,
    "EG": 29,
    "ES": 24,
    "FI": 18,
    "FO": 18,
    "FR": 27,
    "GB": 22,
    "GE": 22,
    "GI": 23,
    "GL": 18,
    "GR": 27,
    "GT": 28,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IL": 23,
    "IS": 26,
    "IT": 27,
    "JO": 30,
    "KW": 30,
    "KZ": 20,
    "LB": 28,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "MC": 27,
    "MD": 24,
    "ME": 22,
    "MK": 19,
    "MR": 27,
    "MT": 31,
    "MU": 30,
    "NL": 18,
    "NO": 15,
    "PK": 24,
    "PL": 28,
    "PS": 29,
    "PT": 25,
    "QA": 29,
    "RO": 24,
    "RS": 22,
    "SA": 24,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "TN": 24,
    "TR": 26,
    "UA": 29,
    "VG": 24,
    "XK": 20,
}

_SHAPE = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{1,30}")


def _numeric(s: str) -> int:
    # A=10 ... Z=35; digits stay (ISO 13616-1 §7.1)
    return int("".join(str(int(ch, 36)) for ch in s))


def normalize_iban(value: str) -> str:
    """The electronic format: no spaces, upper case. Raises InvalidIban unless the IBAN is valid."""
    if not isinstance(value, str) or len(value) > 64:
        raise InvalidIban("IBAN must be a string of at most 34 characters")
    iban = value.replace(" ", "").upper()
    if not _SHAPE.fullmatch(iban):
        raise InvalidIban("IBAN must be a country code, two check digits and up to 30 letters or digits")
    length = IBAN_LENGTHS.get(iban[:2])
    if length is None:
        raise InvalidIban(f"IBANs of country {iban[:2]} are not supported")
    if len(iban) != length:
        raise InvalidIban(f"an IBAN of {iban[:2]} has {length} characters")
    if _numeric(iban[4:] + iban[:4]) % 97 != 1:
        raise InvalidIban("IBAN check digits do not match")
    return iban


def is_valid_iban(value: str) -> bool:
    try:
        normalize_iban(value)
    except InvalidIban:
        return False
    return True


def make_iban(country: str, bban: str) -> str:
    """The IBAN of `bban` in `country`, with its check digits computed (ISO 13616-1 §7.1)."""
    check = 98 - _numeric(bban + country + "00") % 97
    return normalize_iban(f"{country}{check:02d}{bban}")


def format_iban(iban: str) -> str:
    """The paper format: groups of four."""
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
