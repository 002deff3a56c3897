"""Dynamic linking (PSD2 RTS Art. 5): the strong authentication that approves a payment is bound to
its amount and payee. Both ends compute the same hash over the approved payment details: the
authorization server when the customer authenticates for them (the WebAuthn challenge commits to it;
a TOTP approval records it), the bank when it executes the payment (it must be the one that was
authenticated). Changing any field of an approved payment changes the hash."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from fingrade.finance.open_banking import PAYMENT_INITIATION


def payment_details(details: Iterable[Mapping[str, Any]] | None) -> list[Mapping[str, Any]]:
    """The payment_initiation objects among RFC 9396 authorization details."""
    return [d for d in details or () if d.get("type") == PAYMENT_INITIATION]


def details_hash(details: Iterable[Mapping[str, Any]]) -> str:
    """SHA-256 (hex) over the canonical JSON of the payments: keys sorted, no whitespace, in order.
    The details are the normalised ones the grant keeps (fingrade.finance.open_banking), so two
    spellings of one payment cannot hash apart."""
    canonical = orjson.dumps(payment_details(details), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(b"fingrade-dynamic-linking-v1|" + canonical).hexdigest()
