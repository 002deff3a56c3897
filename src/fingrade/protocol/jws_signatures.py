"""JWS signatures (RFC 7515) of the three algorithms FAPI 2.0 SP 5.4.1 allows, checked with
`cryptography` directly, on key objects built once per distinct key rather than once per token.

- ES256 (RFC 7518 §3.4): ECDSA with SHA-256 on P-256 only; the JWS signature is R || S, 32 octets
  each (big-endian), turned into DER by cryptography's `encode_dss_signature`. Any other length is
  refused before OpenSSL sees it.
- PS256 (RFC 7518 §3.5): RSASSA-PSS with SHA-256, MGF1 with SHA-256 and a 32-octet salt.
- EdDSA (RFC 8037 §3.1): Ed25519 or Ed448 (RFC 8032).

Keys come from JWKs (RFC 7517). joserfc imports and validates each distinct JWK once, on the cold
path (its members, the point on its curve, its RFC 7638 thumbprint); what the hot path needs, the
cryptography key object and the few members that restrict it, is kept in a bounded LRU cache keyed by
the JWK's canonical JSON. Strength (RSA size, curves) is the caller's policy: `jose.check_key_strength`.

A key verifies only under the one algorithm its type allows (EC P-256: ES256, RSA: PS256, OKP
Ed25519/Ed448: EdDSA), and only if its JWK does not say otherwise: `use` other than `sig`
(RFC 7517 §4.2), an `alg` other than the token's (§4.4), or `key_ops` without `verify` (§4.3) make it
refuse. A `VerificationKeySet` picks the key by `kid` exactly as joserfc's KeySet did (see `select`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ec import ECDSA, SECP256R1, EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.padding import MGF1, PSS
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
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
