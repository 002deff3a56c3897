"""The bank's resource-server context: where its API is mounted, and what every request handler
reads (settings, the one-time store for DPoP proofs, the ledger, its trust in the authorization
server). Whoever runs the API sets it as the application's `state.bank` (server.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fingrade.bank.ledger import Ledger
from fingrade.bank.trust import AsTrust
from fingrade.config import Settings
from fingrade.protocol.single_use import ReplayCache

PREFIX = "/bank/v1"  # the API's path below the host; bank_url names the same place publicly


def _now() -> int:
    return int(time.time())


@dataclass
class Bank:
    """The resource server's context; also what DPoP proof checks need (protocol.dpop.ProofContext)."""

    settings: Settings
    onetime: ReplayCache  # shared with the AS nodes: DPoP proofs are single-use everywhere
    server_key: bytes  # DPoP nonces of this resource server (RFC 9449 §9)
    ledger: Ledger
    trust: AsTrust
    clock: Callable[[], int] = field(default=_now)

    @property
    def issuer(self) -> str:
        # ProofContext: DPoP's RFC 8705 §5 alias check maps issuer-based URLs to the mTLS host; in
        # role all the bank is served below the issuer, so its URLs have the same alias.
        return self.settings.issuer

    def url(self, path: str) -> str:
        return self.settings.bank_url + path
