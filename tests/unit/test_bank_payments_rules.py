"""The pure payment rules of bank/payments.py (docs/banking-api.md, "Payments")."""

from __future__ import annotations

import pytest

from fingrade.bank.ledger import BANK_CODE, Account
from fingrade.bank.payments import (
    PaymentRefused,
    approval_key,
    approved_payments,
    check_idempotency_key,
    fingerprint,
    match,
    parse_body,
    payers,
)
from fingrade.finance.iban import make_iban

pytestmark = [pytest.mark.bank, pytest.mark.payments]

DETAIL = {
    "type": "payment_initiation",
    "actions": ["initiate", "status"],
    "instructedAmount": {"currency": "EUR", "amount": "12.30"},
    "creditorName": "Acme GmbH",
    "creditorAccount": {"iban": "DE89370400440532013000"},
}
BODY = (
    b'{"instructedAmount": {"currency": "EUR", "amount": "12.3"}, "creditorName": "Acme GmbH", '
    b'"creditorAccount": {"iban": "de89 3704 0044 0532 0130 00"}}'
)


@pytest.mark.parametrize("key", ["a", "x" * 64, "550e8400-e29b-41d4-a716-446655440000", "~!@#"])
def test_idempotency_key_accepted(key: str) -> None:
    assert check_idempotency_key(key) == key


@pytest.mark.parametrize("key", [None, "", "x" * 65, "a b", "é", "a\x00", "tab\t"])
def test_idempotency_key_refused(key: str | None) -> None:
    with pytest.raises(PaymentRefused) as exc:
        check_idempotency_key(key)
    assert exc.value.status == 400


def test_body_is_normalised_like_the_approval_and_matches() -> None:
    body = parse_body(BODY)
    assert body["instructedAmount"] == {"currency": "EUR", "amount": "12.30"}
    assert body["creditorAccount"] == {"iban": "DE89370400440532013000"}
    assert match([DETAIL], body) is DETAIL


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[]",
        b"nul",
        b'{"instructedAmount": 1}',
        b'{"x": 1}',
        b'{"instructedAmount": {"currency": "EUR", "amount": 12.3}, "creditorName": "A",'
        b' "creditorAccount": {"iban": "DE89370400440532013000"}}',
        b"{" * 20000,
    ],
)
def test_malformed_bodies_are_invalid_request(raw: bytes) -> None:
    with pytest.raises(PaymentRefused) as exc:
        parse_body(raw)
    assert exc.value.status in (400, 413)


@pytest.mark.parametrize(
    "change",
    [
        {"creditorName": "Acme"},
        {"remittanceInformationUnstructured": "x"},
        {"debtorAccount": {"iban": "DE89370400440532013000"}},
    ],
)
def test_anything_else_than_the_approval_is_refused(change: dict) -> None:
    body = {**parse_body(BODY), **change}
    with pytest.raises(PaymentRefused) as exc:
        match([DETAIL], body)
    assert (exc.value.status, exc.value.error) == (403, "insufficient_scope")


def test_approval_is_per_grant_and_detail_and_ignores_actions() -> None:
    assert approval_key("g1", DETAIL) == approval_key("g1", {**DETAIL, "actions": ["initiate"]})
    assert approval_key("g1", DETAIL) != approval_key("g2", DETAIL)
    assert approval_key("g1", DETAIL) != approval_key("g1", {**DETAIL, "creditorName": "Other"})
    assert fingerprint("g1", {"a": 1}) != fingerprint("g2", {"a": 1})


def test_only_details_with_the_action_count() -> None:
    claims = {
        "authorization_details": [
            DETAIL,
            {"type": "payment_initiation", "actions": ["initiate"]},
            {"type": "account_information", "actions": ["status"]},
        ]
    }
    assert len(approved_payments(claims, "initiate")) == 2
    assert approved_payments(claims, "status") == [DETAIL]
    assert approved_payments({}, "initiate") == [] and approved_payments({"authorization_details": "x"}, "x") == []


def _account(iban: str, currency: str = "EUR", kind: str = "current", status: str = "open") -> Account:
    return Account(
        id="acc_" + iban[-6:],
        owner_user_id="u1",
        kind=kind,
        iban=iban,
        name="Everyday",
        holder_name="Alice",
        currency=currency,
        overdraft_limit=0,
        balance=0,
        status=status,
        created_at=0,
    )


CURRENT = _account("NL91ABNA0417164300")
SAVINGS = _account("NL02ABNA0123456789", kind="savings")
CLOSED = _account("NL39RABO0300065264", status="closed")
POUNDS = _account("GB29NWBK60161331926819", currency="GBP")
UK_EUR = _account(make_iban("GB", BANK_CODE + "20201555555555"))  # this bank's sort code 202015, account 55555555


def test_payers_are_open_accounts_in_the_currency_other_than_the_creditor() -> None:
    """The one rule for the consent page and the payment: the creditor account is never a payer (the
    ledger's same_account), nor a closed account or one in another currency."""
    mine = [CURRENT, SAVINGS, CLOSED, POUNDS, UK_EUR]
    assert payers(mine, DETAIL) == [CURRENT, SAVINGS, UK_EUR]
    to_savings = {**DETAIL, "creditorAccount": {"iban": SAVINGS.iban}}
    assert payers(mine, to_savings) == [CURRENT, UK_EUR]
    to_uk = {**DETAIL, "creditorAccount": {"sortCodeAccountNumber": "20201555555555"}}
    assert UK_EUR not in payers(mine, to_uk)  # the same account, named by sort code and number
    gbp = {**DETAIL, "instructedAmount": {"currency": "GBP", "amount": "1.00"}}
    assert payers(mine, gbp) == [POUNDS]
    assert payers([CURRENT], {**DETAIL, "creditorAccount": {"iban": CURRENT.iban}}) == []


def test_a_named_payer_is_that_account_only_when_it_can_pay() -> None:
    mine = [CURRENT, SAVINGS, CLOSED, POUNDS]
    assert payers(mine, {**DETAIL, "debtorAccount": {"iban": SAVINGS.iban}}) == [SAVINGS]
    assert payers([UK_EUR], {**DETAIL, "debtorAccount": {"sortCodeAccountNumber": "20201555555555"}}) == [UK_EUR]
    for named in (CLOSED.iban, POUNDS.iban, "DE89370400440532013000", "DE02100100109307118603"):
        assert payers(mine, {**DETAIL, "debtorAccount": {"iban": named}}) == []
    same = {**DETAIL, "creditorAccount": {"iban": CURRENT.iban}, "debtorAccount": {"iban": CURRENT.iban}}
    assert payers(mine, same) == []
