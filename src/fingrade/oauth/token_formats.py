"""Minting and checking tokens: RFC 9068 JWT access tokens, OIDC ID tokens, opaque refresh tokens."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from fingrade.oauth.authn_level import ACR_PASSWORD, PWD
from fingrade.oauth.context import Core
from fingrade.protocol import jwt
from fingrade.protocol.crypto import b64url, new_token
from fingrade.protocol.errors import invalid_token
from fingrade.protocol.jose import ALLOWED_ALGS
from fingrade.protocol.jws_signatures import Signer


def _sign(signer: Signer, typ: str, claims: dict[str, Any]) -> str:
    """A compact JWS with the protected header {"alg", "kid", "typ"} of the active key."""
    return signer.sign(typ, orjson.dumps(claims))


async def mint_access_token(
    core: Core,
    *,
    sub: str,
    client_id: str,
    scope: str,
    grant_id: str | None,
    auth_time: int | None = None,
    extra: dict[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """RFC 9068 §2.2: iss, exp, aud, sub, client_id, iat, jti (+ scope, auth_time)."""
    view = await core.keys.view()
    now = core.clock()
    claims: dict[str, Any] = {
        "iss": core.issuer,
        "sub": sub,
        "aud": core.settings.audience,
        "client_id": client_id,
        "iat": now,
        "exp": now + core.settings.access_token_ttl,
        "jti": new_token(16),
        "scope": scope,
    }
    if auth_time is not None:
        claims["auth_time"] = auth_time
    if grant_id is not None:
        claims["grant_id"] = grant_id
    if extra:
        claims.update(extra)
    return _sign(view.signer, "at+jwt", claims), claims


def token_hash_claim(value: str, alg: str) -> str:
    """OIDC Core §3.1.3.6 at_hash: left half of the hash the JWS alg uses (SHA-512 for EdDSA/Ed25519)."""
    digest = hashlib.sha512(value.encode()).digest() if alg == "EdDSA" else hashlib.sha256(value.encode()).digest()
    return b64url(digest[: len(digest) // 2])


async def mint_id_token(
    core: Core,
    *,
    sub: str,
    client_id: str,
    nonce: str | None,
    auth_time: int,
    access_token: str | None,
    claims: dict[str, Any] | None = None,
    acr: str = ACR_PASSWORD,
    amr: list[str] | None = None,
) -> str:
    view = await core.keys.view()
    now = core.clock()
    body: dict[str, Any] = {
        "iss": core.issuer,
        "sub": sub,
        "aud": client_id,
        "azp": client_id,
        "iat": now,
        "exp": now + core.settings.id_token_ttl,
        "auth_time": auth_time,
        "acr": acr,
        "amr": amr or [PWD],
    }
    if nonce is not None:
        body["nonce"] = nonce  # returned unmodified (OIDC Core §3.1.3.6)
    if access_token is not None:
        body["at_hash"] = token_hash_claim(access_token, view.active.alg)
    if claims:
        body.update(claims)
    return _sign(view.signer, "JWT", body)


async def sign_server_jwt(core: Core, typ: str, claims: dict[str, Any]) -> str:
    """A JWT signed with the server's active key, as ID tokens are (JARM responses, RFC 9701 responses)."""
    view = await core.keys.view()
    return _sign(view.signer, typ, claims)


def new_refresh_token() -> str:
    return new_token(32)


async def _verified_claims(core: Core, token: str) -> dict[str, Any]:
    try:
        parsed = jwt.parse(token)
    except jwt.JwtError:
        raise invalid_token("the access token is malformed") from None
    if (parsed.header.typ or "").lower() not in ("at+jwt", "application/at+jwt"):
        raise invalid_token("not an access token")  # RFC 9068 §4: reject other JWT types
    keys = await core.keys.verification_key(parsed.header.kid)
    try:
        jwt.verify(parsed, keys, ALLOWED_ALGS)
    except jwt.JwtError:
        raise invalid_token("the access token signature is not valid") from None
    core.keys.verified.add(token, parsed.header.kid, keys, parsed.claims)
    return dict(parsed.claims)


async def verify_access_token(core: Core, token: str) -> dict[str, Any]:
    """Check one of our access tokens: signature, typ, iss, aud, exp, then revocation status."""
    seen = core.keys.verified.get(token)
    if seen is not None and seen[1] is await core.keys.verification_key(seen[0]):
        claims = dict(seen[2])  # parsed and verified before by the keys still in use
    else:
        claims = await _verified_claims(core, token)
    now = core.clock()
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    if claims.get("iss") != core.issuer or core.settings.audience not in auds:
        raise invalid_token("the access token was not issued for this audience")
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= now:  # our tokens carry integer NumericDates
        raise invalid_token("the access token has expired")
    if not await core.store.token_status(str(claims.get("jti")), claims.get("grant_id")):
        raise invalid_token("the access token has been revoked")
    # A client_credentials token has no grant to revoke: it dies with its client (RFC 7592 §2.3).
    if claims.get("grant_id") is None and await core.store.get_client(str(claims.get("client_id"))) is None:
        raise invalid_token("the client of this access token no longer exists")
    return claims
