"""The checks every bank endpoint makes before its own: the method, the interaction headers
(fapi_headers.py), then the access token through the protocol core's resource rules
(`protocol.resource.authorize_resource`: header-only token, Bearer / DPoP scheme, DPoP proof with
`htu` built from `bank_url`, binding, certificate binding) with this resource server's own token
verifier (trust.py: JWKS + introspection), then the query string (query.py)."""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from fingrade.bank import query
from fingrade.bank.context import PREFIX, Bank
from fingrade.bank.fapi_headers import AUTH_DATE, CUSTOMER_IP, auth_date, customer_ip
from fingrade.bank.responses import auth_error, json_response
from fingrade.protocol.asgi import to_core
from fingrade.protocol.errors import OAuthError, method_not_allowed
from fingrade.protocol.resource import authorize_resource

log = logging.getLogger("fingrade.bank")


def _sub_path(request: Request) -> str:
    """The request path below the API prefix, exactly as sent (for the DPoP htu)."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    path = raw.decode("ascii", "replace")
    return path[len(PREFIX) :] if path.startswith(PREFIX) else path


async def verified_claims(
    request: Request, allow: tuple[str, ...], scope: str, params: frozenset[str] = query.NONE
) -> dict[str, Any] | Response:
    """The method, the interaction headers (a malformed one is the client's error whatever the
    token), then the access token with `scope` through the core's resource rules, then the query
    string, which may hold only the endpoint's `params` (query.py; `request.state.query` has them).
    The token's claims, or the error response to send."""
    bank: Bank = request.app.state.bank
    try:
        if request.method not in allow:
            raise method_not_allowed(", ".join(allow))
        ip = customer_ip(request.headers.get(CUSTOMER_IP))
        date = auth_date(request.headers.get(AUTH_DATE))
    except OAuthError as exc:
        return json_response(exc.status, exc.body(), exc.headers)
    # RFC 8705 §3 / FAPI 2.0 SP 5.3.4-5: the certificate a certificate-bound token must come with, from
    # our mTLS listener or a trusted proxy's header (which the core never sees itself).
    settings = bank.settings
    try:
        core_request = await to_core(
            request, tuple(settings.trusted_proxies), read=False, cert_header=settings.mtls_cert_header.lower()
        )
        claims = await authorize_resource(
            bank,
            core_request,
            scope,
            bank.url(_sub_path(request)),
            verify=bank.trust.verify,
            accept_unbound=settings.bank_accept_bearer_tokens,
        )
    except OAuthError as exc:
        return auth_error(request, exc)
    try:
        request.state.query = query.parse(request.scope.get("query_string", b""), params)
    except OAuthError as exc:
        return json_response(exc.status, exc.body(), exc.headers)
    request.state.client_id = claims.get("client_id")
    if ip or date:
        log.info(
            "bank api call interaction=%s client=%s customer_ip=%s auth_date=%s",
            request.state.interaction_id,
            claims.get("client_id"),
            ip or "-",
            date or "-",
        )
    return claims
