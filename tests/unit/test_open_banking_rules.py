"""The open-banking authorization details types (fingrade.finance.open_banking): their refusals are
finance errors (InvalidDetail) that each caller answers its own way, and the amount a customer
approves at the AS is always one the bank books (fingrade.finance.money)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import details

from fingrade.bank.payments import PaymentRefused, parse_body
from fingrade.config import Settings
from fingrade.finance import open_banking as ob
from fingrade.finance.currencies import BOOKED_CURRENCIES, MINOR_UNITS
from fingrade.finance.errors import FinanceError, InvalidDetail
from fingrade.finance.money import format_amount, parse_amount
from fingrade.oauth import authorization_details as ad
from fingrade.protocol.errors import OAuthError

pytestmark = [pytest.mark.rar, pytest.mark.payments]

NOW, IBAN = details.NOW, details.IBAN
CTX = ob.Context(now=NOW, locations=frozenset({"https://as.example.com"}), currencies=frozenset({"EUR", "GBP"}))


def payment(**over: Any) -> dict[str, Any]:
    return details.payment(**{"remittanceInformationUnstructured": None, **over})


def test_refusals_are_finance_errors_naming_the_member() -> None:
    """The types raise InvalidDetail, a FinanceError, never an OAuth error: the AS and the bank map it."""
    with pytest.raises(InvalidDetail) as info:
        ob.payment_initiation(payment(creditorAccount={"iban": "GB34BUKB20201555555555"}), CTX)
    assert isinstance(info.value, FinanceError) and not isinstance(info.value, OAuthError)
    assert info.value.message == "creditorAccount.iban is not a valid IBAN"
    with pytest.raises(
        InvalidDetail, match="^instructedAmount.amount must be greater than 0 and less than 1000000000$"
    ):
        ob.amount({"currency": "EUR", "amount": "0"}, "instructedAmount", CTX.currencies)
    with pytest.raises(InvalidDetail, match="^expires_at must be in the future and at most 180 days away$"):
        ob.account_information(
            {"type": "account_information", "actions": ["accounts"], "expires_at": "2020-01-01T00:00:00Z"}, CTX
        )


def test_the_as_answers_a_refusal_as_invalid_authorization_details_with_its_words() -> None:
    """RFC 9396 §5: the AS names the entry, then the type's own description."""
    with pytest.raises(OAuthError) as info:
        ad.parse(json.dumps([payment(creditorAccount={"iban": "x"})]), frozenset(ad.SUPPORTED_TYPES), CTX)
    assert (info.value.error, info.value.status) == ("invalid_authorization_details", 400)
    assert info.value.description == "authorization_details[0]: creditorAccount.iban is not a valid IBAN"


def test_the_bank_answers_a_refusal_as_invalid_request_with_its_words() -> None:
    """The bank's payment body uses the same account and amount rules; a refusal is its 400."""
    body = {
        "instructedAmount": {"currency": "EUR", "amount": "1.234"},
        "creditorName": "A",
        "creditorAccount": {"iban": IBAN},
    }
    with pytest.raises(PaymentRefused) as info:
        parse_body(json.dumps(body).encode())
    assert info.value.body() == {
        "error": "invalid_request",
        "error_description": "instructedAmount.amount must be a decimal string with at most 2 decimals",
    }
    body = {
        **body,
        "instructedAmount": {"currency": "EUR", "amount": "1"},
        "creditorAccount": {"iban": IBAN, "x\u202e": 1},
    }
    with pytest.raises(PaymentRefused) as info:
        parse_body(json.dumps(body).encode())
    assert info.value.description == "creditorAccount has an unknown member: x "  # RFC 6749 §5.2 characters only


def test_iso13616_checksum() -> None:
    """ISO 13616 mod 97 (IBAN), normalised to the electronic format."""
    assert ob.account_ref({"iban": "de89 3704 0044 0532 0130 00"}, "a") == {"iban": "DE89370400440532013000"}
    with pytest.raises(InvalidDetail):
        ob.account_ref({"iban": "DE89370400440532013001"}, "a")


