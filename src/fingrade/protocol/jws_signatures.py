"""JWS signatures (RFC 7515) of the three algorithms FAPI 2.0 SP 5.4.1 allows, made and checked with
`cryptography` directly, on key objects built once per distinct key rather than once per token.

- ES256 (RFC 7518 §3.4): ECDSA with SHA-256 on P-256 only; the JWS signature is R || S, 32 octets
  each (big-endian), turned to and from DER by cryptography's `encode_dss_signature` /
  `decode_dss_signature`. Any other length is refused before OpenSSL sees it.
- PS256 (RFC 7518 §3.5): RSASSA-PSS with SHA-256, MGF1 with SHA-256 and a 32-octet salt.
- EdDSA (RFC 8037 §3.1): Ed25519 or Ed448 (RFC 8032).

Keys come from JWKs (RFC 7517). joserfc imports and validates each distinct JWK once, on the cold
path (its members, the point on its curve, its RFC 7638 thumbprint); what the hot path needs, the
cryptography key object and the few members that restrict it, is kept in a bounded LRU cache keyed by
the JWK's canonical JSON. Strength (RSA size, curves) is the caller's policy: `jose.check_key_strength`.

The server's own key is a `Signer`: its private key object is built when the key is loaded, each
protected header once, and tokens keep the exact form joserfc gave them.

A key verifies only under the one algorithm its type allows (EC P-256: ES256, RSA: PS256, OKP
Ed25519/Ed448: EdDSA), and only if its JWK does not say otherwise: `use` other than `sig`
(RFC 7517 §4.2), an `alg` other than the token's (§4.4), or `key_ops` without `verify` (§4.3) make it
refuse. A `VerificationKeySet` picks the key by `kid` exactly as joserfc's KeySet did (see `select`).
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ec import (
    ECDSA,
    SECP256R1,
    EllipticCurvePrivateKey,
    EllipticCurvePublicKey,
)
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PrivateKey, Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.padding import MGF1, PSS
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.hashes import SHA256
from joserfc.errors import JoseError
from joserfc.jwk import import_key

from fingrade.protocol.jose import has_private_members

ALGORITHMS = ("ES256", "PS256", "EdDSA")
KEY_CACHE_SIZE = 4096  # distinct JWKs whose key objects are kept (clients, DPoP keys, our own keys)
KEY_SET_CACHE_SIZE = 1024  # distinct registered JWKS
_KEY_TYPES = ("EC", "RSA", "OKP", "oct")  # what joserfc imports; a JWKS member of another kty is skipped

_ECDSA_SHA256 = ECDSA(SHA256())
_PSS_SHA256 = PSS(mgf=MGF1(SHA256()), salt_length=32)  # RFC 7518 §3.5: salt as long as the hash
_SHA256 = SHA256()
_ES256_HALF = 32  # octets of R and of S on P-256 (RFC 7518 §3.4)


class JwkError(ValueError):
    """A JWK that cannot be a key here (malformed, private, symmetric, or of an unknown type).
    `str(exc)` never repeats the key."""


# -- verification ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class VerificationKey:
    """A public key ready to check signatures, and the JWK members that select and restrict it."""

    kid: str | None  # the JWK's own kid (None when it has none)
    set_kid: str  # the kid a key set knows it by: its own, else its RFC 7638 thumbprint (as joserfc)
    alg: str | None  # the JWK's alg, when it names one
    use: str | None  # the JWK's use, when it names one
    verifies: str | None  # the one algorithm of ALGORITHMS this key may check, None if none
    public: Any  # the cryptography public key object
    thumbprint: str  # RFC 7638 SHA-256 thumbprint (a DPoP key's jkt, RFC 9449 §6.1)


def _algorithm_for(public: Any, jwk: Mapping[str, Any]) -> str | None:
    """The algorithm this key may verify under, after the JWK's own restrictions."""
    if isinstance(public, EllipticCurvePublicKey):
        alg: str | None = "ES256" if isinstance(public.curve, SECP256R1) else None
    elif isinstance(public, RSAPublicKey):
        alg = "PS256"
    elif isinstance(public, (Ed25519PublicKey, Ed448PublicKey)):
        alg = "EdDSA"
    else:
        alg = None  # X25519/X448 are for key agreement, secp256k1 and others are not allowed
    use, designed, key_ops = jwk.get("use"), jwk.get("alg"), jwk.get("key_ops")
    if (use and use != "sig") or (designed and designed != alg) or (key_ops is not None and "verify" not in key_ops):
        return None
    return alg


