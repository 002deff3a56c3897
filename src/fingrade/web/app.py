"""The ASGI application of the authorization server: the route table, the middlewares and what
runs beside the routes, composed from the web layer's modules:

- oauth_routes.py: discovery, JWKS and the back-channel endpoints (token, PAR, userinfo, ...);
- interaction_routes.py: the authorization endpoint, sign-in and consent pages, sign-out;
- dashboard.py, account_sign_in.py, security_page.py: the customer's account area (connected apps,
  its strong sign-in, the second factors);
- cookies.py, forms.py, cors.py: the browser's cookies and CSRF check, forms, CORS;
- errors.py, health.py, housekeeping.py: failure answers, liveness and readiness, the janitor;
- bank_wiring.py: the bank API in this process (role all) and the customer-accounts port;
- lean_path.py: in front of all of it (create_server_app), the common case of the busiest requests.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from fingrade.bank.context import PREFIX as BANK_PREFIX
from fingrade.config import Settings
from fingrade.oauth.consent_resources import MAX_BODY as CONSENT_RESOURCE_MAX_BODY
from fingrade.oauth.context import Core
from fingrade.oauth.metadata import server_metadata
from fingrade.protocol.asgi import json_error, too_large
from fingrade.protocol.body_limit import BodyLimit, BodyLimits
from fingrade.protocol.edge import is_trusted
from fingrade.protocol.failures import ErrorBoundary
from fingrade.runtime import build_core, close_core
from fingrade.store.sql.db import Database
from fingrade.store.sql.durable import SqlDurableStore
from fingrade.web import (
    account_sign_in,
    bank_wiring,
    dashboard,
    health,
    housekeeping,
    interaction_routes,
    oauth_routes,
    pages,
    security_page,
)
from fingrade.web import request_context as ctx
from fingrade.web.errors import not_found, render_failure
from fingrade.web.lean_path import LeanPath
from fingrade.web.openapi import openapi
from fingrade.web.security_headers import ProxyOnly, SecurityHeaders

log = logging.getLogger("fingrade.web")

ALL = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]


async def home(request: Request) -> Response:
    core = ctx.core(request)
    return pages.message_page(
        core.issuer,
        "Fingrade authorization server",
        "This server signs people in for the applications they use with their bank. "
        f"Metadata: {core.issuer}/.well-known/openid-configuration",
    )


def _database(core: Core) -> Database:
    """The SQL database under the durable store: readiness writes to it, and the bank's tables are there."""
    if not isinstance(core.store, SqlDurableStore):
        raise TypeError("the durable store must be SqlDurableStore")
    return core.store.db


