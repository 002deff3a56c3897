"""Readiness: can this node use its stores now? (`GET /readyz`; `/healthz` only says the process is
alive.)

A node is ready when it can commit a write to the database and read it back, and do the same in
the one-time store (Redis, or the database again). Reads alone would call a node on a full or
read-only disk ready although every login, code and payment fails. The probe writes one row (one
key) that expires by itself, and the whole check runs at most once per `CACHE_SECONDS` however
often it is asked, so an unauthenticated caller cannot turn it into a stream of writes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fingrade.oauth.ports import OneTimeStore
from fingrade.protocol.failures import describe
from fingrade.store.sql.db import Database
from fingrade.store.sql.onetime import SqlOneTimeStore

log = logging.getLogger("fingrade.readiness")

KIND = "readiness"
KEY = "probe"  # one row for all nodes: concurrent probes overwrite it
TTL = 60
TIMEOUT = 3.0  # a store that does not answer within this is not ready
CACHE_SECONDS = 1.0

Check = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Readiness:
    failed: tuple[str, ...]  # names of the checks that failed: "database", "onetime", ...

    @property
    def ready(self) -> bool:
        return not self.failed


async def _write_and_read(store: OneTimeStore) -> None:
    stamp = {"at": time.time()}
    await store.put(KIND, KEY, stamp, TTL)
    if await store.get(KIND, KEY) != stamp:
        raise RuntimeError("the value written was not read back")


class ReadinessProbe:
    def __init__(self, db: Database, onetime: OneTimeStore, extra: dict[str, Check] | None = None) -> None:
        database = SqlOneTimeStore(db)
        self.checks: dict[str, Check] = {
            "database": lambda: _write_and_read(database),
            "onetime": lambda: _write_and_read(onetime),
            **(extra or {}),
        }
        self._last: tuple[float, Readiness] | None = None
        self._lock = asyncio.Lock()

    async def check(self) -> Readiness:
        async with self._lock:  # concurrent callers share one run
            if self._last is not None and time.monotonic() - self._last[0] < CACHE_SECONDS:
                return self._last[1]
            failed = []
            for name, check in self.checks.items():
                try:
                    await asyncio.wait_for(check(), TIMEOUT)
                except Exception as exc:  # noqa: BLE001 - a probe reports, it does not raise
                    log.error("readiness: %s check failed: %s", name, describe(exc))
                    failed.append(name)
            result = Readiness(tuple(failed))
            self._last = (time.monotonic(), result)
            return result
