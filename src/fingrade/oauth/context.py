"""What every endpoint needs: settings, stores, keys and the server's secret key."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..config import Settings
from ..keys.keystore import KeyManager
from ..keys.sealing import Sealer
from .passwords import Passwords
from .ports import DurableStore, OneTimeStore


def _now() -> int:
    return int(time.time())


class ProofContext(Protocol):
    """What checking DPoP proofs needs (dpop.py): the settings (nonces), the shared one-time store
    (replay), the server key (nonces) and the clock. The authorization server's Core is one; the
    bank's resource server (fingrade.bank) has its own."""

    settings: Settings
    onetime: OneTimeStore
    server_key: bytes
    clock: Callable[[], int]

    @property
    def issuer(self) -> str:
        """The base the endpoint URLs are built from (the AS issuer; mtls aliases are relative to it)."""


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
