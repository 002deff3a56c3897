"""Running the bank API: inside the authorization server's process (`fingrade serve`, role all) or on
its own (`fingrade serve --role bank`). Either way it reaches the AS only through HTTP: JWKS,
metadata, introspection and consent resources (trust.py). See docs/architecture.md, "The bank's resource server"."""

from __future__ import annotations

import contextlib
import logging
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from fingrade.bank import migrate as bank_migrations
from fingrade.bank.context import Bank
from fingrade.bank.ledger import Ledger
from fingrade.bank.responses import failure_response
from fingrade.bank.routes import bank_api, bank_mount
from fingrade.bank.trust import AsTrust
from fingrade.config import Settings
from fingrade.protocol.failures import RETRY_AFTER, ErrorBoundary
from fingrade.protocol.single_use import ReplayCache
from fingrade.server_secrets import load_secrets
from fingrade.store.readiness import ReadinessProbe
from fingrade.store.sql.db import Database
from fingrade.store.sql.migrate import upgrade

log = logging.getLogger("fingrade.bank")
logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per call to the AS is too much (and has URLs)

IN_PROCESS = "fingrade.in_process"  # an ASGI scope key no network client can set
TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class InProcess:
    """Marks requests the bank makes to the AS application in the same process."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[IN_PROCESS] = True
        await self.app(scope, receive, send)


def _trust(settings: Settings, http: httpx.AsyncClient, client_id: str, secret: str) -> AsTrust:
    return AsTrust(
        http,
        issuer=settings.bank_issuer,
        audience=settings.bank_audience,
        client_id=client_id,
        client_secret=secret,
        cache_seconds=settings.bank_introspection_cache_seconds,
        jwks_refresh_seconds=settings.bank_jwks_refresh_seconds,
        clock=lambda: int(time.time()),
    )


def in_process_bank(
    settings: Settings,
    as_app: ASGIApp,
    onetime: ReplayCache,
    server_key: bytes,
    db: Database,
    client_id: str,
    secret: str,
) -> Bank:
    """The bank inside the AS process: HTTP semantics over an in-process ASGI transport (no socket,
    no TLS to ourselves, no dependence on the public issuer name resolving from inside)."""
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=InProcess(as_app)), timeout=TIMEOUT)
    return Bank(
        settings=settings,
        onetime=onetime,
        server_key=server_key,
        ledger=Ledger(db),
        trust=_trust(settings, http, client_id, secret),
    )


async def migrate_bank_database(db: Database) -> None:
    """The schema the bank on its own (role bank) needs: the bank's tables (its own chain), and the
    shared store tables of the authorization server's chain (`onetime`: the one-time store and the
    readiness probe use it), which that chain creates."""
    await upgrade(db)
    await bank_migrations.upgrade(db)


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    # Certificate and host name verification always on; bank_ca_file adds a private CA (dev cert).
    return ssl.create_default_context(cafile=settings.bank_ca_file or None)


def create_bank_server(settings: Settings) -> Starlette:
    """The bank API on its own (role bank): its own stores, HTTPS to the AS."""
    api, mounted = bank_api(settings.http_max_body_bytes)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        server_key, _kek = load_secrets(settings)
        db = Database(settings.database_url, settings.database_pool_size)
        await migrate_bank_database(db)
        onetime: Any
        if settings.onetime_backend == "redis":
            from fingrade.store.redis.onetime import RedisOneTimeStore

            onetime = RedisOneTimeStore(settings.redis_url, settings.redis_prefix)
            await onetime.ping()
            await onetime.check_persistence()
        else:
            from fingrade.store.sql.onetime import SqlOneTimeStore

            onetime = SqlOneTimeStore(db)
        http = httpx.AsyncClient(verify=_ssl_context(settings), timeout=TIMEOUT)
        bank = Bank(
            settings=settings,
            onetime=onetime,
            server_key=server_key,
            ledger=Ledger(db),
            trust=_trust(settings, http, settings.bank_client_id, settings.bank_client_secret),
        )
        api.state.bank = bank
        app.state.bank = bank
        app.state.readiness = ReadinessProbe(db, onetime)
        try:
            yield
        finally:
            await bank.trust.close()
            await onetime.close()
            await db.close()

    async def health(request: Request) -> Response:
        """Liveness only (see web/app.py `health`)."""
        return Response(b'{"status":"ok"}', media_type="application/json", headers={"Cache-Control": "no-store"})

    async def ready(request: Request) -> Response:
        """Readiness: the database (ledger) and the one-time store (DPoP replay) take a write."""
        result = await request.app.state.readiness.check()
        if result.ready:
            return Response(b'{"status":"ready"}', media_type="application/json", headers={"Cache-Control": "no-store"})
        return Response(
            orjson.dumps({"status": "unavailable", "failed": list(result.failed)}),
            503,
            media_type="application/json",
            headers={"Cache-Control": "no-store", "Retry-After": RETRY_AFTER},
        )

    async def not_found(request: Request, exc: Exception) -> Response:
        return Response(b'{"error":"not_found"}', 404, media_type="application/json")

    routes = [Route("/healthz", health, methods=["GET"]), Route("/readyz", ready, methods=["GET"]), bank_mount(mounted)]
    # The API answers its own failures inside the mount (routes.py); this covers the routes above. The
    # security headers are added around it by whoever serves it (cli.py), as for the AS.
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: not_found},
        middleware=[Middleware(ErrorBoundary, render=failure_response, logger=log)],
    )
