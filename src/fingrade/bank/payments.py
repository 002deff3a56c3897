"""Payment initiation: a token's approved `payment_initiation` authorization detail (RFC 9396)
executed once, with idempotent retries. The pure rules first (which approval a request uses, whether
the body is exactly that payment), then the one database transaction that executes it.

Rules (docs/banking-api.md, "Payments"):
- the token carries the `payments` scope (checked by the caller), a `grant_id` claim, and one or more
  `payment_initiation` objects; the request body must equal one of them (amount, currency, creditor
  name and account, remittance information, debtor account if sent) — otherwise 403;
- the approval is (grant_id, that object): its hash is the unique `bank_payments.approval`, so it
  executes once, whatever the token (refreshed tokens carry the same grant_id) or node;
- the debtor is the object's `debtorAccount` (chosen by the customer at consent, or named by the app)
  when it is one of the customer's open accounts in the payment's currency other than the creditor
  account (`payers`, the rule the consent page offers payers by), refused otherwise; without one (a
  detail approved before account selection existed) the customer's first such current account;
- `Idempotency-Key` (1–64 printable ASCII characters) is required. The record (client, key) →
  (fingerprint of grant and normalised body, status, response body) is written in the payment's transaction;
  a retry with the same fingerprint gets the stored response, another fingerprint 422. Only a booked
  payment (201) is recorded: a refusal writes nothing, so a retry is evaluated afresh.

Concurrency: on SQLite writers are serialised (BEGIN IMMEDIATE), so the checks at the start of the
transaction see every earlier payment. On PostgreSQL two racing transactions both pass those checks;
the debtor row lock (ledger.book) and then the unique keys (approval, (client, key)) make the second
wait for the first and fail with an IntegrityError when it commits; its whole transaction (transfer
included) rolls back, and `Payments.execute` answers it from the committed state: the stored response
(same key and body), 422 (same key, other body) or 409 (approval already used).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from fingrade.bank import ledger
from fingrade.bank.errors import LedgerError
from fingrade.bank.schema import bank_idempotency, bank_payments
from fingrade.finance import dynamic_linking, open_banking
from fingrade.finance.currencies import MINOR_UNITS
from fingrade.finance.errors import InvalidDetail
from fingrade.finance.iban import make_iban
from fingrade.finance.money import format_amount, parse_amount
from fingrade.protocol import strict_json
from fingrade.protocol.errors import safe_description
from fingrade.store.sql.db import Database

SCOPE = "payments"
TYPE = open_banking.PAYMENT_INITIATION
STATUS_COMPLETED = "AcceptedSettlementCompleted"  # ISO 20022 / UK OB: booked, the money has moved
ISO_4217 = frozenset(MINOR_UNITS)
_KEY = re.compile(r"[\x21-\x7e]{1,64}")  # printable ASCII without space
MAX_BODY = 16 * 1024
_BODY_FIELDS = {
    "instructedAmount",
    "creditorName",
    "creditorAccount",
    "remittanceInformationUnstructured",
    "debtorAccount",
}


class PaymentRefused(Exception):
    """A refusal with its HTTP status and error code (docs/banking-api.md, "Payment errors")."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def check_idempotency_key(value: str | None) -> str:
    if value is None:
        raise PaymentRefused(400, "invalid_request", "the Idempotency-Key header is required")
    if not _KEY.fullmatch(value):
        raise PaymentRefused(400, "invalid_request", "Idempotency-Key must be 1-64 printable ASCII characters")
    return value


def check_strong_authentication(claims: dict[str, Any], required_acr: str) -> None:
    """PSD2 RTS Art. 4-5 at the bank: a payment is executed only on a token whose authentication was
    strong (`acr`) and bound to exactly the payments the token carries (dynamic linking: the hash the
    authorization server recorded when the customer authenticated for them; docs/sca.md). Otherwise
    RFC 9470 insufficient_user_authentication, whose challenge names the acr to ask for."""
    if required_acr == "none":
        return
    if claims.get("acr") != required_acr:
        raise PaymentRefused(
            401, "insufficient_user_authentication", "this payment needs strong customer authentication"
        )
    linked = claims.get("linked_details_hash")
    expected = dynamic_linking.details_hash(claims.get("authorization_details") or [])
    if not isinstance(linked, str) or not hmac.compare_digest(linked.encode(), expected.encode()):
        raise PaymentRefused(
            401,
            "insufficient_user_authentication",
            "the customer's authentication does not cover this payment's details",
        )


def approved_payments(claims: dict[str, Any], action: str) -> list[dict[str, Any]]:
    details = claims.get("authorization_details")
    found = (
        [
            d
            for d in details
            if isinstance(d, dict)
            and d.get("type") == TYPE
            and isinstance(d.get("actions"), list)
            and action in d["actions"]
        ]
        if isinstance(details, list)
        else []
    )
    return found


