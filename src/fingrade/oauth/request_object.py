"""Signed request objects (RFC 9101, JAR) at the PAR endpoint (RFC 9126 §3; FAPI 2.0 Message Signing
5.3.1): the `request` parameter carries the whole authorization request as a JWS signed by the client.

Checked here: the signature, by a key in the *authenticated client's* registered JWKS, with
PS256/ES256/EdDSA only (FAPI 2.0 SP 5.4.1; RS256, HS* and `none` refused); `typ`
oauth-authz-req+jwt or absent (RFC 9101 §4, §10.8); `client_id` equal to the authenticated client
and `iss` too when present (RFC 9126 §3, RFC 9101 §5); `aud` the issuer or an array holding it
(RFC 9101 §6.2); `exp` and `nbf` required, `nbf` at most 60 minutes old and `exp` at most 60 minutes
after it (FAPI 2.0 Message Signing 5.3.1), with 10 s of clock skew for `nbf`; no `request_uri` or
`request` inside (RFC 9126 §3); `jti`, when present, used once. Every failure is
invalid_request_object (RFC 9101 §6.3, RFC 9126 §2.3), status 400.

Only the parameters inside the object are used (RFC 9101 §5, §6.3; RFC 9126 §3): the endpoint
ignores every other form parameter except client authentication.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from fingrade.oauth.client_auth import client_keyset
from fingrade.oauth.context import Core
from fingrade.oauth.models import Client
from fingrade.oauth.onetime_kinds import OneTimeKind
from fingrade.protocol import jwt
from fingrade.protocol.errors import OAuthError
from fingrade.protocol.jose import ALLOWED_ALGS, check_key_strength

TYP = "oauth-authz-req+jwt"  # RFC 9101 §10.8
MAX_NBF_AGE = 3600  # FAPI 2.0 Message Signing 5.3.1: nbf no more than 60 minutes in the past
MAX_LIFETIME = 3600  # ... and exp no more than 60 minutes after nbf
FUTURE_LEEWAY = 10  # FAPI 2.0 SP 5.3.2.1-13 applied to nbf: up to 10 s ahead is clock skew
EXPIRY_LEEWAY = 5
# JWT claims about the object itself, not authorization request parameters.
_JWT_CLAIMS = frozenset({"iss", "aud", "exp", "nbf", "iat", "jti", "sub"})


def invalid_request_object(desc: str, debug: str = "") -> OAuthError:
    return OAuthError("invalid_request_object", desc, 400, debug)


@dataclass(frozen=True)
class RequestObject:
    params: dict[str, str]  # the authorization request parameters it carries
    jti: str | None
    exp: int


def _as_param(name: str, value: Any) -> str:
    """Claims are JSON; authorization request parameters are strings. Objects and arrays (e.g.
    `claims`, `authorization_details`) become their JSON text, as they would be in a form."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    raise invalid_request_object(f"request object claim {name[:40]} has an unsupported type")


def _int_claim(claims: dict[str, Any], name: str) -> int:
    value = claims.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid_request_object(f"the request object needs a numeric {name}")
    return value


def verify_request_object(core: Core, client: Client, token: str) -> RequestObject:
    if not client.jwks:
        raise invalid_request_object("the client has no registered keys to verify a request object")
    try:
        parsed = jwt.parse(token)
    except jwt.JwtError as exc:
        # Also an encrypted (five-part) object: we do not decrypt request objects (RFC 9101 §6.1).
        raise invalid_request_object("the request object is not a well-formed compact JWS", debug=str(exc)) from None
    header = parsed.header
    if header.alg not in ALLOWED_ALGS:
        raise invalid_request_object("the request object must be signed with " + ", ".join(ALLOWED_ALGS))
    typ = header.typ
    if typ is not None and typ.lower() not in (TYP, "application/" + TYP):
        raise invalid_request_object(f"the request object typ must be {TYP}")
    keyset = client_keyset(client)
    try:
        key = jwt.verify(parsed, keyset, ALLOWED_ALGS)
    except jwt.JwtError:
        raise invalid_request_object("the request object signature is not valid by a key of this client") from None
    check_key_strength(key.public, invalid_request_object)
    claims = parsed.claims

    if claims.get("client_id") != client.client_id:
        raise invalid_request_object("the request object client_id must be the authenticated client")
    if "iss" in claims and claims["iss"] != client.client_id:
        raise invalid_request_object("the request object iss must be the client_id")
    aud = claims.get("aud")
    if not (aud == core.issuer or (isinstance(aud, list) and core.issuer in aud)):
        raise invalid_request_object("the request object aud must be, or contain, the issuer identifier")
    now = core.clock()
    exp, nbf = _int_claim(claims, "exp"), _int_claim(claims, "nbf")
    if exp + EXPIRY_LEEWAY <= now:
        raise invalid_request_object("the request object has expired")
    if nbf > now + FUTURE_LEEWAY:
        raise invalid_request_object("the request object is not valid yet (nbf)")
    if nbf < now - MAX_NBF_AGE:
        raise invalid_request_object("the request object nbf is more than 60 minutes in the past")
    if exp - nbf > MAX_LIFETIME:
        raise invalid_request_object("the request object may be valid for at most 60 minutes (exp - nbf)")
    if "iat" in claims:
        iat = _int_claim(claims, "iat")
        if iat > now + FUTURE_LEEWAY:
            raise invalid_request_object("the request object iat is in the future")
    if "request_uri" in claims or "request" in claims:
        raise invalid_request_object("a request object cannot contain request_uri or request")  # RFC 9126 §3
    jti = claims.get("jti")
    if jti is not None and (not isinstance(jti, str) or not 1 <= len(jti) <= 256 or not jti.isprintable()):
        raise invalid_request_object("the request object jti must be a short string")
    params = {k: _as_param(k, v) for k, v in claims.items() if k not in _JWT_CLAIMS}
    return RequestObject(params=params, jti=jti, exp=exp)


async def use_once(core: Core, client: Client, obj: RequestObject) -> None:
    """A request object with a jti is accepted once while it is valid (RFC 9101 §10.3 replay)."""
    if obj.jti is None:
        return
    ttl = max(obj.exp - core.clock() + EXPIRY_LEEWAY, 1)
    if not await core.onetime.add(OneTimeKind.REQUEST_OBJECT_JTI, f"{client.client_id}:{obj.jti}", ttl):
        raise invalid_request_object("this request object has been used before")
