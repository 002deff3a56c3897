"""Small, well-known primitives used by the core (no home-made cryptography: hashlib, hmac, secrets)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets


def new_token(nbytes: int = 32) -> str:
    """A random token; 32 bytes = 256 bits, well above the 128 bits FAPI 2.0 SP 5.4.1 asks for."""
    return secrets.token_urlsafe(nbytes)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Unpadded base64url to bytes (binascii.Error on a malformed value)."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sha256_b64url(value: str) -> str:
    return b64url(hashlib.sha256(value.encode("ascii")).digest())


def token_hash(value: str) -> str:
    """How codes, refresh tokens and session ids are stored: they have >= 256 bits of entropy, so a
    plain SHA-256 cannot be reversed by guessing, and a stolen database yields nothing usable."""
    return hashlib.sha256(value.encode()).hexdigest()


def keyed_hash(key: bytes, value: str) -> str:
    """Client secrets: HMAC-SHA-256 under the server key (see docs/architecture.md, 'Hash by what is hashed')."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def equal(a: str, b: str) -> bool:
    """Constant-time comparison of two secrets."""
    return hmac.compare_digest(a.encode(), b.encode())