def _import_public(jwk: dict[str, Any]) -> VerificationKey:
    if has_private_members(jwk):
        raise JwkError("a verification key must be a public JWK")
    if jwk.get("kty") == "oct":
        raise JwkError("symmetric keys never verify signatures here")
    try:
        key = import_key(jwk)
        thumbprint = key.thumbprint()
    except (JoseError, ValueError, TypeError, KeyError):
        raise JwkError("the JWK is not a valid key") from None
    kid, alg, use = jwk.get("kid"), jwk.get("alg"), jwk.get("use")
    return VerificationKey(
        kid=kid,
        set_kid=kid if kid is not None else thumbprint,
        alg=alg,
        use=use,
        verifies=_algorithm_for(key.public_key, jwk),
        public=key.public_key,
        thumbprint=thumbprint,
    )


@functools.lru_cache(maxsize=KEY_CACHE_SIZE)
def _cached_key(canonical: bytes) -> VerificationKey:
    return _import_public(orjson.loads(canonical))


def verification_key(jwk: Mapping[str, Any]) -> VerificationKey:
    """The verification key of a public JWK, built once per distinct JWK (same members, any order).
    Raises JwkError only; failures are not cached."""
    if not isinstance(jwk, Mapping):
        raise JwkError("a JWK must be a JSON object")
    try:
        canonical = orjson.dumps(jwk, option=orjson.OPT_SORT_KEYS)
    except (TypeError, ValueError):  # e.g. an integer orjson cannot write: import it without the cache
        return _import_public(dict(jwk))
    return _cached_key(canonical)


@dataclass(frozen=True, slots=True, eq=False)
class VerificationKeySet:
    """A JWKS (RFC 7517 §5) as verification keys, in its order."""

    keys: tuple[VerificationKey, ...]

    def select(self, kid: str | None, alg: str) -> VerificationKey | None:
        """The key a JWS with this header `kid` and `alg` is checked with (RFC 7515 §4.1.4):
        without a kid, the only key of a one-key set; otherwise the first key known by that kid
        whose `use` (if any) is `sig` and whose `alg` (if any) is the token's. Whether that key can
        verify under `alg` at all is decided afterwards, as joserfc's KeySet did."""
        keys = self.keys
        if kid is None and len(keys) == 1:
            return keys[0]
        for key in keys:
            if key.set_kid == kid and not (key.use and key.use != "sig") and not (key.alg and key.alg != alg):
                return key
        return None


@functools.lru_cache(maxsize=KEY_SET_CACHE_SIZE)
def _cached_key_set(canonical: bytes) -> VerificationKeySet:
    keys = []
    for jwk in orjson.loads(canonical):
        if not isinstance(jwk, dict) or "kty" not in jwk:
            raise JwkError("every member of a JWKS must be a JWK with a kty")
        if jwk["kty"] not in _KEY_TYPES:
            continue  # RFC 7517 §5: a key of a type not understood is ignored, not fatal
        keys.append(verification_key(jwk))
    if not keys:
        raise JwkError("the JWKS has no usable key")
    return VerificationKeySet(tuple(keys))


def key_set(jwks: Mapping[str, Any]) -> VerificationKeySet:
    """The verification keys of a JWKS `{"keys": [...]}`, built once per distinct content (so a
    changed registration never meets a stale set). Raises JwkError only."""
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list):
        raise JwkError("a JWKS must be an object with a keys array")
    try:
        canonical = orjson.dumps(keys)
    except (TypeError, ValueError):
        raise JwkError("the JWKS cannot be read") from None
    return _cached_key_set(canonical)


def _es256_verify(public: EllipticCurvePublicKey, message: bytes, signature: bytes) -> None:
    if len(signature) != 2 * _ES256_HALF:
        raise InvalidSignature
    r = int.from_bytes(signature[:_ES256_HALF], "big")
    s = int.from_bytes(signature[_ES256_HALF:], "big")
    public.verify(encode_dss_signature(r, s), message, _ECDSA_SHA256)


