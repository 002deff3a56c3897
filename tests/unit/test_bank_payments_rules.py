"""The pure payment rules of bank/payments.py (docs/banking-api.md, "Payments")."""

from __future__ import annotations

import pytest

from fingrade.bank.payments import (PaymentRefused, approval_key, approved_payments, check_idempotency_key,
                                    fingerprint, match, parse_body)

DETAIL = {"type": "payment_initiation", "actions": ["initiate", "status"],
          "instructedAmount": {"currency": "EUR", "amount": "12.30"}, "creditorName": "Acme GmbH",
          "creditorAccount": {"iban": "DE89370400440532013000"}}
BODY = b'{"instructedAmount": {"currency": "EUR", "amount": "12.3"}, "creditorName": "Acme GmbH", ' \
       b'"creditorAccount": {"iban": "de89 3704 0044 0532 0130 00"}}'


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


@pytest.mark.parametrize("raw", [b"", b"[]", b"nul", b'{"instructedAmount": 1}', b'{"x": 1}',
                                 b'{"instructedAmount": {"currency": "EUR", "amount": 12.3}, "creditorName": "A",'
                                 b' "creditorAccount": {"iban": "DE89370400440532013000"}}', b"{" * 20000])
def test_malformed_bodies_are_invalid_request(raw: bytes) -> None:
    with pytest.raises(PaymentRefused) as exc:
        parse_body(raw)
    assert exc.value.status in (400, 413)


@pytest.mark.parametrize("change", [{"creditorName": "Acme"}, {"remittanceInformationUnstructured": "x"},
                                    {"debtorAccount": {"iban": "DE89370400440532013000"}}])
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
    claims = {"authorization_details": [DETAIL, {"type": "payment_initiation", "actions": ["initiate"]},
                                        {"type": "account_information", "actions": ["status"]}]}
    assert len(approved_payments(claims, "initiate")) == 2
    assert approved_payments(claims, "status") == [DETAIL]
    assert approved_payments({}, "initiate") == [] and approved_payments({"authorization_details": "x"}, "x") == []