def _routes() -> list[BaseRoute]:
    return [
        Route("/", home, methods=["GET"]),
        Route("/.well-known/openid-configuration", oauth_routes.metadata, methods=["GET"]),
        Route("/.well-known/oauth-authorization-server", oauth_routes.metadata, methods=["GET"]),
        Route("/jwks", oauth_routes.jwks, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/authorize", interaction_routes.authorize, methods=ALL),
        Route("/interaction/{iid}", interaction_routes.interaction_page, methods=["GET"]),
        Route("/interaction/{iid}/login", interaction_routes.login_submit, methods=["POST"]),
        Route("/interaction/{iid}/consent", interaction_routes.consent_submit, methods=["POST"]),
        Route("/interaction/{iid}/second-factor", interaction_routes.second_factor_submit, methods=["POST"]),
        Route("/interaction/{iid}/enrol", interaction_routes.enrol_submit, methods=["POST"]),
        Route("/interaction/{iid}/passkey-login", interaction_routes.passkey_login_submit, methods=["POST"]),
        Route("/interaction/{iid}/passkey", interaction_routes.passkey_submit, methods=["POST"]),
        Route("/interaction/{iid}/enrol-passkey", interaction_routes.passkey_enrol_submit, methods=["POST"]),
        Route("/logout", interaction_routes.logout, methods=["GET", "POST"]),
        Route(pages.ACCOUNT_LOGIN, account_sign_in.account_login, methods=["GET", "POST"]),
        Route(account_sign_in.SECOND_FACTOR, account_sign_in.second_factor, methods=["GET", "POST"]),
        Route(account_sign_in.ENROL, account_sign_in.enrol_submit, methods=["POST"]),
        Route(security_page.SECURITY, security_page.security_page, methods=["GET"]),
        Route(security_page.REMOVE, security_page.remove_submit, methods=["POST"]),
        Route(security_page.ADD_APP, security_page.add_app, methods=["GET", "POST"]),
        Route(security_page.RECOVERY_CODES, security_page.recovery_codes_submit, methods=["POST"]),
        Route(dashboard.CONNECTIONS, dashboard.connections_page, methods=["GET"]),
        Route(dashboard.CONNECTIONS + "/revoke", dashboard.connections_revoke, methods=["POST"]),
        Route("/token", oauth_routes.token, methods=ALL),
        Route("/par", oauth_routes.par, methods=ALL),
        Route("/userinfo", oauth_routes.userinfo, methods=ALL),
        Route("/introspect", oauth_routes.introspect, methods=ALL),
        Route("/revoke", oauth_routes.revoke, methods=ALL),
        Route("/register", oauth_routes.register, methods=ALL),
        Route("/register/{client_id}", oauth_routes.manage_client, methods=ALL),
        Route("/consent-resources", oauth_routes.consent_resources, methods=ALL),
        Route("/consent-resources/{consent_id}", oauth_routes.consent_resources, methods=ALL),
        Route("/healthz", health.health, methods=["GET"]),
        Route("/readyz", health.ready, methods=["GET"]),
        Mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static"),
    ]


def create_app(settings: Settings, core: Core | None = None) -> Starlette:
    here = bank_wiring.bank_api_here(settings)
    bank_app = here[0] if here is not None else None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own = core is None
        app.state.core = the_core = core or await build_core(settings)
        db = _database(the_core)
        db.start_background_checkpoints()
        app.state.metadata_json = orjson.dumps(server_metadata(the_core))
        app.state.readiness = health.readiness_probe(the_core, db)
        janitor = housekeeping.start_janitor(the_core)
        bank = None
        if bank_app is not None:
            bank = await bank_wiring.start_bank(settings, app, bank_app, the_core, db)
        app.state.customer_accounts = bank_wiring.customer_accounts(bank, db)
        try:
            yield
        finally:
            janitor.cancel()
            if bank is not None:
                await bank.trust.close()
            if own:
                await close_core(the_core)

    routes = _routes()
    if here is not None:
        routes.append(here[1])
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found})
    app.state.bank_api = bank_app  # the lean path serves its account reads (lean_path.py)
    app.state.trusted_proxies = tuple(settings.trusted_proxies)
    app.state.cert_header = settings.mtls_cert_header
    # Every route's body limit, checked before the route reads (the bank API has its own: bank/routes.py).
    limits = BodyLimits(
        settings.http_max_body_bytes,
        routes=(("/consent-resources", CONSENT_RESOURCE_MAX_BODY),),
        delegated=(BANK_PREFIX,) if bank_app is not None else (),
    )
    app.state.body_limits = limits  # the lean path's too (lean_path.py)
    app.add_middleware(BodyLimit, limits=limits, too_large=lambda: json_error(too_large()))
    # Inside the security headers: error answers carry them too (failures.py).
    app.add_middleware(ErrorBoundary, render=render_failure, logger=log)
    app.add_middleware(SecurityHeaders, hsts=settings.issuer.startswith("https://"))
    if settings.tls == "off" and settings.trusted_proxies:
        proxies = tuple(settings.trusted_proxies)
        app.add_middleware(ProxyOnly, trusted=lambda ip: is_trusted(ip, proxies))
    return app


def create_server_app(settings: Settings, core: Core | None = None) -> LeanPath:
    """What the server runs: the application behind its lean path (lean_path.py)."""
    return LeanPath(create_app(settings, core), settings)
