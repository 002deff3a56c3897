"""Time-based one-time passwords (RFC 6238) as a second factor: the parameters every authenticator
app understands (HMAC-SHA-1, 6 digits, 30-second steps, RFC 6238 §4 and §5.2), codes accepted one
step either side of now (clock drift, a code typed as it changed), and each step's code once.

The HOTP/TOTP computation is `cryptography`'s (constant-time comparison included); this module only
chooses the parameters and says which time step a code belongs to, so that oauth/factors.py can
refuse a replayed code (RFC 6238 §5.2: "the verifier MUST NOT accept the second attempt of the OTP
after the successful validation has been issued for the first OTP").
"""

from __future__ import annotations

import base64
import secrets

from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor import InvalidToken
from cryptography.hazmat.primitives.twofactor.totp import TOTP

STEP = 30  # seconds (RFC 6238 §5.2 recommends 30)
DIGITS = 6
WINDOW = 1  # steps accepted before and after the current one
SECRET_BYTES = 20  # 160 bits, the length of the HMAC-SHA-1 output (RFC 4226 §4 R6)


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def _totp(secret: bytes) -> TOTP:
    return TOTP(secret, DIGITS, SHA1(), STEP)


def manual_key(secret: bytes) -> str:
    """The secret as typed into an authenticator app: base32 without padding, in groups of four."""
    text = base64.b32encode(secret).decode("ascii").rstrip("=")
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def provisioning_uri(secret: bytes, account: str, issuer: str) -> str:
    """The otpauth:// URI an authenticator app reads from the enrolment QR code."""
    return _totp(secret).get_provisioning_uri(account, issuer)


def code_at(secret: bytes, now: int) -> str:
    """The code an authenticator app shows at `now` (the demo and tests compute codes with it)."""
    return _totp(secret).generate(now).decode("ascii")


def well_formed(code: str) -> bool:
    return len(code) == DIGITS and code.isascii() and code.isdigit()


def normalise(code: str) -> str:
    """What a customer types, as the app shows it: spaces (e.g. "123 456") removed."""
    return "".join(code.split())[:16]


def matching_step(secret: bytes, code: str, now: int) -> int | None:
    """The time step (counter) whose code this is, within the window around now; None if none is.
    Every step of the window is checked, so the time taken does not say which one matched."""
    if not well_formed(code):
        return None
    totp = _totp(secret)
    current = now // STEP
    found = None
    for step in range(current - WINDOW, current + WINDOW + 1):
        try:
            totp.verify(code.encode("ascii"), step * STEP)
        except InvalidToken:
            continue
        found = step if found is None else found
    return found
