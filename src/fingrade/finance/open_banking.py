"""The open-banking authorization details types (RFC 9396 §2 objects): validation, normalisation and
the rule of when a requested object is within a granted one (§6.1). The authorization server
registers them (oauth/authorization_details.py); the bank reads payments with the same account and
amount rules (bank/payments.py), so the customer never approves what the bank then refuses.

`account_information` — read access to the customer's accounts:
    {"type": "account_information",
     "actions": ["accounts", "balances", "transactions"],   # required, at least one
     "accounts": [{"iban": "GB33BUKB20201555555555"}],       # optional; absent: the customer chooses
     "expires_at": "2027-02-25T00:00:00Z",                   # optional; default 90 days, at most 180
     "transactions_from": "2026-01-01",                      # optional, only with "transactions"
     "transactions_to": "2026-03-31"}                        # optional, only with "transactions"

`payment_initiation` — one payment (field names as in the RFC 9396 §2 example, after ISO 20022):
    {"type": "payment_initiation",
     "actions": ["initiate", "status"],                      # optional; default initiate + status
     "instructedAmount": {"currency": "EUR", "amount": "25.00"},  # a currency in Context.currencies
     "creditorName": "Acme Ltd",
     "creditorAccount": {"iban": "GB33BUKB20201555555555"},
     "remittanceInformationUnstructured": "Invoice 123",     # optional
     "debtorAccount": {"iban": "DE02100100109307118603"}}    # optional; absent: the customer chooses

An account reference is an object with exactly one of `iban` (ISO 13616, checksum verified) or
`sortCodeAccountNumber` (UK: 6-digit sort code then 8-digit account number, 14 digits).

Unknown members are refused, in every object (fail closed): the customer consents to what the
consent page shows, and a member we do not understand could carry a restriction or an instruction
that was never shown but that a resource server might honour. RFC 9396 §5 lets the AS refuse objects
that do not conform to their type definition.

Every refusal is InvalidDetail, its message naming the member; the AS answers it as
`invalid_authorization_details` (RFC 9396 §5), the bank as its own `invalid_request`.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from fingrade.finance.currencies import MINOR_UNITS
from fingrade.finance.errors import InvalidAmount, InvalidDetail
from fingrade.finance.iban import is_valid_iban
from fingrade.finance.money import approved_amount
from fingrade.protocol import rfc3339

ACCOUNT_INFORMATION = "account_information"
PAYMENT_INITIATION = "payment_initiation"
ACCOUNT_ACTIONS = ("accounts", "balances", "transactions")
PAYMENT_ACTIONS = ("initiate", "status", "cancel")

MAX_TEXT = 140  # ISO 20022 Max140Text (creditor name, unstructured remittance information)
MAX_ACCOUNTS = 20
MAX_LOCATIONS = 5
DEFAULT_VALIDITY = timedelta(days=90)
MAX_VALIDITY = timedelta(days=180)  # bank practice for account access consents
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2100, 12, 31)  # the range of transaction dates


@dataclass(frozen=True)
class Context:
    now: int  # seconds since the epoch
    locations: frozenset[str]  # the resource servers tokens are issued for (RFC 9396 §2.2 `locations`)
    currencies: frozenset[str]  # the ISO 4217 codes a payment may be in (settings.payment_currencies)
    defaults: bool = True  # fill in defaults (not when comparing a narrowed request, §6.1)


# -- values ---------------------------------------------------------------------------------------------


def _obj(value: Any, where: str, required: set[str], optional: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidDetail(f"{where} must be a JSON object")
    unknown = sorted(set(value) - required - optional)
    if unknown:
        raise InvalidDetail(f"{where} has an unknown member: {unknown[0][:40]}")  # fail closed: see the module text
    missing = sorted(required - set(value))
    if missing:
        raise InvalidDetail(f"{where} is missing {missing[0]}")
    return value


def _text(value: Any, where: str, max_len: int = MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise InvalidDetail(f"{where} must be a string")
    text = " ".join(value.split())  # no line breaks or runs of blanks on a consent page
    if not text or len(text) > max_len or not text.isprintable():
        raise InvalidDetail(f"{where} must be 1 to {max_len} printable characters")
    return text


def _string_list(value: Any, where: str, allowed: tuple[str, ...] | None = None, max_len: int = 10) -> list[str]:
    if not isinstance(value, list) or not value or len(value) > max_len or not all(isinstance(v, str) for v in value):
        raise InvalidDetail(f"{where} must be a non-empty list of at most {max_len} strings")
    if len(set(value)) != len(value):
        raise InvalidDetail(f"{where} has a repeated value")
    if allowed is not None:
        bad = [v for v in value if v not in allowed]
        if bad:
            raise InvalidDetail(f"{where} has an unknown value: {bad[0][:40]}")
        return [a for a in allowed if a in value]  # canonical order
    return list(value)


def account_ref(value: Any, where: str) -> dict[str, str]:
    """An account reference, normalised: `{"iban": ...}` in the electronic format (the bank's own IBAN
    rule, fingrade.finance.iban: one rule for the approval and the payment) or
    `{"sortCodeAccountNumber": ...}`."""
    obj = _obj(value, where, set(), {"iban", "sortCodeAccountNumber"})
    if len(obj) != 1:
        raise InvalidDetail(f"{where} must have exactly one of iban or sortCodeAccountNumber")
    if "iban" in obj:
        iban = obj["iban"].replace(" ", "").upper() if isinstance(obj["iban"], str) else None
        if iban is None or not is_valid_iban(iban):
            raise InvalidDetail(f"{where}.iban is not a valid IBAN")
        return {"iban": iban}
    number = obj["sortCodeAccountNumber"]
    if not isinstance(number, str) or not re.fullmatch(r"[0-9]{14}", number):
        raise InvalidDetail(f"{where}.sortCodeAccountNumber must be 14 digits (sort code, then account number)")
    return {"sortCodeAccountNumber": number}


def amount(value: Any, where: str, currencies: frozenset[str]) -> dict[str, str]:
    """An amount in one of `currencies` (ISO 4217 codes), with at most the currency's ISO 4217
    decimals, within the approval bound (fingrade.finance.money.approved_amount)."""
    obj = _obj(value, where, {"currency", "amount"}, set())
    currency = obj["currency"]
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency) or currency not in MINOR_UNITS:
        raise InvalidDetail(f"{where}.currency must be an ISO 4217 currency code")
    if currency not in currencies:
        # A valid code the bank does not make payments in: approving it would only end in the
        # bank's refusal after the customer has consented.
        if len(currencies) > 20:  # a list that would not fit the description's 300 characters
            raise InvalidDetail(f"{where}.currency {currency}: payments are not made in this currency")
        raise InvalidDetail(f"{where}.currency {currency}: payments are made only in " + ", ".join(sorted(currencies)))
    try:
        normalised = approved_amount(obj["amount"], currency)
    except InvalidAmount as exc:
        raise InvalidDetail(f"{where}.amount {exc.message}") from None
    return {"currency": currency, "amount": normalised}


def _instant(value: Any, where: str) -> int:
    """An RFC 3339 date-time (with its offset) as epoch seconds: the one strict parser (rfc3339.py),
    so a date near the ends of the calendar is this client's error, not the server's."""
    try:
        return rfc3339.date_time(value)
    except rfc3339.InvalidDateTime as exc:
        raise InvalidDetail(f"{where} {exc}") from None


def _date(value: Any, where: str) -> date:
    try:
        day = rfc3339.full_date(value)
    except rfc3339.InvalidDateTime as exc:
        raise InvalidDetail(f"{where} {exc}") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidDetail(f"{where} is out of range")
    return day


def _locations(value: Any, ctx: Context, where: str) -> list[str]:
    # RFC 9396 §2.2: where the access applies. Only the resource server(s) our tokens are for.
    locations = _string_list(value, where, max_len=MAX_LOCATIONS)
    bad = [v for v in locations if v not in ctx.locations]
    if bad:
        raise InvalidDetail(f"{where} names a resource this server does not issue tokens for")
    return locations


# -- the types ----------------------------------------------------------------------------------------


def account_information(obj: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """An `account_information` object, normalised (canonical action order, UTC `expires_at`, the
    default validity added when `ctx.defaults`). InvalidDetail if it does not conform."""
    _obj(
        obj,
        ACCOUNT_INFORMATION,
        {"type", "actions"},
        {"locations", "accounts", "expires_at", "transactions_from", "transactions_to"},
    )
    out: dict[str, Any] = {
        "type": ACCOUNT_INFORMATION,
        "actions": _string_list(obj["actions"], "actions", ACCOUNT_ACTIONS),
    }
    if "locations" in obj:
        out["locations"] = _locations(obj["locations"], ctx, "locations")
    if "accounts" in obj:
        accounts = obj["accounts"]
        if not isinstance(accounts, list) or not 1 <= len(accounts) <= MAX_ACCOUNTS:
            raise InvalidDetail(f"accounts must be a list of 1 to {MAX_ACCOUNTS} account references")
        refs = [account_ref(a, f"accounts[{i}]") for i, a in enumerate(accounts)]
        if len({tuple(r.items()) for r in refs}) != len(refs):
            raise InvalidDetail("accounts has a repeated account")
        out["accounts"] = refs
    if "expires_at" in obj:
        expires = _instant(obj["expires_at"], "expires_at")
        if expires <= ctx.now or expires > ctx.now + int(MAX_VALIDITY.total_seconds()):
            raise InvalidDetail(f"expires_at must be in the future and at most {MAX_VALIDITY.days} days away")
        out["expires_at"] = rfc3339.utc(expires)
    elif ctx.defaults:
        # RFC 9396 §7.1: the AS may add details
        out["expires_at"] = rfc3339.utc(ctx.now + int(DEFAULT_VALIDITY.total_seconds()))
    if "transactions_from" in obj or "transactions_to" in obj:
        if "transactions" not in out["actions"]:
            raise InvalidDetail("a transaction date range needs the transactions action")
        start = _date(obj["transactions_from"], "transactions_from") if "transactions_from" in obj else None
        end = _date(obj["transactions_to"], "transactions_to") if "transactions_to" in obj else None
        if start and end and start > end:
            raise InvalidDetail("transactions_from is after transactions_to")
        if start:
            out["transactions_from"] = start.isoformat()
        if end:
            out["transactions_to"] = end.isoformat()
    return out


def payment_initiation(obj: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """A `payment_initiation` object, normalised (the amount with the currency's decimals, IBANs in
    the electronic format, texts on one line, default actions when `ctx.defaults`). InvalidDetail if
    it does not conform."""
    _obj(
        obj,
        PAYMENT_INITIATION,
        {"type", "instructedAmount", "creditorName", "creditorAccount"},
        {"actions", "locations", "remittanceInformationUnstructured", "debtorAccount"},
    )
    out: dict[str, Any] = {"type": PAYMENT_INITIATION}
    if "actions" in obj:
        out["actions"] = _string_list(obj["actions"], "actions", PAYMENT_ACTIONS)
        if "initiate" not in out["actions"]:
            raise InvalidDetail("a payment_initiation needs the initiate action")
    elif ctx.defaults:
        out["actions"] = ["initiate", "status"]
    if "locations" in obj:
        out["locations"] = _locations(obj["locations"], ctx, "locations")
    out["instructedAmount"] = amount(obj["instructedAmount"], "instructedAmount", ctx.currencies)
    out["creditorName"] = _text(obj["creditorName"], "creditorName")
    out["creditorAccount"] = account_ref(obj["creditorAccount"], "creditorAccount")
    if "remittanceInformationUnstructured" in obj:
        out["remittanceInformationUnstructured"] = _text(
            obj["remittanceInformationUnstructured"], "remittanceInformationUnstructured"
        )
    if "debtorAccount" in obj:
        out["debtorAccount"] = account_ref(obj["debtorAccount"], "debtorAccount")
    return out


def account_information_within(req: dict[str, Any], granted: dict[str, Any]) -> bool:
    """RFC 9396 §6.1: the requested access is no wider than the granted one."""
    if not set(req["actions"]) <= set(granted["actions"]):
        return False
    if "accounts" in granted and ("accounts" not in req or any(a not in granted["accounts"] for a in req["accounts"])):
        return False
    if "locations" in granted and not set(req["locations"]) <= set(granted["locations"]):
        return False
    if req["expires_at"] > granted["expires_at"]:  # same fixed format: string order is time order
        return False
    for key, wider in (("transactions_from", operator.lt), ("transactions_to", operator.gt)):
        if key in granted and (key not in req or wider(req[key], granted[key])):
            return False
    return True


def payment_initiation_within(req: dict[str, Any], granted: dict[str, Any]) -> bool:
    """RFC 9396 §6.1: a payment is exactly what the customer approved; only the actions may be fewer."""
    same = {k: v for k, v in req.items() if k != "actions"} == {k: v for k, v in granted.items() if k != "actions"}
    return same and set(req["actions"]) <= set(granted["actions"]) and "initiate" in req["actions"]
