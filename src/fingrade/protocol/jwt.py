"""The one entry point for every compact JWS this server or the bank reads: access tokens, DPoP
proofs, client assertions, request objects.

`parse` splits the compact serialization (RFC 7515 §7.1), decodes each part strictly and checks the
SHAPE of the protected header and of the claims set before any caller reads them: the header is a
JSON object with the registered members of the right JSON types (RFC 7515 §4.1), `crit` is honoured
(§4.1.11: a non-empty list of extension names, and we understand none, so it is refused), the claims
set is a JSON object (RFC 7519 §7.2 step 10) whose registered claims have their registered types
(NumericDates are finite numbers between 1970 and 9999, so date conversions cannot overflow).
Duplicate members anywhere are refused (RFC 7515 §5.2 step 4, RFC 7519 §4) by `strict_json`.

`verify` then checks the already-parsed token, never parsing it again: the header rules of
`HeaderRules` (the sizes, registered members only, URL-valued `jku`/`x5u`), the algorithm against the
caller's list, the key (one key, or chosen from a key set by `kid`), and the signature, which
`jws_signatures` checks with `cryptography` on cached key objects. These are the rules joserfc applied
when it verified tokens here, so the same tokens are accepted and refused (the differential tests in
tests/unit/test_jws_signature_rules.py hold the two side by side).

Every failure of either, whatever base64, JSON, Unicode or cryptography raised inside, is one
`JwtError`, which each caller turns into its own protocol error (invalid_token, invalid_dpop_proof,
invalid_client, invalid_request_object).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from fingrade.protocol import jws_signatures
from fingrade.protocol.jws_signatures import VerificationKey, VerificationKeySet
from fingrade.protocol.strict_json import JsonError, loads_object

MAX_LENGTH = 16384  # characters of a whole compact JWS unless the caller bounds it tighter
MIN_NUMERIC_DATE = 0
MAX_NUMERIC_DATE = 253402300799  # 9999-12-31T23:59:59Z: the largest instant datetime can hold
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")

# RFC 7515 §4.1.11: names defined by JWS and JWA must not appear in crit.
_DEFINED_HEADERS = frozenset(
    {
        "alg",
        "jku",
        "jwk",
        "kid",
        "x5u",
        "x5c",
        "x5t",
        "x5t#S256",
        "typ",
        "cty",
        "crit",
        "enc",
        "zip",
        "epk",
        "apu",
        "apv",
        "iv",
        "tag",
        "p2s",
        "p2c",
    }
)


class JwtError(ValueError):
    """A compact JWS refused by shape or signature. `str(exc)` is a short description safe to show
    the sender (it never repeats the input); callers map it to their protocol's error."""


@dataclass(frozen=True, slots=True)
class JoseHeader:
    """The protected header, its registered members typed (RFC 7515 §4.1); `members` holds all."""

    alg: str
    kid: str | None
    typ: str | None
    jwk: dict[str, Any] | None
    x5c: tuple[str, ...] | None
    x5t_s256: str | None
    members: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CompactJwt:
    token: str
    header: JoseHeader
    claims: dict[str, Any]  # a JSON object whose registered claims have their registered types
    signing_input: bytes  # BASE64URL(header) '.' BASE64URL(payload), what the signature covers
    signature: bytes


