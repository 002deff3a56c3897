"""UK Open Banking account-access-consents (Read/Write API v3.1, Account and Transaction API,
"Account Access Consents") turned into an RFC 9396 `account_information` object, and the consent
resource the authorization server keeps turned back into the UK shape. Pure functions, no I/O.

The TPP lodges its intent first (POST /account-access-consents with a client credentials token),
the customer authorises it at the AS (an authorization request naming the ConsentId in the
`openbanking_intent_id` claim), and the consent's Status follows: AwaitingAuthorisation, then
Authorised or Rejected, and Revoked.

Permissions → `account_information` actions (docs/banking-api.md, "UK Open Banking style consent
resources"). The bank serves detail views only and cannot filter transactions by credit or debit, so
it grants exactly what is asked or refuses (fail closed, never less than asked without saying so):

- ReadAccountsDetail → `accounts`; ReadAccountsBasic only together with ReadAccountsDetail;
- ReadBalances → `balances`;
- ReadTransactionsDetail + ReadTransactionsCredits + ReadTransactionsDebits → `transactions`;
  ReadTransactionsBasic only with ReadTransactionsDetail; Credits and Debits only with Detail and
  with each other;
- every other permission (beneficiaries, direct debits, standing orders, products, offers, party,
  PAN, scheduled payments, statements) and unknown strings: 400 invalid_request naming it.

ExpirationDateTime → `expires_at` (UTC); TransactionFromDateTime / TransactionToDateTime →
`transactions_from` / `transactions_to`, the UTC date of the instant (the bank grants whole days).
The TPP's own Permissions and date-times travel in the resource's `data`, so GET answers with
exactly what was asked.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from fingrade.finance.consent_ids import (
    CONSENT_ID,  # what the AS issues; anything else is not found
    ConsentStatus,
)
from fingrade.finance.open_banking import FIRST_DAY, LAST_DAY, MAX_VALIDITY
from fingrade.protocol import rfc3339, strict_json
from fingrade.protocol.errors import insufficient_scope, safe_description

MAX_BODY = 16 * 1024
MAX_PERMISSIONS = 30
STATUSES = tuple(ConsentStatus)  # as the authorization server reports them

ACCOUNTS_BASIC, ACCOUNTS_DETAIL = "ReadAccountsBasic", "ReadAccountsDetail"
BALANCES = "ReadBalances"
TX_BASIC, TX_DETAIL = "ReadTransactionsBasic", "ReadTransactionsDetail"
TX_CREDITS, TX_DEBITS = "ReadTransactionsCredits", "ReadTransactionsDebits"
SUPPORTED = (ACCOUNTS_BASIC, ACCOUNTS_DETAIL, BALANCES, TX_BASIC, TX_CREDITS, TX_DEBITS, TX_DETAIL)
# Defined by the UK standard, not served by this bank (it has no such data).
UNSUPPORTED = (
    "ReadBeneficiariesBasic",
    "ReadBeneficiariesDetail",
    "ReadDirectDebits",
    "ReadOffers",
    "ReadPAN",
    "ReadParty",
    "ReadPartyPSU",
    "ReadPartyPSUIdentity",
    "ReadProducts",
    "ReadScheduledPaymentsBasic",
    "ReadScheduledPaymentsDetail",
    "ReadStandingOrdersBasic",
    "ReadStandingOrdersDetail",
    "ReadStatementsBasic",
    "ReadStatementsDetail",
    "ReadAccountsDetailIdentity",
)

_DATA_FIELDS = ("Permissions", "ExpirationDateTime", "TransactionFromDateTime", "TransactionToDateTime")


class ConsentRefused(Exception):
    """A refused consent request: 400 (or 413) invalid_request with a client-safe description."""

    def __init__(self, description: str, status: int = 400) -> None:
        description = safe_description(description)  # RFC 6749 §5.2 characters: it may quote the TPP's input
        super().__init__(description)
        self.status, self.error, self.description = status, "invalid_request", description

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class NotAnAccountAccessConsent(ValueError):
    """A well-formed consent resource of the client that this API did not lodge (no UK Permissions)."""


@dataclass(frozen=True)
class ConsentRequest:
    detail: dict[str, Any]  # the account_information object for the AS (no accounts: the customer picks)
    data: dict[str, Any]  # the TPP's Permissions and date-times as sent, echoed by GET


def require_client_credentials(claims: dict[str, Any]) -> str:
    """The TPP's client_id, if the token is the TPP's own (client credentials: no grant, `sub` is the
    client). A customer's token lodges no consent: the customer authorises the consent afterwards, at
    the AS. 403 insufficient_scope otherwise."""
    client_id = claims.get("client_id")
    if claims.get("grant_id") is not None or not isinstance(client_id, str) or claims.get("sub") != client_id:
        raise insufficient_scope(
            "account-access-consents need a client credentials token of the TPP; this token was issued for a customer"
        )
    return client_id


# -- the request ----------------------------------------------------------------------------------------


def _load(raw: bytes) -> Any:
    if len(raw) > MAX_BODY:
        raise ConsentRefused("the request body is too large", 413)
    try:
        return strict_json.loads(raw)  # repeated members refused: two parsers could pick different ones
    except strict_json.JsonError as exc:
        raise ConsentRefused(f"the body: {exc}") from None


def _instant(value: Any, name: str) -> int:
    """An ISO 8601 / RFC 3339 date-time with its offset, as epoch seconds (the one parser: rfc3339.py)."""
    if not isinstance(value, str):
        raise ConsentRefused(
            f"Data.{name} must be an ISO 8601 date-time with a UTC offset, e.g. 2027-05-02T00:00:00+00:00"
        )
    try:
        return rfc3339.date_time(value)
    except rfc3339.InvalidDateTime as exc:
        raise ConsentRefused(f"Data.{name} {exc}") from None


def _iso(epoch: int) -> str:
    return rfc3339.utc(epoch)


def actions(permissions: Any) -> list[str]:
    """The `account_information` actions for a UK Permissions list; ConsentRefused names what is not
    served or not allowed on its own."""
    if not isinstance(permissions, list) or not permissions:
        raise ConsentRefused("Data.Permissions must be a non-empty array")
    if len(permissions) > MAX_PERMISSIONS or not all(isinstance(p, str) for p in permissions):
        raise ConsentRefused(f"Data.Permissions must be an array of at most {MAX_PERMISSIONS} strings")
    if len(set(permissions)) != len(permissions):
        raise ConsentRefused("Data.Permissions has a repeated permission")
    for p in permissions:
        if p in UNSUPPORTED:
            raise ConsentRefused(f"Data.Permissions: {p} is not supported by this bank")
        if p not in SUPPORTED:
            raise ConsentRefused(f"Data.Permissions: unknown permission {p[:40]}")
    asked = set(permissions)
    if ACCOUNTS_BASIC in asked and ACCOUNTS_DETAIL not in asked:
        raise ConsentRefused(
            f"Data.Permissions: {ACCOUNTS_BASIC} needs {ACCOUNTS_DETAIL} (this bank serves account details only)"
        )
    if TX_BASIC in asked and TX_DETAIL not in asked:
        raise ConsentRefused(
            f"Data.Permissions: {TX_BASIC} needs {TX_DETAIL} (this bank serves transaction details only)"
        )
    for p in (TX_CREDITS, TX_DEBITS):
        if p in asked and TX_DETAIL not in asked:
            raise ConsentRefused(f"Data.Permissions: {p} needs {TX_DETAIL}")
    if TX_DETAIL in asked:
        missing = [p for p in (TX_CREDITS, TX_DEBITS) if p not in asked]
        if missing:
            raise ConsentRefused(
                f"Data.Permissions: {TX_DETAIL} needs both {TX_CREDITS} and {TX_DEBITS} "
                f"(this bank cannot limit transactions to credits or debits; {missing[0]} is missing)"
            )
    out = []
    if ACCOUNTS_DETAIL in asked:
        out.append("accounts")
    if BALANCES in asked:
        out.append("balances")
    if TX_DETAIL in asked:
        out.append("transactions")
    return out


def parse_request(raw: bytes, now: int) -> ConsentRequest:
    """OBReadConsent1 (`{"Data": {...}, "Risk": {}}`) → the `account_information` object and the data
    to keep. Unknown members are refused (fail closed: a member we do not understand could be a
    restriction the TPP expects us to honour)."""
    body = _load(raw)
    if not isinstance(body, dict):
        raise ConsentRefused("the body must be a JSON object with Data and Risk")
    unknown = sorted(set(body) - {"Data", "Risk"})
    if unknown:
        raise ConsentRefused(f"unknown member {unknown[0][:40]}")
    if not isinstance(body.get("Data"), dict):
        raise ConsentRefused("Data must be a JSON object")
    if not isinstance(body.get("Risk"), dict):
        raise ConsentRefused("Risk must be a JSON object (it may be empty)")
    data = body["Data"]
    unknown = sorted(set(data) - set(_DATA_FIELDS))
    if unknown:
        raise ConsentRefused(f"Data has an unknown member {unknown[0][:40]}")
    if "Permissions" not in data:
        raise ConsentRefused("Data.Permissions is required")
    acts = actions(data["Permissions"])
    detail: dict[str, Any] = {"type": "account_information", "actions": acts}
    if "ExpirationDateTime" in data:
        expires = _instant(data["ExpirationDateTime"], "ExpirationDateTime")
        if expires <= now or expires > now + int(MAX_VALIDITY.total_seconds()):
            raise ConsentRefused(
                f"Data.ExpirationDateTime must be in the future and at most {MAX_VALIDITY.days} days away"
            )
        detail["expires_at"] = _iso(expires)
    days: dict[str, dt.date] = {}
    for name, member in (
        ("TransactionFromDateTime", "transactions_from"),
        ("TransactionToDateTime", "transactions_to"),
    ):
        if name in data:
            if "transactions" not in acts:
                raise ConsentRefused(f"Data.{name} needs {TX_DETAIL}")
            day = rfc3339.utc_date(_instant(data[name], name))
            if not FIRST_DAY <= day <= LAST_DAY:  # the AS's range for transaction dates
                raise ConsentRefused(f"Data.{name} must be between {FIRST_DAY.year} and {LAST_DAY.year}")
            days[member] = day
            detail[member] = day.isoformat()
    if len(days) == 2 and days["transactions_from"] > days["transactions_to"]:
        raise ConsentRefused("Data.TransactionFromDateTime is after Data.TransactionToDateTime")
    kept = {k: data[k] for k in _DATA_FIELDS if k in data}
    return ConsentRequest(detail=detail, data=kept)


# -- the response ---------------------------------------------------------------------------------------


def _epoch_iso(epoch: Any) -> str:
    if type(epoch) is not int:
        raise ValueError("not an epoch")
    return _iso(epoch)


def consent_json(resource: Any, collection_url: str) -> dict[str, Any]:
    """The UK response (OBReadConsentResponse1) for a consent resource of the AS; `Links.Self` is
    `collection_url`/ConsentId. NotAnAccountAccessConsent when this API did not lodge it (no
    Permissions in its data); ValueError when it is malformed."""
    if not isinstance(resource, dict):
        raise ValueError("not an object")
    consent_id, status, data = resource.get("consent_id"), resource.get("status"), resource.get("data")
    if not isinstance(consent_id, str) or not CONSENT_ID.fullmatch(consent_id) or status not in STATUSES:
        raise ValueError("no consent id or status")
    created, updated = _epoch_iso(resource.get("created_at")), _epoch_iso(resource.get("status_updated_at"))
    if not isinstance(data, dict):
        raise ValueError("no data")
    if not isinstance(data.get("Permissions"), list):
        raise NotAnAccountAccessConsent(consent_id)
    out: dict[str, Any] = {
        "ConsentId": consent_id,
        "Status": status,
        "StatusUpdateDateTime": updated,
        "CreationDateTime": created,
        "Permissions": data["Permissions"],
    }
    expires = data.get("ExpirationDateTime")
    if not isinstance(expires, str):
        # Not asked for: the AS's default validity still ends the consent, so say when.
        details = resource.get("authorization_details")
        found = (
            [
                d.get("expires_at")
                for d in details
                if isinstance(d, dict)
                and d.get("type") == "account_information"
                and isinstance(d.get("expires_at"), str)
            ]
            if isinstance(details, list)
            else []
        )
        expires = found[0] if found else None
    if expires is not None:
        out["ExpirationDateTime"] = expires
    for name in ("TransactionFromDateTime", "TransactionToDateTime"):
        if isinstance(data.get(name), str):
            out[name] = data[name]
    return {"Data": out, "Risk": {}, "Links": {"Self": f"{collection_url}/{consent_id}"}, "Meta": {}}
