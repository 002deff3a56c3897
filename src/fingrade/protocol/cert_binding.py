"""Certificate-bound access tokens (RFC 8705 §3): the `x5t#S256` thumbprint a token is bound to,
and the check a protected resource makes against the certificate of the request."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from fingrade.protocol.crypto import equal
from fingrade.protocol.errors import OAuthError


def thumbprint(der: bytes) -> str:
    """RFC 8705 §3.1: `x5t#S256`, the base64url SHA-256 of the DER certificate."""
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def same_certificate(der: bytes | None, x5t: str) -> bool:
    return der is not None and equal(thumbprint(der), x5t)


def bound_thumbprint(claims: dict[str, Any]) -> str | None:
    cnf = claims.get("cnf")
    value = cnf.get("x5t#S256") if isinstance(cnf, dict) else None
    return value if isinstance(value, str) else None


def certificate_mismatch() -> OAuthError:
    # RFC 8705 §3: the protected resource answers 401 invalid_token.
    return OAuthError("invalid_token", "the access token is bound to a client certificate that was not presented", 401)
