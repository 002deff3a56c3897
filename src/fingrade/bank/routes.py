"""The bank API application, mounted at /bank/v1 (context.PREFIX): its routes, the middleware every
answer passes (the error boundary, the body limit, the x-fapi-interaction-id), the mount, and the
account reads served straight to their route functions (AccountReads)."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from fingrade.bank import query
from fingrade.bank.accounts_api import account_endpoint, get_account, get_balances, get_transactions, list_accounts
from fingrade.bank.context import PREFIX
from fingrade.bank.fapi_headers import INTERACTION_ID, interaction_id
from fingrade.bank.openapi import openapi
from fingrade.bank.payments_api import create_payment, get_payment
from fingrade.bank.responses import failure_response, route_not_found, too_large
from fingrade.bank.uk_consents_api import consent, create_consent
from fingrade.protocol.body_limit import BodyLimit, BodyLimits
from fingrade.protocol.failures import ErrorBoundary

log = logging.getLogger("fingrade.bank")

MAX_BODY = 16 * 1024  # the largest request body of any bank endpoint (payments.py, uk_consents.py)


class InteractionHeaders:
    """x-fapi-interaction-id on every response of the bank API, errors and 404s included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = [v.decode("latin-1") for k, v in scope.get("headers", []) if k == INTERACTION_ID.encode()]
        iid = interaction_id(sent[0] if len(sent) == 1 else None)
        scope.setdefault("state", {})["interaction_id"] = iid

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != INTERACTION_ID.encode()]
                headers.append((INTERACTION_ID.encode(), iid.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)


def bank_mount(app: ASGIApp) -> Mount:
    """The API mounted at PREFIX. Starlette's mount pattern ends in `.*`, which stops at a newline: a
    path with %0A in it would fall through to the host application's 404, without the interaction
    id; with DOTALL every path below PREFIX is the bank's (found by the OpenAPI conformance test)."""
    mount = Mount(PREFIX, app=app)
    mount.path_regex = re.compile(mount.path_regex.pattern, re.DOTALL)
    return mount


def bank_api(max_body: int = MAX_BODY) -> tuple[Starlette, ASGIApp]:
    """The API application (its `state.bank` is set by whoever runs it) and the ASGI app to mount.
    `max_body`: the deployment's cap on request bodies (http_max_body_bytes); the bank's own is lower."""
    allm = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
    routes = [
        Route("/openapi.json", openapi, methods=allm),
        Route("/payments", create_payment, methods=allm),
        Route("/payments/{payment_id}", get_payment, methods=allm),
        Route("/account-access-consents", create_consent, methods=allm),
        Route("/account-access-consents/{consent_id}", consent, methods=allm),
        Route("/accounts", account_endpoint(list_accounts), methods=allm),
        Route("/accounts/{account_id}", account_endpoint(get_account), methods=allm),
        Route("/accounts/{account_id}/balances", account_endpoint(get_balances), methods=allm),
        Route(
            "/accounts/{account_id}/transactions", account_endpoint(get_transactions, query.TRANSACTIONS), methods=allm
        ),
    ]
    # The error boundary outermost (complete answers in the bank's format); inside it the body limit,
    # so a 413 looks like every bank error and InteractionHeaders (around the app) adds its headers.
    app = Starlette(
        routes=routes,
        exception_handlers={404: route_not_found, 405: route_not_found},
        middleware=[
            Middleware(ErrorBoundary, render=failure_response, logger=log),
            Middleware(BodyLimit, limits=BodyLimits(min(MAX_BODY, max_body)), too_large=too_large),
        ],
    )
    return app, InteractionHeaders(app)


RouteFunction = Callable[[Request], Awaitable[Response]]
ACCOUNT_READS = "/accounts"  # the routes AccountReads serves: GET of an account, its balances, its transactions


class AccountReads:
    """The account information GETs, the API's busiest calls, served straight to their route
    functions for a server in front of the mounted API (web/lean_path.py): the same route as the
    router would choose (the first whose pattern matches), with the scope the mount and the router
    give it, inside the same InteractionHeaders and error boundary, without the routing and the
    middleware stack of the application and of the host application.

    Only for a GET without a body (the body limit has nothing to read then): the caller hands
    anything else to the mounted application."""

    def __init__(self, api: Starlette) -> None:
        self.api = api
        self.routes = [route for route in api.routes if isinstance(route, Route)]
        self.app = InteractionHeaders(ErrorBoundary(_endpoint, render=failure_response, logger=log))

    def match(self, path: str) -> tuple[RouteFunction, dict[str, Any]] | None:
        """The route function and path parameters of a GET of `path` (the path below the host), if it is
        an account read; None otherwise."""
        if not path.startswith(PREFIX + ACCOUNT_READS):
            return None
        sub = path[len(PREFIX) :]
        for route in self.routes:  # the router's rule: the first route whose pattern matches
            found = route.path_regex.match(sub)
            if found:
                if not route.path.startswith(ACCOUNT_READS):
                    return None
                params = {name: route.param_convertors[name].convert(v) for name, v in found.groupdict().items()}
                return route.endpoint, params
        return None

    async def __call__(
        self, found: tuple[RouteFunction, dict[str, Any]], scope: Scope, receive: Receive, send: Send
    ) -> None:
        endpoint, params = found
        # What the mount, the API application and its router set in the scope.
        scope["app_root_path"] = scope.get("app_root_path", scope.get("root_path", ""))
        scope["root_path"] = scope.get("root_path", "") + PREFIX
        scope["app"] = self.api
        scope["endpoint"] = endpoint
        scope["path_params"] = params
        await self.app(scope, receive, send)


async def _endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    response = await scope["endpoint"](Request(scope, receive, send))
    await response(scope, receive, send)
