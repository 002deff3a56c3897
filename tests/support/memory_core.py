"""A Core on the in-memory stores with a clock the test sets: the endpoint functions without a server."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from fingrade.config import load_settings
from fingrade.oauth.context import Core
from fingrade.oauth.passwords import Passwords
from fingrade.oauth.signing_keys import KeyManager
from fingrade.protocol.sealing import Sealer
from fingrade.store.memory import MemoryDurableStore, MemoryOneTimeStore


class Clock:
    """Integer seconds the test moves by hand (`clock.now += 30`)."""

    def __init__(self, now: int = 1_800_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def memory_core(data_dir: Path, clock: Callable[[], int]) -> Core:
    """The default settings (no FINGRADE_* variables), both stores in memory, cheap password hashing."""
    settings = load_settings(overrides={"data_dir": str(data_dir), "issuer": "https://as.example.com"}, environ={})
    store = MemoryDurableStore(clock)
    return Core(
        settings=settings,
        store=store,
        onetime=MemoryOneTimeStore(clock),
        keys=KeyManager(store),
        server_key=os.urandom(32),
        passwords=Passwords(1, 8192, 1),
        clock=clock,
        sealer=Sealer(os.urandom(32)),
    )
