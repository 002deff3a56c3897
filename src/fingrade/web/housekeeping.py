"""The janitor: every `janitor_interval` seconds (±20 %, so nodes do not run in step) it deletes
expired rows from both stores and retired signing keys past their retention."""

from __future__ import annotations

import asyncio
import logging
import random

from fingrade.oauth.context import Core
from fingrade.protocol.failures import describe, is_store_failure

log = logging.getLogger("fingrade.web")


async def janitor(core: Core) -> None:
    while True:
        await asyncio.sleep(core.settings.janitor_interval * random.uniform(0.8, 1.2))
        try:
            now = core.clock()
            removed = await core.onetime.purge_expired() + await core.store.purge_expired(now)
            await core.keys.purge_retired(now)
            if removed:
                log.info("janitor removed %d expired rows", removed)
        except Exception as exc:
            if is_store_failure(exc):  # an outage: one line per round, not a traceback
                log.error("janitor round failed: %s", describe(exc))
            else:
                log.exception("janitor round failed")


def start_janitor(core: Core) -> asyncio.Task[None]:
    """Runs the janitor until the returned task is cancelled (at shutdown)."""
    return asyncio.create_task(janitor(core))
