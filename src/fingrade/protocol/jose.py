"""JOSE policy shared by every place that verifies or accepts keys (the signatures themselves are
`protocol/jws_signatures.py`; joserfc validates the JWKs clients register)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, SECP384R1, SECP521R1, EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.asymmetric.x448 import X448PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from fingrade.protocol.errors import OAuthError

# FAPI 2.0 SP 5.4.1-1: PS256, ES256 and EdDSA only. RS256, HS* and `none` are refused everywhere.
ALLOWED_ALGS = ("ES256", "PS256", "EdDSA")
_PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def has_private_members(jwk: dict[str, Any]) -> bool:
    """Private or symmetric key material in a JWK (RFC 7518 §6): refused wherever a public key is expected."""
    return bool(_PRIVATE_MEMBERS & jwk.keys())


def check_key_strength(public: Any, error: Callable[[str], OAuthError]) -> None:
    """FAPI 2.0 SP 5.4.1: RSA keys at least 2048 bits, elliptic curves at least P-256. `public` is
    the cryptography public key object (a verification key's `public`, a joserfc key's `public_key`)."""
    if isinstance(public, RSAPublicKey):
        if public.key_size < 2048:
            raise error("RSA keys must be at least 2048 bits")
    elif isinstance(public, EllipticCurvePublicKey):
        if not isinstance(public.curve, (SECP256R1, SECP384R1, SECP521R1)):
            raise error("EC keys must use P-256, P-384 or P-521")
    elif isinstance(public, (Ed25519PublicKey, Ed448PublicKey)):
        pass
    elif isinstance(public, (X25519PublicKey, X448PublicKey)):
        raise error("OKP keys must be Ed25519 or Ed448")
    else:
        raise error("only RSA, EC and OKP public keys are accepted")


def validate_client_jwks(jwks: Any, error: Callable[[str], OAuthError]) -> dict[str, Any]:
    """A client's registered JWKS: public keys only, strong enough, unique kids."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise error("jwks must be a JSON Web Key Set with at least one key")
    if len(jwks["keys"]) > 10:
        raise error("jwks may hold at most 10 keys")
    kids = []
    for jwk in jwks["keys"]:
        if not isinstance(jwk, dict):
            raise error("jwks keys must be JSON objects")
        if has_private_members(jwk):
            raise error("jwks must not contain private or symmetric key material")
        if jwk.get("alg") is not None and jwk.get("alg") not in ALLOWED_ALGS:
            raise error("jwks key alg must be one of " + ", ".join(ALLOWED_ALGS))
        kids.append(jwk.get("kid"))
    if len(jwks["keys"]) > 1 and (None in kids or len(set(kids)) != len(kids)):
        raise error("jwks with several keys need a unique kid on each")
    try:
        keyset = KeySet.import_key_set({"keys": jwks["keys"]})
    except (JoseError, ValueError, TypeError, KeyError):
        raise error("jwks could not be parsed") from None
    for key in keyset.keys:
        check_key_strength(key.public_key, error)
    return {"keys": [dict(k) for k in jwks["keys"]]}
