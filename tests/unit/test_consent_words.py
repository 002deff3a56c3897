"""The consent page's words for the open-banking authorization details (web/consent_words.py):
RFC 9396 §3 and FAPI informed consent — what the customer allows, in plain words."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.details import IBAN, NOW, accounts, payment

from fingrade.finance.open_banking import Context
from fingrade.oauth import authorization_details as ad
from fingrade.web.consent_words import describe, display_amount, format_account

pytestmark = [pytest.mark.rar, pytest.mark.consent]

CTX = Context(
    now=NOW, locations=frozenset({"https://as.example.com"}), currencies=frozenset({"CHF", "EUR", "GBP", "JPY", "KWD"})
)


def parse(value: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return ad.parse(json.dumps(value), frozenset(ad.SUPPORTED_TYPES), CTX)


def test_rfc9396_s3_plain_words_for_the_consent_page() -> None:
    """RFC 9396 §3 / FAPI informed consent: what the customer allows, in words."""
    items = describe(parse([payment(), accounts(expires_at="2027-02-25T00:00:00Z")]))
    assert items[0]["title"] == "Pay €25.00 to Acme Ltd"
    assert "To account GB33 BUKB 2020 1555 5555 55" in items[0]["lines"]
    assert "Reference: “Invoice 123”" in items[0]["lines"]
    assert items[1]["title"] == "See the names and numbers, balances and transactions of your accounts"
    assert "Until 25 February 2027" in items[1]["lines"]
    big = describe(parse([payment(instructedAmount={"currency": "CHF", "amount": "1250.5"})]))
    assert big[0]["title"] == "Pay 1,250.50 CHF to Acme Ltd"


def test_an_account_the_app_names_is_called_the_customers_only_when_the_bank_confirms_it() -> None:
    """The consent page never presents an account as the customer's unless it is: an app-named
    debtorAccount is "your account" only with the name the bank gave for it (interaction.Offer)."""
    [p] = parse([payment(debtorAccount={"iban": "DE02100100109307118603"})])
    [unconfirmed] = describe([p])
    assert "From account DE02 1001 0010 9307 1186 03" in unconfirmed["lines"]
    assert not any("your" in line.lower() for line in unconfirmed["lines"])
    [confirmed] = describe([p], {0: "Everyday · DE02 1001 0010 9307 1186 03"})
    assert "From your account Everyday · DE02 1001 0010 9307 1186 03" in confirmed["lines"]
    assert "From one of your accounts" in describe(parse([payment()]))[0]["lines"]


def test_amounts_and_accounts_in_words() -> None:
    """Amounts with the currency's ISO 4217 decimals and thousands separators; IBANs in groups of four."""
    assert display_amount({"currency": "GBP", "amount": "1234567.5"}) == "£1,234,567.50"
    assert display_amount({"currency": "JPY", "amount": "1500"}) == "1,500 JPY"
    assert display_amount({"currency": "KWD", "amount": "1.5"}) == "1.500 KWD"
    assert format_account({"iban": IBAN}) == "GB33 BUKB 2020 1555 5555 55"
    assert format_account({"sortCodeAccountNumber": "20155512345678"}) == "sort code 20-15-55, account 12345678"


def test_transaction_dates_in_words() -> None:
    [a] = describe(parse([accounts(transactions_from="2026-01-01", transactions_to="2026-03-31")]))
    assert "Transactions from 1 January 2026 to 31 March 2026" in a["lines"]
    [b] = describe(parse([accounts(actions=["balances"], accounts=[{"iban": IBAN}])]))
    assert b["title"] == "See the balances of these accounts: GB33 BUKB 2020 1555 5555 55"
