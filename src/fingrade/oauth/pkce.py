"""PKCE (RFC 7636) with the downgrade defence of RFC 9700 §4.8.2."""

from __future__ import annotations

import re

from fingrade.protocol.crypto import equal, sha256_b64url
from fingrade.protocol.errors import invalid_grant, invalid_request

# RFC 7636 §4.1: code-verifier = 43*128unreserved; §4.2: the challenge has the same grammar.
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
# An S256 challenge is BASE64URL(SHA-256(...)): exactly 43 characters of the base64url alphabet.
_S256_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")

SUPPORTED_METHODS = ("S256",)  # what metadata advertises is what check_challenge accepts


def check_challenge(challenge: str | None, method: str | None, required: bool) -> tuple[str, str] | None:
    """Validate the authorization request's PKCE parameters; return (challenge, method) or None."""
    if challenge is None:
        if method is not None:
            raise invalid_request("code_challenge_method without code_challenge")
        if required:
            raise invalid_request("code_challenge is required (PKCE, RFC 7636)")
        return None
    # RFC 7636 §4.3: an absent method means `plain`, which we do not support (FAPI 2.0 SP 5.3.2.2-5).
    if method not in SUPPORTED_METHODS:
        raise invalid_request("code_challenge_method must be S256")
    if not _S256_CHALLENGE.fullmatch(challenge):
        raise invalid_request("code_challenge is not a valid S256 challenge")
    return challenge, method


def verify(verifier: str | None, challenge: str | None, method: str | None) -> None:
    """Token-endpoint check. Every failure is invalid_grant (RFC 7636 §4.6)."""
    if challenge is None:
        # RFC 9700 §4.8.2: a verifier for a code issued without a challenge is a downgrade attempt.
        if verifier is not None:
            raise invalid_grant("code_verifier sent for a code issued without code_challenge")
        return
    if verifier is None:
        raise invalid_grant("code_verifier is required")
    if not _VERIFIER.fullmatch(verifier):
        raise invalid_grant("code_verifier does not match the RFC 7636 grammar")
    if method != "S256" or not equal(sha256_b64url(verifier), challenge):
        raise invalid_grant("code_verifier does not match code_challenge")