def test_iso13616_country_length_is_the_banks_rule() -> None:
    """A checksum-valid IBAN of the wrong length for its country is refused at approval time, as the
    bank refuses it at payment time (one rule: fingrade.finance.iban)."""
    bban = "BUKB202015555555"  # a GB BBAN is 18 characters; this one is 16
    check = 98 - int("".join(str(int(ch, 36)) for ch in bban + "GB00")) % 97
    short = f"GB{check:02d}{bban}"
    assert int("".join(str(int(ch, 36)) for ch in short[4:] + short[:4])) % 97 == 1  # the checksum holds
    with pytest.raises(InvalidDetail, match="not a valid IBAN"):
        ob.account_ref({"iban": short}, "creditorAccount")


def test_sort_code_and_account_number() -> None:
    assert ob.account_ref({"sortCodeAccountNumber": "20155512345678"}, "a") == {
        "sortCodeAccountNumber": "20155512345678"
    }
    with pytest.raises(InvalidDetail, match="must be 14 digits"):
        ob.account_ref({"sortCodeAccountNumber": "2015551234567"}, "a")


def test_rfc9396_s6_1_within_rules() -> None:
    """§6.1: fewer actions and a shorter validity are within an account access; a payment only with
    fewer actions, the payment itself unchanged."""
    granted = ob.account_information({"type": "account_information", "actions": ["accounts", "balances"]}, CTX)
    assert ob.account_information_within({**granted, "actions": ["balances"]}, granted)
    assert not ob.account_information_within({**granted, "actions": ["transactions"]}, granted)
    assert not ob.account_information_within({**granted, "expires_at": "2099-01-01T00:00:00Z"}, granted)
    pay = ob.payment_initiation(payment(actions=["initiate", "status", "cancel"]), CTX)
    assert ob.payment_initiation_within({**pay, "actions": ["initiate"]}, pay)
    assert not ob.payment_initiation_within({**pay, "actions": ["status"]}, pay)
    assert not ob.payment_initiation_within({**pay, "creditorName": "Other"}, pay)


def _amount_text() -> st.SearchStrategy[str]:
    digits = st.text("0123456789", min_size=1, max_size=14)
    decimal = st.builds(
        lambda i, f: i + ("." + f if f is not None else ""),
        digits,
        st.one_of(st.none(), st.text("0123456789", max_size=6)),
    )
    return st.one_of(decimal, st.sampled_from(["0.01", "999999999.999", "1000000000", "1.5", "100"]))


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(sorted(BOOKED_CURRENCIES)), _amount_text())
def test_an_approved_payment_is_never_refused_by_the_bank_for_its_amount(currency: str, text: str) -> None:
    """Property: the AS's approval rule (payment_currencies by default, RFC 9396 `instructedAmount`)
    and the bank's booking rule agree. Whatever the customer may approve, the bank reads the payment
    body to the same amount, parses it to minor units in a currency it books, and answers the
    approved string back in its payment resource."""
    ctx = ob.Context(now=NOW, locations=CTX.locations, currencies=frozenset(Settings().payment_currencies))
    detail = payment(instructedAmount={"currency": currency, "amount": text})
    try:
        [approved] = ad.parse(json.dumps([detail]), frozenset(ad.SUPPORTED_TYPES), ctx)
    except OAuthError as exc:
        assert exc.error == "invalid_authorization_details"
        return
    amount = approved["instructedAmount"]["amount"]
    body = parse_body(json.dumps({k: v for k, v in detail.items() if k != "type"}).encode())
    assert body["instructedAmount"] == approved["instructedAmount"]  # the body matches the approval
    minor = parse_amount(amount, currency)  # the booking rule: no InvalidAmount, no UnsupportedCurrency
    assert format_amount(minor, currency) == amount
    assert len(amount.partition(".")[2]) == MINOR_UNITS[currency]
