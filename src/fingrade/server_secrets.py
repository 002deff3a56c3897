"""The node's two secrets: the server key (HMAC of client secrets, CSRF tokens, DPoP nonces) and
the key-encryption key (private signing keys and kept token answers at rest). Shared by the
authorization server's wiring (runtime.py) and the bank's (bank/server.py)."""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path

import orjson

from fingrade.config import ConfigError, Settings
from fingrade.private_files import private_dir

log = logging.getLogger("fingrade")


def _decode_key(name: str, value: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        raise ConfigError(f"{name}: not base64url") from None
    if len(raw) != 32:
        raise ConfigError(f"{name}: must decode to 32 bytes (generate with `openssl rand -base64 32`)")
    return raw


def load_secrets(settings: Settings) -> tuple[bytes, bytes]:
    """The server key and the key-encryption key: from configuration, or (single-node default)
    generated once into the data directory with owner-only permissions."""
    if settings.secret_key and settings.key_encryption_key:
        return (
            _decode_key("secret_key", settings.secret_key),
            _decode_key("key_encryption_key", settings.key_encryption_key),
        )
    path = Path(settings.data_dir) / "secrets.json"
    if path.exists():
        data = orjson.loads(path.read_bytes())
    else:
        private_dir(path.parent)
        data = {
            name: base64.urlsafe_b64encode(os.urandom(32)).decode() for name in ("secret_key", "key_encryption_key")
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(orjson.dumps(data))
        log.warning(
            "generated secrets in %s; a multi-node deployment must configure secret_key and key_encryption_key instead",
            path,
        )
    server_key = settings.secret_key or data["secret_key"]
    kek = settings.key_encryption_key or data["key_encryption_key"]
    return _decode_key("secret_key", server_key), _decode_key("key_encryption_key", kek)
