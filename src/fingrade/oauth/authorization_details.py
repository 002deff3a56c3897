"""Rich Authorization Requests (RFC 9396): the `authorization_details` parameter.

Pure functions: parse and validate a request's `authorization_details`, normalise it, compare a
token request's narrowed details with a grant (§6.1), and describe it in plain words for the
consent page. Every authorization details type this server understands is declared in TYPES below
(one place); `SUPPORTED_TYPES` is what the metadata advertises (§10.1).

Types (the open-banking resource API builds on these shapes):

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

Unknown members are refused, in every object, for known types too (fail closed): the customer
consents to what the consent page shows, and a member we do not understand could carry a
restriction or an instruction that was never shown but that a resource server might honour.
RFC 9396 §5 lets the AS refuse objects that do not conform to their type definition.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from fingrade.finance.iban import is_valid_iban
from fingrade.protocol import rfc3339, strict_json
from fingrade.protocol.errors import OAuthError

if TYPE_CHECKING:
    from fingrade.oauth.context import Core

MAX_PARAM_LENGTH = 4096  # characters of the JSON text (form parameters over 8192 are invalid_request, http.py)
MAX_ENTRIES = 5
MAX_TEXT = 140  # ISO 20022 Max140Text (creditor name, unstructured remittance information)
MAX_ACCOUNTS = 20
MAX_LOCATIONS = 5
DEFAULT_VALIDITY = timedelta(days=90)
MAX_VALIDITY = timedelta(days=180)  # bank practice for account access consents
MAX_AMOUNT = Decimal("1000000000")  # exclusive upper bound of a single payment

Details = list[dict[str, Any]]


def error(desc: str) -> OAuthError:
    """RFC 9396 §5: unknown types, objects not conforming to their type, or types the client may not use."""
    return OAuthError("invalid_authorization_details", desc, 400)


# -- values ---------------------------------------------------------------------------------------------

# ISO 4217 minor units: the number of decimals an amount may have. Absent here: an unknown currency.
_ZERO_DECIMALS = {
    "BIF",
    "CLP",
    "DJF",
    "GNF",
    "ISK",
    "JPY",
    "KMF",
    "KRW",
    "PYG",
    "RWF",
    "UGX",
    "UYI",
    "VND",
    "VUV",
    "XAF",
    "XOF",
    "XPF",
}
_THREE_DECIMALS = {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"}
_TWO_DECIMALS = set(
    [
        "AED",
        "AFN",
        "ALL",
        "AMD",
        "ANG",
        "AOA",
        "ARS",
        "AUD",
        "AWG",
        "AZN",
        "BAM",
        "BBD",
        "BDT",
        "BGN",
        "BMD",
        "BND",
        "BOB",
        "BRL",
        "BSD",
        "BTN",
        "BWP",
        "BYN",
        "BZD",
        "CAD",
        "CDF",
        "CHF",
        "CNY",
        "COP",
        "CRC",
        "CUP",
        "CVE",
        "CZK",
        "DKK",
        "DOP",
        "DZD",
        "EGP",
        "ERN",
        "ETB",
        "EUR",
        "FJD",
        "FKP",
        "GBP",
        "GEL",
        "GHS",
        "GIP",
        "GMD",
        "GTQ",
        "GYD",
        "HKD",
        "HNL",
        "HTG",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "IRR",
        "JMD",
        "KES",
        "KGS",
        "KHR",
        "KPW",
        "KYD",
        "KZT",
        "LAK",
        "LBP",
        "LKR",
        "LRD",
        "LSL",
        "MAD",
        "MDL",
        "MGA",
        "MKD",
        "MMK",
        "MNT",
        "MOP",
        "MRU",
        "MUR",
        "MVR",
        "MWK",
        "MXN",
        "MYR",
        "MZN",
        "NAD",
        "NGN",
        "NIO",
        "NOK",
        "NPR",
        "NZD",
        "PAB",
        "PEN",
        "PGK",
        "PHP",
        "PKR",
        "PLN",
        "QAR",
        "RON",
        "RSD",
        "RUB",
        "SAR",
        "SBD",
        "SCR",
        "SDG",
        "SEK",
        "SGD",
        "SHP",
        "SLE",
        "SOS",
        "SRD",
        "SSP",
        "STN",
        "SVC",
        "SYP",
        "SZL",
        "THB",
        "TJS",
        "TMT",
        "TOP",
        "TRY",
        "TTD",
        "TWD",
        "TZS",
        "UAH",
        "USD",
        "UYU",
        "UZS",
        "VES",
        "WST",
        "XCD",
        "YER",
        "ZAR",
        "ZMW",
        "ZWG",
    ]
)
CURRENCY_DECIMALS = {
    **{c: 2 for c in _TWO_DECIMALS},
    **{c: 0 for c in _ZERO_DECIMALS},
    **{c: 3 for c in _THREE_DECIMALS},
}
_SYMBOLS = {"EUR": "€", "GBP": "£", "USD": "$"}


def iban_valid(iban: str) -> bool:
    """ISO 13616 with the bank's own rule (country length, mod 97): one IBAN rule for the approval
    and for the payment, so the customer never approves an IBAN the bank then refuses. The module is
    pure arithmetic, no bank state."""
    return is_valid_iban(iban)


def _obj(value: Any, where: str, required: set[str], optional: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise error(f"{where} must be a JSON object")
    unknown = sorted(set(value) - required - optional)
    if unknown:
        raise error(f"{where} has an unknown member: {unknown[0][:40]}")  # fail closed: see the module text
    missing = sorted(required - set(value))
    if missing:
        raise error(f"{where} is missing {missing[0]}")
    return value


def _text(value: Any, where: str, max_len: int = MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise error(f"{where} must be a string")
    text = " ".join(value.split())  # no line breaks or runs of blanks on a consent page
    if not text or len(text) > max_len or not text.isprintable():
        raise error(f"{where} must be 1 to {max_len} printable characters")
    return text


def _string_list(value: Any, where: str, allowed: tuple[str, ...] | None = None, max_len: int = 10) -> list[str]:
    if not isinstance(value, list) or not value or len(value) > max_len or not all(isinstance(v, str) for v in value):
        raise error(f"{where} must be a non-empty list of at most {max_len} strings")
    if len(set(value)) != len(value):
        raise error(f"{where} has a repeated value")
    if allowed is not None:
        bad = [v for v in value if v not in allowed]
        if bad:
            raise error(f"{where} has an unknown value: {bad[0][:40]}")
        return [a for a in allowed if a in value]  # canonical order
    return list(value)


def account_ref(value: Any, where: str) -> dict[str, str]:
    obj = _obj(value, where, set(), {"iban", "sortCodeAccountNumber"})
    if len(obj) != 1:
        raise error(f"{where} must have exactly one of iban or sortCodeAccountNumber")
    if "iban" in obj:
        iban = obj["iban"].replace(" ", "").upper() if isinstance(obj["iban"], str) else None
        if iban is None or not iban_valid(iban):
            raise error(f"{where}.iban is not a valid IBAN")
        return {"iban": iban}
    number = obj["sortCodeAccountNumber"]
    if not isinstance(number, str) or not re.fullmatch(r"[0-9]{14}", number):
        raise error(f"{where}.sortCodeAccountNumber must be 14 digits (sort code, then account number)")
    return {"sortCodeAccountNumber": number}


def amount(value: Any, where: str, currencies: frozenset[str]) -> dict[str, str]:
    """An amount in one of `currencies` (ISO 4217 codes), with at most the currency's ISO 4217 decimals."""
    obj = _obj(value, where, {"currency", "amount"}, set())
    currency = obj["currency"]
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency) or currency not in CURRENCY_DECIMALS:
        raise error(f"{where}.currency must be an ISO 4217 currency code")
    if currency not in currencies:
        # A valid code the bank does not make payments in: approving it would only end in the
        # bank's refusal after the customer has consented.
        if len(currencies) > 20:  # a list that would not fit the description's 300 characters
            raise error(f"{where}.currency {currency}: payments are not made in this currency")
        raise error(f"{where}.currency {currency}: payments are made only in " + ", ".join(sorted(currencies)))
    decimals = CURRENCY_DECIMALS[currency]
    raw = obj["amount"]
    # A decimal string, never a JSON number (no binary floating point for money).
    pattern = r"(0|[1-9][0-9]{0,11})" + (rf"(\.[0-9]{{1,{decimals}}})?" if decimals else "")
    if not isinstance(raw, str) or not re.fullmatch(pattern, raw):
        raise error(f"{where}.amount must be a decimal string with at most {decimals} decimals")
    try:
        dec = Decimal(raw)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise error(f"{where}.amount is not a number") from None
    if not Decimal(0) < dec < MAX_AMOUNT:
        raise error(f"{where}.amount must be greater than 0 and less than {MAX_AMOUNT}")
    return {"currency": currency, "amount": f"{dec:.{decimals}f}"}


