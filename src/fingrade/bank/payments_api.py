"""The bank's payment initiation API (HTTP layer): POST /payments and GET /payments/{id} below
/bank/v1. Same request checks as the account API (request_checks.py `verified_claims`: interaction
headers, then the token through `authorize_resource` with this resource server's verifier), scope
`payments`; the rules are in payments.py and docs/banking-api.md ("Payments")."""

from __future__ import annotations

from dataclasses import replace

import orjson
from starlette.requests import Request
from starlette.responses import Response

from fingrade.bank.context import Bank
from fingrade.bank.payments import (
    MAX_BODY,
    SCOPE,
    PaymentRefused,
    Payments,
    approval_key,
    approved_payments,
    check_idempotency_key,
    check_strong_authentication,
    fingerprint,
    match,
    parse_body,
)
from fingrade.bank.payments import Request as PaymentRequest
from fingrade.bank.request_checks import verified_claims
from fingrade.bank.responses import auth_error, json_response
from fingrade.protocol import dpop
from fingrade.protocol.body_limit import BodyTooLarge, read_body
from fingrade.protocol.errors import insufficient_scope, insufficient_user_authentication
from fingrade.protocol.http import NO_STORE


def _refused(request: Request, exc: PaymentRefused, required_acr: str) -> Response:
    if exc.error == "insufficient_scope":
        return auth_error(request, insufficient_scope(exc.description))
    if exc.error == "insufficient_user_authentication":
        return auth_error(request, insufficient_user_authentication(exc.description, required_acr))
    return json_response(exc.status, exc.body())


async def create_payment(request: Request) -> Response:
    bank: Bank = request.app.state.bank
    claims = await verified_claims(request, ("POST",), SCOPE)
    if isinstance(claims, Response):
        return claims
    try:
        approved = approved_payments(claims, "initiate")
        if not approved or not isinstance(claims.get("grant_id"), str):
            raise PaymentRefused(403, "insufficient_scope", "the token carries no payment_initiation approval")
        check_strong_authentication(claims, bank.settings.bank_payment_acr)
        key = check_idempotency_key(request.headers.get("idempotency-key"))
        try:
            raw = await read_body(request, MAX_BODY)  # streamed: never more than the limit is read
        except BodyTooLarge:
            raise PaymentRefused(413, "invalid_request", "the request body is too large") from None
        body = parse_body(raw)
        payments = Payments(bank.ledger.db)
        req = PaymentRequest(
            client_id=str(claims["client_id"]),
            customer=str(claims["sub"]),
            key=key,
            fingerprint=fingerprint(claims["grant_id"], body),
            self_url=bank.url("/payments"),
        )
        # A retry is answered from its record first (or refused if the body changed); then the body
        # must be the approved payment. execute() checks the record again inside its transaction.
        replay = await payments.replay(req)
        if replay is not None:
            status, raw = replay
        else:
            detail = match(approved, body)
            req = replace(req, approval=approval_key(claims["grant_id"], detail), detail=detail)
            status, raw = await payments.execute(req)
    except PaymentRefused as exc:
        return _refused(request, exc, bank.settings.bank_payment_acr)
    headers = {**NO_STORE, **dpop.nonce_headers(bank)}
    if status == 201:
        headers["Location"] = orjson_self(raw)
    return Response(raw, status, headers=headers, media_type="application/json")


def orjson_self(raw: bytes) -> str:
    return str(orjson.loads(raw)["Links"]["Self"])


async def get_payment(request: Request) -> Response:
    bank: Bank = request.app.state.bank
    claims = await verified_claims(request, ("GET",), SCOPE)
    if isinstance(claims, Response):
        return claims
    if not approved_payments(claims, "status"):
        return auth_error(request, insufficient_scope("the token carries no payment_initiation status approval"))
    found = await Payments(bank.ledger.db).get(
        str(claims["client_id"]), str(claims["sub"]), request.path_params["payment_id"], bank.url("/payments")
    )
    if found is None:
        return json_response(404, {"error": "not_found", "error_description": "no such payment"})
    return json_response(200, found, dpop.nonce_headers(bank))
