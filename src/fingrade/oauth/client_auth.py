"""Client authentication at the token, PAR, introspection and revocation endpoints.

RFC 6749 §2.3 (one method per request), client_secret_basic / client_secret_post (§2.3.1),
private_key_jwt (RFC 7523 §3, OIDC Core §9), mutual TLS (RFC 8705 §2: tls_client_auth,
self_signed_tls_client_auth) and public clients identified by client_id alone.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import unquote

from fingrade.oauth.context import Core
from fingrade.oauth.models import Client
from fingrade.oauth.mtls import TLS_AUTH_METHODS
from fingrade.oauth.mtls import authenticate as authenticate_certificate
from fingrade.oauth.onetime_kinds import OneTimeKind
from fingrade.oauth.profiles import get_profile
from fingrade.protocol import dpop, jws_signatures, jwt
from fingrade.protocol.crypto import equal, keyed_hash
from fingrade.protocol.errors import invalid_client, invalid_request
from fingrade.protocol.http import HttpRequest
from fingrade.protocol.jose import ALLOWED_ALGS, check_key_strength
from fingrade.protocol.single_use import SingleUseClaims, claim

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = 3600  # exp further out than this is refused (RFC 7523 §3 allows it)
FUTURE_LEEWAY = 10  # FAPI 2.0 SP 5.3.2.1-13: iat/nbf up to 10 s ahead are accepted
EXPIRY_LEEWAY = 5


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise invalid_client("malformed Basic credentials") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise invalid_client("malformed Basic credentials")
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


async def authenticate_client(
    core: Core, request: HttpRequest, params: dict[str, str], single_use: SingleUseClaims | None = None
) -> tuple[Client, str]:
    """Return the authenticated client and the method used, or raise invalid_client (401). With
    `single_use`, a client assertion's jti is claimed by the caller with the request's other
    single-use values (protocol/single_use.py); without, here."""
    auth_header = request.header("authorization")
    basic = _basic_credentials(auth_header) if auth_header else None
    used = [
        m
        for m, present in (
            ("client_secret_basic", basic is not None),
            ("client_secret_post", "client_secret" in params),
            ("private_key_jwt", "client_assertion" in params or "client_assertion_type" in params),
        )
        if present
    ]
    if len(used) > 1:
        raise invalid_request("use exactly one client authentication method (RFC 6749 §2.3)")
    method = used[0] if used else "none"

    if method == "client_secret_basic":
        assert basic is not None
        client_id, secret = basic
        if "client_id" in params and params["client_id"] != client_id:
            raise invalid_client("client_id does not match the authenticated client")
    elif method == "private_key_jwt":
        return await _private_key_jwt(core, params, single_use), method
    else:
        client_id = params.get("client_id", "")
        secret = params.get("client_secret", "")
    if not client_id:
        raise invalid_client("client authentication is required")

    client = await core.store.get_client(client_id)
    if client is None:
        raise invalid_client(debug=f"unknown client {client_id[:64]!r}")
    if method == "none" and client.token_endpoint_auth_method in TLS_AUTH_METHODS:
        # RFC 8705 §2: client_id names the client, the TLS client certificate authenticates it.
        method = client.token_endpoint_auth_method
        authenticate_certificate(
            client.metadata, method, client.jwks, request.client_cert, core.settings.mtls_ca_file, core.clock()
        )
        return client, method
    if client.token_endpoint_auth_method != method:
        raise invalid_client(f"this client must authenticate with {client.token_endpoint_auth_method}")
    if method == "none":
        if not get_profile(client.profile).public:
            raise invalid_client("this client must authenticate")
        return client, method
    if not client.secret_hash or not equal(keyed_hash(core.server_key, secret), client.secret_hash):
        raise invalid_client(debug=f"wrong secret for {client_id!r}")
    return client, method


async def authenticate_with_proof(
    core: Core, request: HttpRequest, params: dict[str, str], endpoint: str
) -> tuple[Client, str, str | None]:
    """Client authentication and the request's DPoP proof, if it has one (RFC 9449 §4.3, `htu` the
    endpoint's URL from our issuer, never from Host): the client, the method and the proof key's
    thumbprint. The assertion's and the proof's jti are claimed together once both are verified
    (protocol/single_use.py), also when one of the checks fails: a value verified stays spent. A
    replay's refusal comes first, the assertion's before the proof's."""
    single_use = SingleUseClaims()
    try:
        client, method = await authenticate_client(core, request, params, single_use)
        proof = dpop.proof_header(request)
        jkt = None
        if proof is not None:
            jkt = await dpop.verify_proof(core, proof, "POST", core.url(endpoint), single_use=single_use)
    finally:
        await single_use.settle(core.onetime)
    return client, method, jkt