def _instant(value: Any, where: str) -> int:
    """An RFC 3339 date-time (with its offset) as epoch seconds: the one strict parser (rfc3339.py),
    so a date near the ends of the calendar is this client's error, not the server's."""
    try:
        return rfc3339.date_time(value)
    except rfc3339.InvalidDateTime as exc:
        raise error(f"{where} {exc}") from None


def _date(value: Any, where: str) -> date:
    try:
        day = rfc3339.full_date(value)
    except rfc3339.InvalidDateTime as exc:
        raise error(f"{where} {exc}") from None
    if not date(2000, 1, 1) <= day <= date(2100, 12, 31):
        raise error(f"{where} is out of range")
    return day


def _iso(epoch: int) -> str:
    return rfc3339.utc(epoch)


# -- the types ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    now: int  # seconds since the epoch
    locations: frozenset[str]  # the resource servers tokens are issued for (RFC 9396 §2.2 `locations`)
    currencies: frozenset[str]  # the ISO 4217 codes a payment may be in (settings.payment_currencies)
    defaults: bool = True  # fill in defaults (not when comparing a narrowed request, §6.1)


def context_of(core: Core, *, defaults: bool = True) -> Context:
    """The validation context of this server: now, the resource its tokens are for, and the currencies
    it approves payments in."""
    return Context(
        now=core.clock(),
        locations=frozenset({core.settings.audience}),
        currencies=frozenset(core.settings.payment_currencies),
        defaults=defaults,
    )