def parse_body(raw: bytes) -> dict[str, Any]:
    """The payment as sent, normalised like the AS normalises the approved detail."""
    if len(raw) > MAX_BODY:
        raise PaymentRefused(413, "invalid_request", "the request body is too large")
    try:
        body = strict_json.loads_object(raw)
    except strict_json.JsonError as exc:
        raise PaymentRefused(400, "invalid_request", f"the body: {exc}") from None
    unknown = set(body) - _BODY_FIELDS
    if unknown:
        raise PaymentRefused(400, "invalid_request", f"unknown member {sorted(unknown)[0][:40]}")
    for name in ("instructedAmount", "creditorName", "creditorAccount"):
        if name not in body:
            raise PaymentRefused(400, "invalid_request", f"{name} is required")
    try:
        # Any ISO 4217 amount is normalised here; whether the bank books its currency is the ledger's
        # rule (unsupported_currency), and the body must equal an approval anyway.
        out: dict[str, Any] = {
            "instructedAmount": open_banking.amount(body["instructedAmount"], "instructedAmount", ISO_4217),
            "creditorAccount": open_banking.account_ref(body["creditorAccount"], "creditorAccount"),
        }
        if "debtorAccount" in body:
            out["debtorAccount"] = open_banking.account_ref(body["debtorAccount"], "debtorAccount")
    except InvalidDetail as exc:
        raise PaymentRefused(400, "invalid_request", safe_description(exc.message) or "invalid payment") from None
    for name in ("creditorName", "remittanceInformationUnstructured"):
        if name in body:
            if not isinstance(body[name], str) or not 0 < len(body[name]) <= ledger.MAX_TEXT:
                raise PaymentRefused(
                    400, "invalid_request", f"{name} must be a string of 1-{ledger.MAX_TEXT} characters"
                )
            out[name] = body[name]
    return out


def match(approved: list[dict[str, Any]], body: dict[str, Any]) -> dict[str, Any]:
    """The approved detail the body is exactly; 403 if none (the token does not authorise it)."""
    for d in approved:
        same = all(
            body.get(k) == d.get(k)
            for k in ("instructedAmount", "creditorName", "creditorAccount", "remittanceInformationUnstructured")
        )
        if same and ("debtorAccount" not in body or body["debtorAccount"] == d.get("debtorAccount")):
            return d
    raise PaymentRefused(403, "insufficient_scope", "the payment differs from the one the customer approved")


def approval_key(grant_id: str, detail: dict[str, Any]) -> str:
    core = {k: v for k, v in detail.items() if k not in ("actions", "locations")}
    return hashlib.sha256(orjson.dumps([grant_id, core], option=orjson.OPT_SORT_KEYS)).hexdigest()