def verify(alg: str, key: VerificationKey, message: bytes, signature: bytes) -> bool:
    """Whether `signature` is a JWS signature of `message` (the signing input) by `key` under `alg`."""
    if alg != key.verifies:
        return False
    public = key.public
    try:
        if alg == "ES256":
            _es256_verify(public, message, signature)
        elif alg == "PS256":
            public.verify(signature, message, _PSS_SHA256, _SHA256)
        else:  # EdDSA: the key is Ed25519 or Ed448 (`verifies` says so)
            public.verify(signature, message)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


# -- signing -----------------------------------------------------------------------------------------


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


class Signer:
    """The server's signing key, ready to produce compact JWS (RFC 7515 §7.1): the cryptography
    private key object is built once, when the key is loaded, and so is each protected header."""

    __slots__ = ("_headers", "_private", "alg", "kid")

    def __init__(self, private_jwk: Mapping[str, Any], alg: str, kid: str) -> None:
        """`private_jwk` is imported and validated by joserfc, and must fit `alg` as joserfc
        requires on every signature (key type and curve, `use`, `alg`, `key_ops`). Raises JwkError."""
        try:
            private = import_key(dict(private_jwk)).private_key
        except (JoseError, ValueError, TypeError, KeyError):
            raise JwkError("the signing JWK is not a valid key") from None
        fits = {
            "ES256": isinstance(private, EllipticCurvePrivateKey) and isinstance(private.curve, SECP256R1),
            "PS256": isinstance(private, RSAPrivateKey),
            "EdDSA": isinstance(private, (Ed25519PrivateKey, Ed448PrivateKey)),
        }
        use, designed, key_ops = private_jwk.get("use"), private_jwk.get("alg"), private_jwk.get("key_ops")
        if not fits.get(alg) or (use and use != "sig") or (designed and designed != alg):
            raise JwkError(f"the signing key cannot sign with {alg}")
        if key_ops is not None and "sign" not in key_ops:
            raise JwkError("the signing key's key_ops do not allow signing")
        self._private: Any = private
        self.alg = alg
        self.kid = kid
        self._headers: dict[str, bytes] = {}

    def _header(self, typ: str) -> bytes:
        """BASE64URL of the protected header {"alg", "kid", "typ"}, written as joserfc writes it
        (members in this order, no spaces, non-ASCII escaped), so tokens keep their exact form."""
        header = self._headers.get(typ)
        if header is None:
            text = json.dumps({"alg": self.alg, "kid": self.kid, "typ": typ}, ensure_ascii=True, separators=(",", ":"))
            header = self._headers[typ] = _b64url(text.encode("ascii"))
        return header

    def signature(self, message: bytes) -> bytes:
        """The JWS signature of `message` (RFC 7518 §3.4, §3.5; RFC 8037 §3.1)."""
        private = self._private
        if self.alg == "ES256":
            r, s = decode_dss_signature(private.sign(message, _ECDSA_SHA256))
            return r.to_bytes(_ES256_HALF, "big") + s.to_bytes(_ES256_HALF, "big")
        if self.alg == "PS256":
            return bytes(private.sign(message, _PSS_SHA256, _SHA256))
        return bytes(private.sign(message))

    def sign(self, typ: str, payload: bytes) -> str:
        """A compact JWS of `payload` with the protected header {"alg", "kid", "typ"}. `typ` is one
        of the caller's constants (each one's header is kept)."""
        signing_input = self._header(typ) + b"." + _b64url(payload)
        return (signing_input + b"." + _b64url(self.signature(signing_input))).decode("ascii")


class VerifiedTokens:
    """Tokens whose signature has been verified, each with the key (or key set) that verified it. A
    resource server presents the same access token on every call (and introspects it, and userinfo
    reads it): the signature of the same bytes by the same key needs checking once. An entry counts
    only while the caller's current key is the very object that verified it; key objects are built
    once per distinct JWK content (`key_set`, `public_key`), so a rotation, a removal or a refetched
    JWKS with other keys makes new ones and every token is verified again. Bounded: the oldest entry
    goes first. What changes with time (expiry, revocation) is the caller's to check on every use."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._entries: dict[str, tuple[str | None, Any, dict[str, Any]]] = {}

    def get(self, token: str) -> tuple[str | None, Any, dict[str, Any]] | None:
        """(kid, the key set that verified it, its claims): the caller checks the key set is current."""
        return self._entries.get(token)

    def add(self, token: str, kid: str | None, keys: Any, claims: dict[str, Any]) -> None:
        if len(self._entries) >= self.size:
            del self._entries[next(iter(self._entries))]
        self._entries[token] = (kid, keys, claims)