def _locations(value: Any, ctx: Context, where: str) -> list[str]:
    # RFC 9396 §2.2: where the access applies. Only the resource server(s) our tokens are for.
    locations = _string_list(value, where, max_len=MAX_LOCATIONS)
    bad = [v for v in locations if v not in ctx.locations]
    if bad:
        raise error(f"{where} names a resource this server does not issue tokens for")
    return locations


ACCOUNT_ACTIONS = ("accounts", "balances", "transactions")
PAYMENT_ACTIONS = ("initiate", "status", "cancel")


def _account_information(obj: dict[str, Any], ctx: Context) -> dict[str, Any]:
    _obj(
        obj,
        "account_information",
        {"type", "actions"},
        {"locations", "accounts", "expires_at", "transactions_from", "transactions_to"},
    )
    out: dict[str, Any] = {
        "type": "account_information",
        "actions": _string_list(obj["actions"], "actions", ACCOUNT_ACTIONS),
    }
    if "locations" in obj:
        out["locations"] = _locations(obj["locations"], ctx, "locations")
    if "accounts" in obj:
        accounts = obj["accounts"]
        if not isinstance(accounts, list) or not 1 <= len(accounts) <= MAX_ACCOUNTS:
            raise error(f"accounts must be a list of 1 to {MAX_ACCOUNTS} account references")
        refs = [account_ref(a, f"accounts[{i}]") for i, a in enumerate(accounts)]
        if len({tuple(r.items()) for r in refs}) != len(refs):
            raise error("accounts has a repeated account")
        out["accounts"] = refs
    if "expires_at" in obj:
        expires = _instant(obj["expires_at"], "expires_at")
        if expires <= ctx.now or expires > ctx.now + int(MAX_VALIDITY.total_seconds()):
            raise error(f"expires_at must be in the future and at most {MAX_VALIDITY.days} days away")
        out["expires_at"] = _iso(expires)
    elif ctx.defaults:
        out["expires_at"] = _iso(
            ctx.now + int(DEFAULT_VALIDITY.total_seconds())
        )  # RFC 9396 §7.1: the AS may add details
    if "transactions_from" in obj or "transactions_to" in obj:
        if "transactions" not in out["actions"]:
            raise error("a transaction date range needs the transactions action")
        start = _date(obj["transactions_from"], "transactions_from") if "transactions_from" in obj else None
        end = _date(obj["transactions_to"], "transactions_to") if "transactions_to" in obj else None
        if start and end and start > end:
            raise error("transactions_from is after transactions_to")
        if start:
            out["transactions_from"] = start.isoformat()
        if end:
            out["transactions_to"] = end.isoformat()
    return out


