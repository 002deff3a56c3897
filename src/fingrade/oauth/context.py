"""What every endpoint needs: settings, stores, keys and the server's secret key."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fingrade.config import Settings
from fingrade.oauth.passwords import Passwords
from fingrade.oauth.ports import DurableStore, OneTimeStore
from fingrade.oauth.signing_keys import KeyManager
from fingrade.protocol.sealing import Sealer


def _now() -> int:
    return int(time.time())


@dataclass
class Core:
    settings: Settings
    store: DurableStore
    onetime: OneTimeStore
    keys: KeyManager
    server_key: bytes  # HMAC key for client secrets and CSRF tokens; shared by all nodes
    passwords: Passwords
    clock: Callable[[], int] = field(default=_now)
    sealer: Sealer | None = None  # AES-GCM under the key-encryption key (token answers kept for retries)

    @property
    def issuer(self) -> str:
        return self.settings.issuer

    def url(self, path: str) -> str:
        return self.settings.issuer + path
