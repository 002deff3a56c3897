"""Liveness (/healthz) and readiness (/readyz) of the authorization server."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from fingrade.oauth.context import Core
from fingrade.protocol.failures import RETRY_AFTER
from fingrade.protocol.http import NO_STORE
from fingrade.store.readiness import ReadinessProbe
from fingrade.store.sql.db import Database


async def health(request: Request) -> Response:
    """Liveness: the process answers. No store is touched: a store outage must not get a node
    restarted (it recovers by itself); readiness below takes it out of the load balancer."""
    return Response(b'{"status":"ok"}', media_type="application/json", headers=dict(NO_STORE))


async def ready(request: Request) -> Response:
    """Readiness: the signing keys load and both stores take a write and read it back."""
    result = await request.app.state.readiness.check()
    if result.ready:
        return Response(b'{"status":"ready"}', media_type="application/json", headers=dict(NO_STORE))
    return Response(
        orjson.dumps({"status": "unavailable", "failed": list(result.failed)}),
        503,
        media_type="application/json",
        headers={**NO_STORE, "Retry-After": RETRY_AFTER},
    )


def readiness_probe(core: Core, db: Database) -> ReadinessProbe:
    """What /readyz checks: the durable store's database, the one-time store, and the signing keys."""

    async def keys() -> None:
        await core.keys.view()

    return ReadinessProbe(db, core.onetime, {"keys": keys})