def _payment_initiation(obj: dict[str, Any], ctx: Context) -> dict[str, Any]:
    _obj(
        obj,
        "payment_initiation",
        {"type", "instructedAmount", "creditorName", "creditorAccount"},
        {"actions", "locations", "remittanceInformationUnstructured", "debtorAccount"},
    )
    out: dict[str, Any] = {"type": "payment_initiation"}
    if "actions" in obj:
        out["actions"] = _string_list(obj["actions"], "actions", PAYMENT_ACTIONS)
        if "initiate" not in out["actions"]:
            raise error("a payment_initiation needs the initiate action")
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


def _account_information_within(req: dict[str, Any], granted: dict[str, Any]) -> bool:
    """§6.1: the requested access is no wider than the granted one."""
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


def _payment_initiation_within(req: dict[str, Any], granted: dict[str, Any]) -> bool:
    # A payment is exactly what the customer approved; only the actions may be fewer.
    same = {k: v for k, v in req.items() if k != "actions"} == {k: v for k, v in granted.items() if k != "actions"}
    return same and set(req["actions"]) <= set(granted["actions"]) and "initiate" in req["actions"]


@dataclass(frozen=True)
class TypeRule:
    validate: Callable[[dict[str, Any], Context], dict[str, Any]]
    within: Callable[[dict[str, Any], dict[str, Any]], bool]


TYPES: dict[str, TypeRule] = {
    "account_information": TypeRule(_account_information, _account_information_within),
    "payment_initiation": TypeRule(_payment_initiation, _payment_initiation_within),
}
SUPPORTED_TYPES: tuple[str, ...] = tuple(TYPES)  # advertised as authorization_details_types_supported (§10.1)


# -- the parameter --------------------------------------------------------------------------------------


def _load(raw: str) -> Any:
    if len(raw) > MAX_PARAM_LENGTH:
        raise error(f"authorization_details is longer than {MAX_PARAM_LENGTH} characters")
    try:
        return strict_json.loads(raw)  # repeated members refused: two parsers could pick different ones
    except strict_json.JsonError as exc:
        raise error(f"authorization_details: {exc}") from None


def parse(raw: str, allowed_types: frozenset[str], ctx: Context) -> Details:
    """Validate the `authorization_details` request parameter (RFC 9396 §2) and return it
    normalised. `allowed_types`: the types this client registered (§10.2). Raises
    invalid_authorization_details (§5)."""
    value = _load(raw)
    if not isinstance(value, list):
        raise error("authorization_details must be a JSON array")  # §2
    if not value:
        raise error("authorization_details must not be empty")
    if len(value) > MAX_ENTRIES:
        raise error(f"authorization_details has more than {MAX_ENTRIES} entries")
    out = []
    for i, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise error(f"authorization_details[{i}] must be a JSON object")
        kind = entry.get("type")
        if not isinstance(kind, str):
            raise error(f"authorization_details[{i}] has no type")  # §2: type is REQUIRED
        rule = TYPES.get(kind)
        if rule is None:
            raise error(f"authorization_details[{i}] has an unknown type")
        if kind not in allowed_types:
            raise error(f"this client may not use the authorization details type {kind}")
        try:
            out.append(rule.validate(entry, ctx))
        except OAuthError as exc:
            raise error(f"authorization_details[{i}]: {exc.description}") from None
    return out


