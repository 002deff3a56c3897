"""Encryption at rest (AES-256-GCM under a key from configuration): private signing keys, kept token answers."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = b"\x01"


class SealedDataError(Exception):
    """Sealed data that this key cannot open: sealed under another key_encryption_key, or altered."""


class Sealer:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the key-encryption key must be 32 bytes")
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        nonce = os.urandom(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, context)

    def open(self, sealed: bytes, context: bytes) -> bytes:
        if sealed[:1] != _VERSION:
            raise SealedDataError("unknown sealed-data version")
        try:
            return self._aead.decrypt(sealed[1:13], sealed[13:], context)
        except InvalidTag:
            # GCM cannot tell a wrong key from altered data; a wrong key is by far the common case.
            raise SealedDataError(
                "sealed data does not open with the configured key_encryption_key "
                "(sealed under another one, or altered)"
            ) from None
