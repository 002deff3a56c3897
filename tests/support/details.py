"""Authorization details (RFC 9396) objects of the two open-banking types, for the rules' tests: a
valid object, with members replaced or (given None) removed."""

from __future__ import annotations

from typing import Any

NOW = 1_790_000_000  # 2026-09-21
IBAN = "GB33BUKB20201555555555"


def _with(d: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    d.update(over)
    return {k: v for k, v in d.items() if v is not None}


def payment(**over: Any) -> dict[str, Any]:
    """A payment_initiation of EUR 25.00 to Acme Ltd, with a reference."""
    d = {
        "type": "payment_initiation",
        "instructedAmount": {"currency": "EUR", "amount": "25.00"},
        "creditorName": "Acme Ltd",
        "creditorAccount": {"iban": IBAN},
        "remittanceInformationUnstructured": "Invoice 123",
    }
    return _with(d, over)


def accounts(**over: Any) -> dict[str, Any]:
    """An account_information for names and numbers, balances and transactions of any account."""
    return _with({"type": "account_information", "actions": ["accounts", "balances", "transactions"]}, over)