def narrow(raw: str, granted: Details, allowed_types: frozenset[str], ctx: Context) -> Details:
    """RFC 9396 §6 and §6.1: a token request may ask for part of what was granted, never more.
    Every requested object must be within one granted object of its type; members it leaves out
    are taken from that granted object."""
    requested = parse(raw, allowed_types, replace(ctx, defaults=False))
    out = []
    for req in requested:
        match = next(
            (
                merged
                for g in granted
                if g["type"] == req["type"]
                for merged in [{**g, **req}]
                if TYPES[req["type"]].within(merged, g)
            ),
            None,
        )
        if match is None:
            raise error("the requested authorization_details exceed what was authorized")
        out.append(match)
    return out


def unexpired(details: Details, now: int) -> Details:
    """The details still in force: an account access past its `expires_at` is no longer granted,
    so later tokens of the grant do not carry it."""
    cutoff = _iso(now)
    return [d for d in details if "expires_at" not in d or d["expires_at"] > cutoff]


# -- plain words ----------------------------------------------------------------------------------------


def format_amount(value: dict[str, str]) -> str:
    currency, number = value["currency"], Decimal(value["amount"])
    decimals = CURRENCY_DECIMALS.get(currency, 2)
    text = f"{number:,.{decimals}f}"
    symbol = _SYMBOLS.get(currency)
    return f"{symbol}{text}" if symbol else f"{text} {currency}"


def format_account(ref: dict[str, str]) -> str:
    if "iban" in ref:
        iban = ref["iban"]
        return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    number = ref["sortCodeAccountNumber"]
    return f"sort code {number[0:2]}-{number[2:4]}-{number[4:6]}, account {number[6:]}"


def _day(value: str) -> str:
    day = date.fromisoformat(value[:10])
    return f"{day.day} {day:%B %Y}"


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


_ACTION_WORDS = {"accounts": "names and numbers", "balances": "balances", "transactions": "transactions"}


def describe(details: Details, payer_names: Mapping[int, str] | None = None) -> list[dict[str, Any]]:
    """What the customer is asked to allow, one item per object: a title and detail lines.
    Plain text: the page template escapes it. `payer_names`: for a payment (by its index) whose
    `debtorAccount` the bank confirmed is the customer's and can pay it, the account's name: only
    such an account is called "your account" — an account the app names is otherwise just an account."""
    items = []
    for i, d in enumerate(details):
        if d["type"] == "payment_initiation":
            title = f"Pay {format_amount(d['instructedAmount'])} to {d['creditorName']}"
            lines = [f"To account {format_account(d['creditorAccount'])}"]
            if "remittanceInformationUnstructured" in d:
                lines.append(f"Reference: “{d['remittanceInformationUnstructured']}”")
            if "debtorAccount" not in d:
                lines.append("From one of your accounts")
            elif payer_names and i in payer_names:
                lines.append(f"From your account {payer_names[i]}")
            else:
                lines.append(f"From account {format_account(d['debtorAccount'])}")
            if "cancel" in d.get("actions", []):
                lines.append("The app may also cancel this payment before it is made")
        else:
            which = (
                "these accounts: " + ", ".join(format_account(a) for a in d["accounts"])
                if "accounts" in d
                else "your accounts"
            )
            title = f"See the {_join([_ACTION_WORDS[a] for a in d['actions']])} of {which}"
            lines = []
            if "transactions_from" in d or "transactions_to" in d:
                start = _day(d["transactions_from"]) if "transactions_from" in d else None
                end = _day(d["transactions_to"]) if "transactions_to" in d else None
                lines.append(
                    f"Transactions from {start} to {end}"
                    if start and end
                    else f"Transactions from {start} onwards"
                    if start
                    else f"Transactions up to {end}"
                )
            if "expires_at" in d:
                lines.append(f"Until {_day(d['expires_at'])}")
        items.append({"title": title, "lines": lines})
    return items
