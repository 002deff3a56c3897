"""Mutual-TLS client authentication (RFC 8705 §2); the binding of tokens to certificates (§3) is
fingrade.protocol.cert_binding, shared with resource servers.

The web layer only delivers the DER of the certificate the client proved possession of in the TLS
handshake (Fingrade's own listener, or a trusted TLS-terminating proxy); every trust decision is
made here, the same way for both deployments.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import ipaddress
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import verification
from cryptography.x509.oid import NameOID
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from fingrade.protocol.cert_binding import thumbprint
from fingrade.protocol.crypto import equal
from fingrade.protocol.errors import invalid_client

TLS_AUTH_METHODS = frozenset({"tls_client_auth", "self_signed_tls_client_auth"})
# RFC 8705 §2.1.2: a tls_client_auth client registers exactly one of these.
SUBJECT_FIELDS = (
    "tls_client_auth_subject_dn",
    "tls_client_auth_san_dns",
    "tls_client_auth_san_uri",
    "tls_client_auth_san_ip",
    "tls_client_auth_san_email",
)
BOUND_TOKENS = "tls_client_certificate_bound_access_tokens"  # RFC 8705 §3.4 client metadata


def load_certificate(der: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        raise invalid_client("the client certificate cannot be parsed") from None


# -- trust anchors for tls_client_auth (§2.1) --------------------------------------------------


@lru_cache(maxsize=4)
def _anchors(path: str, mtime: float) -> tuple[x509.Certificate, ...]:
    with open(path, "rb") as fh:
        certs = x509.load_pem_x509_certificates(fh.read())
    return tuple(certs)


def trust_anchors(path: str) -> tuple[x509.Certificate, ...]:
    """The CA certificates of the configured bundle (re-read when the file changes)."""
    import os

    return _anchors(path, os.stat(path).st_mtime)


def check_ca_file(path: str) -> None:
    """Fail at start, not at the first client, when the bundle is missing or not PEM certificates."""
    try:
        trust_anchors(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"mtls_ca_file {path}: {exc}") from None


def _ee_policy() -> verification.ExtensionPolicy:
    # The Web PKI defaults require a subjectAltName; RFC 8705 §2.1.2 also matches certificates by
    # subject DN alone, so it may be absent. Everything else (EKU clientAuth when present, key usage,
    # basic constraints) keeps the defaults.
    return verification.ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, verification.Criticality.AGNOSTIC, None
    )


def verify_chain(cert: x509.Certificate, anchors: tuple[x509.Certificate, ...], now: int) -> None:
    """§2.1: the certificate chains to a configured trust anchor (RFC 5280 path validation by
    cryptography's verifier: signatures, validity at `now`, CA constraints)."""
    if not anchors:
        raise invalid_client("no trust anchors are configured for tls_client_auth")
    try:
        verifier = (
            verification.PolicyBuilder()
            .store(verification.Store(list(anchors)))
            .time(dt.datetime.fromtimestamp(now, dt.UTC))
            .extension_policies(ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(), ee_policy=_ee_policy())
            .build_client_verifier()
        )
        verifier.verify(cert, [])
    except verification.VerificationError as exc:
        raise invalid_client("the client certificate does not chain to a trusted CA", debug=str(exc)[:200]) from None


# -- matching the registered subject (§2.1.2) --------------------------------------------------


def _norm(value: str) -> str:
    # RFC 4517 caseIgnoreMatch as most directory attributes use it: case and surrounding or repeated
    # whitespace do not matter.
    return " ".join(value.split()).casefold()


def _dn_key(name: x509.Name) -> tuple[frozenset[tuple[str, str]], ...]:
    return tuple(frozenset((attr.oid.dotted_string, _norm(str(attr.value))) for attr in rdn) for rdn in name.rdns)


# RFC 4514 §3: attribute type names are case-insensitive; cryptography knows the upper-case forms.
_LOWER_NAMES = {
    "cn": NameOID.COMMON_NAME,
    "c": NameOID.COUNTRY_NAME,
    "l": NameOID.LOCALITY_NAME,
    "st": NameOID.STATE_OR_PROVINCE_NAME,
    "o": NameOID.ORGANIZATION_NAME,
    "ou": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "street": NameOID.STREET_ADDRESS,
    "dc": NameOID.DOMAIN_COMPONENT,
    "uid": NameOID.USER_ID,
    "serialnumber": NameOID.SERIAL_NUMBER,
    "emailaddress": NameOID.EMAIL_ADDRESS,
}


def parse_dn(value: str) -> x509.Name:
    return x509.Name.from_rfc4514_string(value, _LOWER_NAMES)


def _sans(cert: x509.Certificate, kind: type) -> list[Any]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return ext.value.get_values_for_type(kind)


def matches_subject(cert: x509.Certificate, meta: dict[str, Any]) -> bool:
    """The one registered subject value against the certificate (§2.1.2)."""
    if "tls_client_auth_subject_dn" in meta:
        # RFC 4514 string vs. the certificate subject: RDN by RDN, attribute type and normalised value.
        return _dn_key(cert.subject) == _dn_key(parse_dn(meta["tls_client_auth_subject_dn"]))
    if "tls_client_auth_san_dns" in meta:
        want = meta["tls_client_auth_san_dns"].rstrip(".").lower()
        return any(name.rstrip(".").lower() == want for name in _sans(cert, x509.DNSName))
    if "tls_client_auth_san_uri" in meta:
        return meta["tls_client_auth_san_uri"] in _sans(cert, x509.UniformResourceIdentifier)
    if "tls_client_auth_san_ip" in meta:
        want_ip = ipaddress.ip_address(meta["tls_client_auth_san_ip"])
        return any(addr == want_ip for addr in _sans(cert, x509.IPAddress))
    if "tls_client_auth_san_email" in meta:
        local, _, domain = meta["tls_client_auth_san_email"].rpartition("@")
        for email in _sans(cert, x509.RFC822Name):
            e_local, _, e_domain = email.rpartition("@")
            if e_local == local and e_domain.lower() == domain.lower():
                return True
        return False
    return False


# -- self-signed certificates (§2.2) -----------------------------------------------------------


def registered_certificates(jwks: dict[str, Any] | None) -> list[bytes]:
    """DER of the first `x5c` certificate of each key in a registered JWKS."""
    out = []
    for jwk in (jwks or {}).get("keys", []):
        chain = jwk.get("x5c") if isinstance(jwk, dict) else None
        if isinstance(chain, list) and chain and isinstance(chain[0], str):
            try:
                out.append(base64.b64decode(chain[0], validate=True))
            except (binascii.Error, ValueError):
                continue
    return out


def matches_registered(der: bytes, jwks: dict[str, Any] | None) -> bool:
    """§2.2: the presented certificate is one the client registered; every candidate is compared
    (thumbprints, in constant time)."""
    presented = thumbprint(der)
    found = False
    for candidate in registered_certificates(jwks):
        found |= equal(thumbprint(candidate), presented)
    return found


def authenticate(
    client_meta: dict[str, Any], method: str, jwks: dict[str, Any] | None, der: bytes | None, ca_file: str, now: int
) -> None:
    """Raise invalid_client unless `der` authenticates a client registered with `method` (§2)."""
    if der is None:
        raise invalid_client("this client authenticates with a TLS client certificate; none was presented")
    cert = load_certificate(der)
    if method == "self_signed_tls_client_auth":
        if not matches_registered(der, jwks):
            raise invalid_client("the client certificate is not one registered for this client")
        return
    if not ca_file:
        raise invalid_client("tls_client_auth is not available on this server")
    verify_chain(cert, trust_anchors(ca_file), now)
    if not matches_subject(cert, client_meta):
        raise invalid_client("the client certificate subject does not match the registration")


# -- registration ------------------------------------------------------------------------------


def validate_registration(
    meta: dict[str, Any], method: str, jwks: dict[str, Any] | None, *, public: bool, error: Any
) -> dict[str, Any]:
    """Client metadata of RFC 8705 §2.1.2 and §3.4; returns what to store in Client.metadata."""
    out: dict[str, Any] = {}
    present = [f for f in SUBJECT_FIELDS if f in meta]
    if method == "tls_client_auth":
        if len(present) != 1:
            raise error("tls_client_auth needs exactly one of " + ", ".join(SUBJECT_FIELDS))
        name = present[0]
        value = meta[name]
        if not isinstance(value, str) or not 1 <= len(value) <= 500 or not value.isprintable():
            raise error(f"{name} must be a non-empty string")
        _check_subject_value(name, value, error)
        out[name] = value
    elif present:
        raise error(f"{present[0]} is only used with tls_client_auth")
    if method == "self_signed_tls_client_auth":
        certs = registered_certificates(jwks)
        if not certs:
            raise error("self_signed_tls_client_auth needs jwks with the certificate in x5c")
        _check_x5c_keys(jwks or {}, error)
    if BOUND_TOKENS in meta:
        if not isinstance(meta[BOUND_TOKENS], bool):
            raise error(f"{BOUND_TOKENS} must be a boolean")
        if meta[BOUND_TOKENS]:
            if public:
                # §4 binds public clients' refresh tokens too; not supported here (use DPoP).
                raise error(f"{BOUND_TOKENS} is not supported for public clients; use DPoP")
            out[BOUND_TOKENS] = True
    return out


def _check_subject_value(name: str, value: str, error: Any) -> None:
    if name == "tls_client_auth_subject_dn":
        try:
            if not parse_dn(value).rdns:
                raise ValueError
        except ValueError:
            raise error("tls_client_auth_subject_dn must be an RFC 4514 distinguished name") from None
    elif name == "tls_client_auth_san_ip":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise error("tls_client_auth_san_ip must be an IPv4 or IPv6 address") from None
    elif name == "tls_client_auth_san_uri":
        parts = urlsplit(value)
        if not parts.scheme or not (parts.netloc or parts.path):
            raise error("tls_client_auth_san_uri must be an absolute URI")
    elif name == "tls_client_auth_san_email":
        local, sep, domain = value.rpartition("@")
        if not sep or not local or not domain or " " in value:
            raise error("tls_client_auth_san_email must be an email address")
    elif " " in value or "." not in value.strip(".") and value != "localhost":
        raise error("tls_client_auth_san_dns must be a DNS name")


def _check_x5c_keys(jwks: dict[str, Any], error: Any) -> None:
    """RFC 7517 §4.7: the key in the first x5c certificate MUST match the JWK's key."""
    for jwk in jwks.get("keys", []):
        chain = jwk.get("x5c")
        if chain is None:
            continue
        if not isinstance(chain, list) or not chain or not all(isinstance(c, str) for c in chain):
            raise error("x5c must be a list of base64 certificates")
        try:
            cert = x509.load_der_x509_certificate(base64.b64decode(chain[0], validate=True))
            cert_key = cert.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            jwk_key = KeySet.import_key_set({"keys": [{k: v for k, v in jwk.items() if k != "x5c"}]}).keys[0]
            public = jwk_key.public_key
            if isinstance(public, bytes):  # a symmetric (oct) key: no public key to compare
                raise error("x5c does not hold a valid certificate")
            raw = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        except (binascii.Error, ValueError, JoseError, TypeError, KeyError, AttributeError):
            raise error("x5c does not hold a valid certificate") from None
        if cert_key != raw:
            raise error("the x5c certificate's key does not match the JWK")
