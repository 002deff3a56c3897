"""The access-token rules of protected resources, shared by every resource server (the AS's userinfo
and introspection-backed resources, the bank): RFC 6750 Bearer, RFC 9449 §7 DPoP and RFC 8705 §3
certificate-bound tokens, and the RFC 6750 §3 / RFC 9449 §7.1 error challenges."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fingrade.protocol import cert_binding, dpop
from fingrade.protocol.dpop import ProofContext
from fingrade.protocol.errors import OAuthError, insufficient_scope, invalid_request, invalid_token
from fingrade.protocol.http import NO_STORE, HttpRequest, HttpResponse, is_form, parse_params


def bearer_challenge(exc: OAuthError) -> str:
    """RFC 6750 §3: WWW-Authenticate with error and description (no error for a missing token, §3.1)."""
    parts = ['Bearer realm="fingrade"']
    if exc.error != "missing_token":
        parts.append(f'error="{exc.error}"')
        if exc.description:
            parts.append(f'error_description="{exc.description}"')
        parts.extend(f'{k}="{v}"' for k, v in exc.challenge_params.items())
    return ", ".join(parts)


def extract_token(request: HttpRequest) -> tuple[str, str]:
    """(scheme, token) from the Authorization header only (FAPI 2.0 SP 5.3.4; RFC 6750 §2.3 query
    tokens refused). Scheme names are case-insensitive (RFC 9110 §11.1); Bearer or DPoP."""
    if b"access_token=" in request.query:
        raise invalid_request("access tokens in the query string are not accepted")
    if request.body and is_form(request) and "access_token" in parse_params(request.body):
        raise invalid_request("send the access token in the Authorization header")
    header = request.header("authorization")
    if not header:
        raise OAuthError("missing_token", "", 401)
    scheme, _, token = header.partition(" ")
    token = token.strip()
    scheme = scheme.lower()
    if "," in token:
        # Repeated Authorization headers arrive joined with ", " (a token68 has no comma):
        # more than one credential is a malformed request (RFC 6750 §3.1; RFC 9449 §7.2).
        raise invalid_request("send exactly one Authorization header")
    if scheme not in ("bearer", "dpop") or not token or " " in token:
        raise invalid_token("use the Bearer or DPoP authorization scheme")
    return scheme, token


TokenVerifier = Callable[[str], Awaitable[dict[str, Any]]]


async def authorize_resource(
    core: ProofContext,
    request: HttpRequest,
    scope: str,
    url: str,
    verify: TokenVerifier,
    accept_unbound: bool = True,
) -> dict[str, Any]:
    """Check the access token of a resource request to `url` (built from the configured public URL,
    for DPoP htu): scheme, DPoP proof and binding, certificate binding, the token itself and `scope`.
    `verify` checks the token and returns its claims: the authorization server passes its own check,
    a separate resource server one that trusts the AS only through JWKS and introspection.
    `accept_unbound=False`: only sender-constrained tokens (DPoP- or certificate-bound) are accepted
    (FAPI 2.0 SP 5.3.4); an unbound token is invalid_token with a DPoP challenge (RFC 9449 §7.1)."""
    scheme, token = extract_token(request)
    if scheme == "dpop":
        try:
            # RFC 9449 §7.1 / §4.3 item 12: a proof for this request and this token, by the bound key.
            jkt = await dpop.verify_proof(core, dpop.proof_header(request), request.method, url, access_token=token)
            claims = await verify(token)
            bound = (claims.get("cnf") or {}).get("jkt")
            if bound is None:
                raise invalid_token(
                    "the access token is not DPoP-bound" + ("; use the Bearer scheme" if accept_unbound else "")
                )
            if bound != jkt:
                raise dpop.invalid_dpop_proof("the DPoP proof key is not the key the access token is bound to")
        except dpop.DPoPError:
            raise
        except OAuthError as exc:
            raise dpop.DPoPError(exc.error, exc.description, exc.status) from None
    else:
        claims = await verify(token)
        if isinstance(claims.get("cnf"), dict) and "jkt" in claims["cnf"]:
            # RFC 9449 §7.2: a DPoP-bound token presented as a bearer token is refused.
            raise dpop.DPoPError("invalid_token", "this access token is DPoP-bound; use the DPoP scheme", 401)
        x5t = cert_binding.bound_thumbprint(claims)
        if x5t is not None and not cert_binding.same_certificate(request.client_cert, x5t):
            # RFC 8705 §3: only over mutual TLS with the certificate the token is bound to.
            raise cert_binding.certificate_mismatch()
        if x5t is None and not accept_unbound:
            # FAPI 2.0 SP 5.3.4: a stolen unbound token must be worth nothing here. The challenge says
            # how to come back: with a DPoP-bound token (RFC 9449 §7.1).
            raise dpop.DPoPError(
                "invalid_token",
                "only sender-constrained access tokens are accepted: use a DPoP-bound or certificate-bound token",
                401,
            )
    if scope not in str(claims.get("scope", "")).split():
        refused = insufficient_scope(f"the token lacks the {scope} scope")
        raise dpop.DPoPError(refused.error, refused.description, refused.status) if scheme == "dpop" else refused
    return claims


def resource_error(exc: OAuthError) -> HttpResponse:
    if isinstance(exc, dpop.DPoPError):
        # RFC 9449 §7.1: 401 with a DPoP challenge (invalid_dpop_proof included); 403 stays 403.
        status = 403 if exc.error == "insufficient_scope" else 401
        challenge = dpop.challenge(exc)
    else:
        status = 401 if exc.error in ("missing_token", "invalid_token") else exc.status
        challenge = bearer_challenge(exc)
    # Error-specific headers (the DPoP-Nonce of use_dpop_nonce, RFC 9449 §9) are kept.
    headers = {**NO_STORE, **exc.headers, "WWW-Authenticate": challenge}
    body = (
        exc.body()
        if exc.error != "missing_token"
        else {"error": "invalid_token", "error_description": "an access token is required"}
    )
    return HttpResponse(status, headers, json=body)
