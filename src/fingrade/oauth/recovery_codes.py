"""Recovery codes: the way back in when a customer has lost their second factor. Shown once, at
enrolment or when renewed; stored only as keyed hashes; each works once (the store removes it
atomically). Each has 50 random bits, and trying them is throttled like passwords
(oauth/factors.py), so guessing one is hopeless; the key (the server key) makes a stolen table
useless without the server's secrets."""

from __future__ import annotations

import secrets

from fingrade.protocol.crypto import keyed_hash

COUNT = 10
# Crockford's base32 alphabet, lower case: no i, l, o or u to misread.
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_LENGTH = 10  # characters, 5 bits each


def generate() -> list[str]:
    """New codes, as shown to the customer ("xxxxx-xxxxx")."""
    codes = []
    for _ in range(COUNT):
        raw = "".join(secrets.choice(_ALPHABET) for _ in range(_LENGTH))
        codes.append(f"{raw[:5]}-{raw[5:]}")
    return codes


def normalise(typed: str) -> str | None:
    """A typed code as stored: case, spaces and dashes ignored, the misread letters mapped (Crockford);
    None if it cannot be a code."""
    text = "".join(c for c in typed[:40].lower() if c not in " -\t")
    text = text.translate(str.maketrans("oil", "011"))
    if len(text) != _LENGTH or any(c not in _ALPHABET for c in text):
        return None
    return text


def code_hash(server_key: bytes, code: str) -> str:
    """The stored form of a normalised code."""
    return keyed_hash(server_key, "recovery|" + code)