# -- shapes ---------------------------------------------------------------------------------------------


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _is_object(value: Any) -> bool:
    return isinstance(value, dict)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def _is_numeric_date(value: Any) -> bool:
    """RFC 7519 §2 NumericDate: a JSON number (not a boolean), here between 1970 and 9999."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and MIN_NUMERIC_DATE <= value <= MAX_NUMERIC_DATE
    )


def _is_audience(value: Any) -> bool:
    return isinstance(value, str) or _is_str_list(value)  # RFC 7519 §4.1.3


def _is_confirmation(value: Any) -> bool:
    """RFC 7800 §3.1 `cnf`: an object; the members we read are RFC 9449 §6.1 `jkt` and RFC 8705 §3.1
    `x5t#S256` (strings) and RFC 7800 §3.2 `jwk` (an object)."""
    return (
        isinstance(value, dict)
        and all(isinstance(value[name], str) for name in ("jkt", "x5t#S256") if name in value)
        and ("jwk" not in value or isinstance(value["jwk"], dict))
    )


_HEADER_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "alg": (_is_name, "a non-empty string"),
    "kid": (_is_str, "a string"),
    "typ": (_is_str, "a string"),
    "cty": (_is_str, "a string"),
    "jku": (_is_str, "a string"),
    "x5u": (_is_str, "a string"),
    "jwk": (_is_object, "a JSON object"),
    "x5c": (_is_str_list, "a non-empty list of strings"),
    "x5t": (_is_str, "a string"),
    "x5t#S256": (_is_str, "a string"),
    "crit": (_is_str_list, "a non-empty list of strings"),
    # RFC 7797: an unencoded payload needs crit, which we refuse; b64 may only restate the default.
    "b64": (lambda v: v is True, "true"),
}

_CLAIM_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    **{
        name: (_is_str, "a string")
        for name in (
            "iss",
            "sub",
            "jti",  # RFC 7519 §4.1
            "client_id",
            "scope",  # RFC 8693 §4.3, §4.2 (RFC 9068 §2.2)
            "htm",
            "htu",
            "ath",  # RFC 9449 §4.2 (a bad `nonce` is answered use_dpop_nonce, §8: dpop.py)
            "azp",
            "acr",
            "sid",
            "at_hash",  # OIDC Core §2, §3.1.3.6
            "grant_id",
        )
    },  # ours: the token family of an access token
    "aud": (_is_audience, "a string or a non-empty list of strings"),
    **{name: (_is_numeric_date, "a NumericDate") for name in ("exp", "nbf", "iat", "auth_time")},
    "cnf": (_is_confirmation, "a confirmation object"),
    "amr": (_is_str_list, "a non-empty list of strings"),
    "authorization_details": (lambda v: isinstance(v, list), "a JSON array"),  # RFC 9396 §2
}


def _check_members(obj: dict[str, Any], rules: dict[str, tuple[Callable[[Any], bool], str]], where: str) -> None:
    for name, (ok, expected) in rules.items():
        if name in obj and not ok(obj[name]):
            raise JwtError(f"{where} member {name} must be {expected}")


def _check_crit(header: dict[str, Any], understood: Collection[str]) -> None:
    """RFC 7515 §4.1.11: every name in crit must be an extension that is present and understood."""
    crit = header.get("crit")
    if crit is None:
        return
    if len(set(crit)) != len(crit) or any(name in _DEFINED_HEADERS for name in crit):
        raise JwtError("header member crit must list distinct extension names")
    if any(name not in header for name in crit):
        raise JwtError("header member crit names a member that is absent")
    if any(name not in understood for name in crit):
        raise JwtError("header member crit names an extension this server does not understand")


def _segment(text: str, what: str) -> bytes:
    """RFC 7515 §2 base64url without padding, in its canonical form only."""
    if not _SEGMENT.fullmatch(text) or len(text) % 4 == 1:
        raise JwtError(f"the {what} is not base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise JwtError(f"the {what} is not base64url") from None
    # Unused trailing bits must be zero: one value, one encoding (as joserfc checks on verification).
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != text:
        raise JwtError(f"the {what} is not canonical base64url")
    return raw


def parse(token: str, *, max_length: int = MAX_LENGTH, understood_crit: Collection[str] = ()) -> CompactJwt:
    """Split, decode and shape-check a compact JWS carrying a JWT. Raises JwtError only."""
    if not isinstance(token, str) or not token or len(token) > max_length or not token.isascii():
        raise JwtError("the JWT is empty, too long or not ASCII")
    parts = token.split(".")
    if len(parts) != 3:  # also a five-part JWE: nothing here decrypts (RFC 7516 §9)
        raise JwtError("a JWT must be a compact JWS of three parts")
    # An empty payload (detached content, RFC 7515 App. F) is no JSON object and fails below; an
    # empty signature (alg none) is well-formed here and refused by each caller's alg policy.
    head_b64, body_b64, sig_b64 = parts
    try:
        header = loads_object(_segment(head_b64, "header"))
    except JsonError as exc:
        raise JwtError(f"the JWT header: {exc}") from None
    _check_members(header, _HEADER_TYPES, "header")
    if "alg" not in header:
        raise JwtError("header member alg is required")  # RFC 7515 §4.1.1
    _check_crit(header, understood_crit)
    try:
        claims = loads_object(_segment(body_b64, "payload"))
    except JsonError as exc:
        raise JwtError(f"the JWT claims: {exc}") from None
    _check_members(claims, _CLAIM_TYPES, "claim")
    x5c = header.get("x5c")
    return CompactJwt(
        token=token,
        header=JoseHeader(
            alg=header["alg"],
            kid=header.get("kid"),
            typ=header.get("typ"),
            jwk=header.get("jwk"),
            x5c=tuple(x5c) if x5c is not None else None,
            x5t_s256=header.get("x5t#S256"),
            members=header,
        ),
        claims=claims,
        signing_input=f"{head_b64}.{body_b64}".encode("ascii"),
        signature=_segment(sig_b64, "signature"),
    )


# RFC 7515 §4.1 and RFC 7797 §3: the header members a strict verifier knows (`HeaderRules.registered_only`).
REGISTERED_HEADERS = frozenset(
    {"alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit", "b64"}
)
MAX_HEADER_SEGMENT = 512  # base64url characters of a protected header, unless the caller allows more
MAX_PAYLOAD_SEGMENT = 128000  # ... of the payload
MAX_SIGNATURE_SEGMENT = 1024  # ... of the signature (an RSA key of up to 6144 bits)


@dataclass(frozen=True, slots=True)
class HeaderRules:
    """What `verify` asks of the protected header, beyond the shape `parse` checked."""

    registered_only: bool = True  # refuse members not in REGISTERED_HEADERS (RFC 9449 §4.3 proofs: False)
    max_header_segment: int = MAX_HEADER_SEGMENT


STRICT = HeaderRules()


def _check_header(parsed: CompactJwt, rules: HeaderRules) -> None:
    token = parsed.token
    head_end, sig_start = token.index("."), token.rindex(".") + 1
    payload_length = sig_start - 1 - (head_end + 1)
    if (
        head_end > rules.max_header_segment
        or payload_length > MAX_PAYLOAD_SEGMENT
        or len(token) - sig_start > MAX_SIGNATURE_SEGMENT
        or len(token) > rules.max_header_segment + MAX_PAYLOAD_SEGMENT + MAX_SIGNATURE_SEGMENT
    ):
        raise JwtError("the JWT is too large")
    members = parsed.header.members  # crit was settled by parse (_check_crit): nothing is understood
    if rules.registered_only and not members.keys() <= REGISTERED_HEADERS:
        raise JwtError("the JWT header has members this server does not know")
    for name in ("jku", "x5u"):  # RFC 7515 §4.1.2, §4.1.5: URLs
        if name in members and not members[name].startswith(("http://", "https://")):
            raise JwtError(f"header member {name} must be a URL")


def verify(
    parsed: CompactJwt,
    key: VerificationKey | VerificationKeySet,
    algorithms: Collection[str],
    rules: HeaderRules = STRICT,
) -> VerificationKey:
    """Check the signature of a parsed JWT by `key` (a key, or a key set chosen from by kid) under
    one of `algorithms` (an empty collection allows none); return the key that verified it.
    Raises JwtError only."""
    _check_header(parsed, rules)
    alg = parsed.header.alg
    if alg not in algorithms:
        raise JwtError("the JWT algorithm is not accepted")
    chosen = key.select(parsed.header.kid, alg) if isinstance(key, VerificationKeySet) else key
    if chosen is None or not jws_signatures.verify(alg, chosen, parsed.signing_input, parsed.signature):
        raise JwtError("the JWT signature is not valid")
    return chosen
