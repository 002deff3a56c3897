"""UK Open Banking account-access-consents (Read/Write API v3.1) below /bank/v1:

- `POST /account-access-consents`: the TPP lodges its intent (201, Status AwaitingAuthorisation);
- `GET /account-access-consents/{ConsentId}`: the consent and its Status;
- `DELETE /account-access-consents/{ConsentId}`: the TPP revokes it (204); its grant and tokens die.

The consent itself lives at the authorization server (its consent resources, reached only over HTTP
with the bank's resource-server credentials: trust.ConsentResources); the customer authorises it
there, in an authorization request naming the ConsentId (`openbanking_intent_id`). This module does
the HTTP side; the UK <-> RFC 9396 mapping is uk_consents.py, the rules are in docs/banking-api.md
("UK Open Banking style consent resources").

Same request checks as every bank endpoint (request_checks.py `verified_claims`: method,
interaction headers, the token with the `accounts` scope, DPoP / certificate binding), and the token
must be the TPP's own client credentials token. A consent of another client answers 404 like an
unknown id.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from fingrade.bank.accounts_api import SCOPE
from fingrade.bank.context import Bank
from fingrade.bank.request_checks import verified_claims
from fingrade.bank.responses import auth_error, json_response
from fingrade.bank.trust import ConsentResources, unavailable
from fingrade.bank.uk_consents import (
    CONSENT_ID,
    MAX_BODY,
    ConsentRefused,
    NotAnAccountAccessConsent,
    consent_json,
    parse_request,
    require_client_credentials,
)
from fingrade.finance.consent_ids import ConsentStatus
from fingrade.protocol import dpop
from fingrade.protocol.body_limit import BodyTooLarge, read_body
from fingrade.protocol.errors import OAuthError
from fingrade.protocol.http import NO_STORE

log = logging.getLogger("fingrade.bank")

PATH = "/account-access-consents"


async def _body(request: Request) -> bytes:
    try:
        return await read_body(request, MAX_BODY)
    except BodyTooLarge:
        raise ConsentRefused("the request body is too large", 413) from None


def _not_found() -> Response:
    return json_response(404, {"error": "not_found", "error_description": "no such consent"})


async def _tpp(request: Request, allow: tuple[str, ...]) -> str | Response:
    """The TPP's client_id from its verified client credentials token, or the error response."""
    claims = await verified_claims(request, allow, SCOPE)
    if isinstance(claims, Response):
        return claims
    try:
        return require_client_credentials(claims)
    except OAuthError as exc:
        return auth_error(request, exc)


def _as_failed(request: Request, exc: OAuthError) -> Response:
    if exc.error == "temporarily_unavailable":
        return auth_error(request, exc)  # 503 with Retry-After
    return json_response(400, {"error": "invalid_request", "error_description": exc.description})


async def create_consent(request: Request) -> Response:
    bank: Bank = request.app.state.bank
    client_id = await _tpp(request, ("POST",))
    if isinstance(client_id, Response):
        return client_id
    try:
        consent = parse_request(await _body(request), bank.clock())
    except ConsentRefused as exc:
        return json_response(exc.status, exc.body())
    try:
        resource = await ConsentResources(bank.trust).create(client_id, [consent.detail], consent.data)
    except OAuthError as exc:
        return _as_failed(request, exc)
    try:
        body = consent_json(resource, bank.url(PATH))
    except ValueError:
        log.error("consent resources: the authorization server's answer to a new consent is malformed")
        return auth_error(request, unavailable("the consent cannot be handled now"))
    self_url = body["Links"]["Self"]
    log.info(
        "account access consent lodged interaction=%s client=%s consent=%s",
        request.state.interaction_id,
        client_id,
        body["Data"]["ConsentId"],
    )
    return json_response(201, body, {**dpop.nonce_headers(bank), "Location": self_url})


async def consent(request: Request) -> Response:
    """GET and DELETE of one consent."""
    bank: Bank = request.app.state.bank
    client_id = await _tpp(request, ("GET", "DELETE"))
    if isinstance(client_id, Response):
        return client_id
    consent_id = request.path_params["consent_id"]
    if not CONSENT_ID.fullmatch(consent_id):
        return _not_found()  # not an id the AS would issue: no need to ask it
    store = ConsentResources(bank.trust)
    try:
        if request.method == "DELETE":
            found = await store.revoke(client_id, consent_id)
        else:
            found = await store.get(client_id, consent_id)
    except OAuthError as exc:
        return _as_failed(request, exc)
    if found is None:
        return _not_found()
    if request.method == "DELETE":
        if found.get("status") not in (ConsentStatus.REJECTED, ConsentStatus.REVOKED):
            # 204 tells the TPP the consent is over: only when the AS says so.
            log.error("consent resources: the authorization server did not confirm the revocation")
            return auth_error(request, unavailable("the consent cannot be handled now"))
        log.info(
            "account access consent revoked by the TPP interaction=%s client=%s consent=%s",
            request.state.interaction_id,
            client_id,
            consent_id,
        )
        return Response(status_code=204, headers={**NO_STORE, **dpop.nonce_headers(bank)})
    try:
        body = consent_json(found, bank.url(PATH))
    except NotAnAccountAccessConsent:
        log.warning("consent resource %s of client %s is not an account access consent", consent_id, client_id)
        return _not_found()
    except ValueError:
        log.error("consent resources: the authorization server's answer for a consent is malformed")
        return auth_error(request, unavailable("the consent cannot be handled now"))
    return json_response(200, body, dpop.nonce_headers(bank))