async def _private_key_jwt(core: Core, params: dict[str, str], single_use: SingleUseClaims | None) -> Client:
    if params.get("client_assertion_type") != ASSERTION_TYPE:
        raise invalid_client("client_assertion_type must be " + ASSERTION_TYPE)
    try:
        assertion = jwt.parse(params.get("client_assertion", ""))
    except jwt.JwtError as exc:
        raise invalid_client("client_assertion is not a well-formed JWT", debug=str(exc)) from None
    client_id = assertion.claims.get("iss")
    if not client_id:
        raise invalid_client("client_assertion needs iss")
    if "client_id" in params and params["client_id"] != client_id:
        raise invalid_client("client_id does not match the client assertion")
    client = await core.store.get_client(client_id)
    if client is None or client.token_endpoint_auth_method != "private_key_jwt" or not client.jwks:
        raise invalid_client(debug=f"client {client_id[:64]!r} unknown or not private_key_jwt")
    claims = verify_client_jwt(core, assertion, client)
    # RFC 7523 §3 item 7 and OIDC Core §9: jti is single-use for as long as the assertion is valid.
    ttl = max(int(claims["exp"]) - core.clock() + EXPIRY_LEEWAY, 1)
    await claim(
        core.onetime,
        single_use,
        OneTimeKind.ASSERTION_JTI,
        f"{client.client_id}:{claims['jti']}",
        ttl,
        invalid_client("client_assertion has been used before"),
    )
    return client


def client_keyset(client: Client) -> jws_signatures.VerificationKeySet:
    """The client's registered JWKS as verification keys. Building them costs more than checking a
    signature, so they are cached by the JWKS content: a changed registration never meets a stale
    key set. Registration validated the JWKS, so this does not fail for a registered client."""
    return jws_signatures.key_set(client.jwks or {})


def verify_client_jwt(core: Core, token: str | jwt.CompactJwt, client: Client) -> dict[str, Any]:
    """Signature by a key in the client's registered JWKS, then the RFC 7523 §3 claim rules."""
    try:
        parsed = jwt.parse(token) if isinstance(token, str) else token
    except jwt.JwtError as exc:
        raise invalid_client("client_assertion is not a well-formed JWT", debug=str(exc)) from None
    keyset = client_keyset(client)
    try:
        # The key that verified it (by kid, or the only key when there is no kid), whatever the header says.
        key = jwt.verify(parsed, keyset, ALLOWED_ALGS)
    except jwt.JwtError:
        raise invalid_client("client_assertion signature is not valid") from None
    check_key_strength(key.public, invalid_client)
    claims = parsed.claims
    now = core.clock()
    if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
        raise invalid_client("client_assertion iss and sub must both be the client_id")
    # FAPI 2.0 SP 5.3.2.1-8 and draft-ietf-oauth-rfc7523bis: the audience is the issuer, as a string.
    if claims.get("aud") != core.issuer:
        raise invalid_client("client_assertion aud must be the issuer identifier, as a string")
    exp = claims.get("exp")
    if not isinstance(exp, int) or isinstance(exp, bool):
        raise invalid_client("client_assertion needs a numeric exp")
    if exp + EXPIRY_LEEWAY < now:
        raise invalid_client("client_assertion has expired")
    if exp > now + MAX_ASSERTION_LIFETIME + FUTURE_LEEWAY:
        raise invalid_client("client_assertion exp is too far in the future")
    for name in ("iat", "nbf"):
        value = claims.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value > now + FUTURE_LEEWAY:
            raise invalid_client(f"client_assertion {name} is invalid or in the future")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 1 <= len(jti) <= 256 or not jti.isprintable():
        raise invalid_client("client_assertion needs a jti")
    return claims