def fingerprint(grant_id: str, body: dict[str, Any]) -> str:
    """What a retry must repeat: the grant (which token family) and the normalised body."""
    return hashlib.sha256(orjson.dumps([grant_id, body], option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True)
class Request:
    client_id: str
    customer: str
    key: str
    fingerprint: str
    self_url: str  # the payments collection URL; the payment's is self_url + "/" + id
    approval: str = ""  # set once the body matched an approved detail
    detail: dict[str, Any] | None = None


# -- the transaction ------------------------------------------------------------------------------


def _ref_matches(ref: dict[str, str], iban: str) -> bool:
    if "iban" in ref:
        return ref["iban"] == iban
    return iban.startswith("GB") and len(iban) == 22 and iban[8:] == ref.get("sortCodeAccountNumber")


def payers(accounts: list[ledger.Account], detail: dict[str, Any]) -> list[ledger.Account]:
    """Which of the customer's `accounts` the bank takes as the payer of the payment `detail`: open,
    in the payment's currency, not the creditor account (same_account), and — when the detail names
    its `debtorAccount` — that account only. Funds are not a rule here: they are checked when the
    payment is made. One rule for the consent page, which offers (or accepts) only these payers,
    and for the payment, so a customer never approves a payment the bank then refuses for its payer."""
    currency = detail["instructedAmount"]["currency"]
    creditor = _creditor_iban(detail["creditorAccount"])
    named = detail.get("debtorAccount")
    return [
        a
        for a in accounts
        if a.status == ledger.OPEN
        and a.kind != ledger.CLEARING
        and a.currency == currency
        and a.iban != creditor
        and (named is None or _ref_matches(named, a.iban))
    ]


def _debtor(conn: Connection, customer: str, detail: dict[str, Any], currency: str) -> ledger.Account:
    able = payers(ledger.list_accounts(conn, customer), detail)
    if "debtorAccount" in detail:
        if able:
            return able[0]
        raise PaymentRefused(
            422,
            "debtor_account_unavailable",
            "the approved debtor account is not an open account of the customer in this currency "
            "other than the creditor account",
        )
    for a in able:  # no account chosen at consent
        if a.kind == "current":
            return a
    raise PaymentRefused(
        422,
        "debtor_account_unavailable",
        f"the customer has no open current account in {currency} other than the creditor account",
    )


def _creditor_iban(ref: dict[str, str]) -> str:
    if "iban" in ref:
        return ref["iban"]
    # A UK sort code and account number is payable only if it is one of this bank's accounts.
    return make_iban("GB", ledger.BANK_CODE + ref["sortCodeAccountNumber"])


def stored(conn: Connection, req: Request) -> tuple[int, bytes] | None:
    """The recorded response of this (client, key): replayed if the request is the same, else 422."""
    return _stored(conn, req)


def _stored(conn: Connection, req: Request) -> tuple[int, bytes] | None:
    row = conn.execute(
        select(bank_idempotency).where(bank_idempotency.c.client_id == req.client_id, bank_idempotency.c.key == req.key)
    ).first()
    if row is None:
        return None
    if row.fingerprint != req.fingerprint:
        raise PaymentRefused(
            422, "idempotency_key_reused", "this Idempotency-Key was used for a different payment request"
        )
    return row.status, row.response.encode()


def _used(conn: Connection, req: Request) -> tuple[int, bytes] | None:
    """None if the approval is unused. If used: the stored response when it was this very request (a
    concurrent retry that committed after our first look: the payment and its record commit together,
    so this later statement sees the record), else 409."""
    if conn.execute(select(bank_payments.c.id).where(bank_payments.c.approval == req.approval)).first():
        again = _stored(conn, req)
        if again is not None:
            return again
        raise PaymentRefused(409, "consent_already_used", "this payment approval has already been executed")
    return None


def _payment_json(payment_id: str, t: ledger.Transfer, status: str, self_url: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "PaymentId": payment_id,
        "Status": status,
        "CreationDateTime": _iso(t.created_at),
        "InstructedAmount": {"Amount": format_amount(t.amount, t.currency), "Currency": t.currency},
        "CreditorName": t.creditor_name,
        "CreditorAccount": {"iban": t.creditor_iban},
        "DebtorAccount": {"iban": t.debtor_iban},
        "TransactionId": t.id,
    }
    if t.remittance:
        data["RemittanceInformationUnstructured"] = t.remittance
    return {"Data": data, "Links": {"Self": f"{self_url}/{payment_id}"}, "Meta": {}}


def _iso(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def execute_tx(conn: Connection, req: Request) -> tuple[int, bytes]:
    stored = _stored(conn, req) or _used(conn, req)
    if stored is not None:
        return stored
    detail = req.detail
    assert detail is not None and req.approval
    currency = detail["instructedAmount"]["currency"]
    try:
        amount = parse_amount(detail["instructedAmount"]["amount"], currency)
        debtor = _debtor(conn, req.customer, detail, currency)
        t = ledger.transfer(
            conn,
            debtor_account_id=debtor.id,
            amount=amount,
            currency=currency,
            remittance=detail.get("remittanceInformationUnstructured", ""),
            creditor_iban=_creditor_iban(detail["creditorAccount"]),
            creditor_name=detail["creditorName"],
        )
    except LedgerError as exc:
        # PostgreSQL: a concurrent retry may have waited on the debtor's row lock for the payment
        # that took the money; the statements below see it now that it has committed.
        stored = _stored(conn, req) or _used(conn, req)
        if stored is not None:
            return stored
        raise PaymentRefused(422, exc.code, exc.message) from None
    payment_id = ledger.new_id("pay_")
    conn.execute(
        insert(bank_payments).values(
            id=payment_id,
            approval=req.approval,
            client_id=req.client_id,
            customer=req.customer,
            transfer_id=t.id,
            status=STATUS_COMPLETED,
            created_at=t.created_at,
        )
    )
    response = orjson.dumps(_payment_json(payment_id, t, STATUS_COMPLETED, req.self_url))
    conn.execute(
        insert(bank_idempotency).values(
            client_id=req.client_id,
            key=req.key,
            fingerprint=req.fingerprint,
            status=201,
            response=response.decode(),
            created_at=t.created_at,
        )
    )
    return 201, response


def _after_conflict(conn: Connection, req: Request) -> tuple[int, bytes]:
    stored = _stored(conn, req) or _used(conn, req)
    if stored is not None:
        return stored
    raise RuntimeError("a payment insert conflicted, but neither its key nor its approval is stored")


def get_payment(
    conn: Connection, client_id: str, customer: str, payment_id: str, self_url: str
) -> dict[str, Any] | None:
    if not isinstance(payment_id, str) or not payment_id or len(payment_id) > 64 or "\x00" in payment_id:
        return None
    row = conn.execute(
        select(bank_payments).where(
            bank_payments.c.id == payment_id,
            bank_payments.c.client_id == client_id,
            bank_payments.c.customer == customer,
        )
    ).first()
    if row is None:
        return None
    t = ledger.get_transfer(conn, row.transfer_id)
    if t is None:  # pragma: no cover - foreign key
        return None
    return _payment_json(row.id, t, row.status, self_url)


class Payments:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def execute(self, req: Request) -> tuple[int, bytes]:
        try:
            return await self.db.write(execute_tx, req)
        except IntegrityError:
            # A concurrent transaction with the same key or approval committed first (PostgreSQL):
            # ours rolled back entirely; answer from what it wrote.
            return await self.db.read(_after_conflict, req)

    async def replay(self, req: Request) -> tuple[int, bytes] | None:
        return await self.db.read(stored, req)

    async def get(self, client_id: str, customer: str, payment_id: str, self_url: str) -> dict[str, Any] | None:
        return await self.db.read(lambda conn: get_payment(conn, client_id, customer, payment_id, self_url))
